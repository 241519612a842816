"""Statistical tests of the reverse samplers against the exact target (THEORY.md §4).

Each tolerance is the finite-sample floor: W1 between independent exact samples of the
same size and the same reference sample, over 8 draws; an error within mean + 4 sd of
that floor is indistinguishable from exact sampling. Seeds are fixed.
"""

import os
import warnings

import jax
import numpy as np
import pytest

from activegen import (
    ActiveOU,
    ActivegenError,
    FirstOrderWarning,
    GaussianMixture,
    default_target_1d,
    default_target_2d,
    log_slope,
    sample,
    w1,
    w1_floor,
)

T_FINAL = 3.0  # every sampler starts from the exact law at T, so a short T is exact too


def _reference(tg, n_ref=400_000, seed=11):
    return np.asarray(tg.sample(jax.random.key(seed), n_ref))


@pytest.fixture(scope="module")
def ref1d():
    tg = default_target_1d()
    return tg, _reference(tg)


@pytest.fixture(scope="module")
def ref2d():
    tg = default_target_2d()
    return tg, _reference(tg, n_ref=100_000)


def _assert_within_floor(tg, ref, x, label):
    mean, sd = w1_floor(tg, len(x), ref)
    err = w1(x, ref)
    assert err < mean + 4 * sd, f"{label}: W1 {err:.4f} above floor {mean:.4f} ± {sd:.4f}"


@pytest.mark.parametrize("tau", [0.02, 0.1, 0.5])
@pytest.mark.parametrize("method", ["passive", "ode", "exact"])
def test_exact_samplers_reproduce_1d_mixture(ref1d, method, tau):
    tg, ref = ref1d
    res = sample(tg, method, ActiveOU(1.0, 0.0, 1.0, tau), 20_000, seed=1, t_final=T_FINAL)
    _assert_within_floor(tg, ref, res.samples, f"{method} tau={tau}")


@pytest.mark.parametrize("tau", [0.05, 0.5])
@pytest.mark.parametrize("method", ["passive", "ode", "exact"])
def test_exact_samplers_reproduce_2d_mixture(ref2d, method, tau):
    tg, ref = ref2d
    proc = ActiveOU(1.0, 0.2, 1.0, tau)  # with a thermal part too
    res = sample(tg, method, proc, 20_000, seed=2, t_final=T_FINAL)
    _assert_within_floor(tg, ref, res.samples, f"{method} tau={tau}")


def test_passive_at_tau_zero(ref1d):
    tg, ref = ref1d
    res = sample(tg, "passive", ActiveOU(1.0, 0.0, 1.0, 0.0), 20_000, seed=3, t_final=T_FINAL)
    _assert_within_floor(tg, ref, res.samples, "passive tau=0")


def test_fox_beats_naive_and_converges_faster_than_linearly(ref1d):
    """§4 claim 2 on the broad mixture σ = (0.8, 1.0): W1(fox) falls like τ², W1(naive)
    like τ. Measured orders (50k particles, τ = 0.2 → 0.1): fox ≈ 2.2, naive ≈ 0.9;
    the floor here is ≈ 0.01, far below the τ = 0.2 errors (≈ 0.1)."""
    tg, ref = ref1d
    n = 50_000
    err = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FirstOrderWarning)
        for tau in (0.2, 0.1, 0.05):
            for m in ("fox", "naive"):
                res = sample(tg, m, ActiveOU(1.0, 0.0, 1.0, tau), n, seed=4, t_final=T_FINAL)
                err[m, tau] = w1(res.samples, ref)
    floor, _ = w1_floor(tg, n, ref)
    assert err["fox", 0.1] < err["naive", 0.1]
    assert err["fox", 0.05] < err["naive", 0.05]
    assert err["naive", 0.05] > 2 * floor  # naive's O(τ) error is resolved at τ = 0.05
    order_fox = log_slope([0.2, 0.1], [err["fox", 0.2], err["fox", 0.1]])
    order_naive = log_slope([0.2, 0.1, 0.05], [err["naive", t] for t in (0.2, 0.1, 0.05)])
    assert order_fox > 1.5, err
    assert 0.6 < order_naive < 1.3, err


def test_ucn_runs_and_is_no_better_than_fox(ref1d):
    tg, ref = ref1d
    proc = ActiveOU(1.0, 0.0, 1.0, 0.1)
    e = {m: w1(sample(tg, m, proc, 20_000, seed=5, t_final=T_FINAL).samples, ref)
         for m in ("fox", "ucn")}
    assert e["ucn"] > e["fox"], e


def test_trajectory_and_reproducibility():
    tg = default_target_1d()
    proc = ActiveOU(1.0, 0.0, 1.0, 0.1)
    a = sample(tg, "fox", proc, 500, seed=7, t_final=1.0, dt=0.002, save_every=100)
    b = sample(tg, "fox", proc, 500, seed=7, t_final=1.0, dt=0.002, progress=True)
    c = sample(tg, "fox", proc, 500, seed=8, t_final=1.0, dt=0.002)
    assert a.info["n_steps"] == 500
    assert a.trajectory.shape == (6, 500, 1)
    np.testing.assert_allclose(a.times, np.linspace(0, 1.0, 6))
    np.testing.assert_allclose(a.trajectory[-1], a.samples)
    np.testing.assert_array_equal(a.samples, b.samples)  # chunking does not change results
    assert not np.array_equal(a.samples, c.samples)


def test_first_order_warning_on_narrow_modes():
    tg = GaussianMixture.from_stds([0.5, 0.5], [[-1.0], [1.0]], [0.3, 0.3])
    with pytest.warns(FirstOrderWarning, match="tau"):
        res = sample(tg, "fox", ActiveOU(1.0, 0.0, 1.0, 0.2), 200, seed=0, t_final=0.5)
    assert res.info["tau_grad_force"] > 1.0
    # a broad mixture at small tau stays quiet
    with warnings.catch_warnings():
        warnings.simplefilter("error", FirstOrderWarning)
        res = sample(default_target_1d(), "fox", ActiveOU(1.0, 0.0, 1.0, 0.05), 200, seed=0,
                     t_final=0.5)
    assert res.info["tau_grad_force"] < 0.3


def test_bad_sampler_arguments():
    tg = default_target_1d()
    proc = ActiveOU(1.0, 0.0, 1.0, 0.1)
    with pytest.raises(ActivegenError, match="method"):
        sample(tg, "nope", proc, 10, seed=0)
    with pytest.raises(ActivegenError, match="n must"):
        sample(tg, "fox", proc, 0, seed=0)
    with pytest.raises(ActivegenError, match="dt"):
        sample(tg, "fox", proc, 10, seed=0, dt=-0.1)
    with pytest.raises(ActivegenError, match="tau must be > 0"):
        sample(tg, "exact", ActiveOU(1.0, 0.0, 1.0, 0.0), 10, seed=0)


def test_blow_up_fails_loudly():
    """Narrow modes make V_F's force stiff: the run diverges; it must warn and then raise."""
    tg = GaussianMixture.from_stds([0.5, 0.5], [[-1.0], [1.0]], [0.1, 0.1])
    with pytest.warns(FirstOrderWarning):
        with pytest.raises(ActivegenError, match="non-finite"):
            sample(tg, "fox", ActiveOU(1.0, 0.0, 1.0, 0.2), 200, seed=0, t_final=0.5,
                   scheme="euler")
    # the second-order scheme (the default) at its default step, capped at σ_min²/(2D) = 0.005
    with pytest.warns(FirstOrderWarning):
        with pytest.raises(ActivegenError, match="non-finite"):
            sample(tg, "fox", ActiveOU(1.0, 0.0, 1.0, 0.2), 200, seed=0, t_final=0.5)


def test_rtp_driver_correction_restores_accuracy(ref1d):
    """Issue 4: fox driven by 1D run-and-tumble carries an O(τ) error from the telegraph
    term −τD_A²∂⁴q; the driver correction removes it. Measured at 10⁵ particles, τ = 0.1:
    uncorrected 0.048, corrected 0.015, OU-driven 0.027 (floor 0.006)."""
    from activegen.physics.drivers import RunAndTumbleDriver

    tg, ref = ref1d
    proc = ActiveOU(1.0, 0.0, 1.0, 0.1)
    drv = RunAndTumbleDriver.from_effective(0.1, 1.0, 1)
    kw = dict(seed=6, t_final=T_FINAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FirstOrderWarning)
        raw = w1(sample(tg, "fox", proc, 40_000, driver=drv, driver_correction=False, **kw).samples, ref)
        cor = w1(sample(tg, "fox", proc, 40_000, driver=drv, **kw).samples, ref)
        ou = w1(sample(tg, "fox", proc, 40_000, **kw).samples, ref)
    floor, sd = w1_floor(tg, 40_000, ref)
    assert raw > 3 * floor  # the uncorrected residual is resolved
    assert cor < 0.5 * raw, (raw, cor, ou)
    assert cor < 1.5 * ou + 4 * sd, (raw, cor, ou)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ACTIVEGEN_SLOW"), reason="set ACTIVEGEN_SLOW=1 (~25 s)")
def test_abp_3d_driver_correction_on_a_generative_task():
    """Issue 4 in 3D: fox driven by active Brownian propulsion (κ = 11/15) on a 3-mode 3D
    mixture. Measured (4·10⁴ particles, 2 seeds, τ = 0.1, floor 0.009): uncorrected 0.021,
    corrected 0.010, OU-driven 0.013 (docs/drivers.md). Both runs share the driver's noise
    (same seed), so the gap is resolved at 3·10⁴ particles; the corrected run must be at the
    finite-sample floor."""
    from pathlib import Path

    from activegen.physics.drivers import ActiveBrownianDriver

    tg = GaussianMixture.load(Path(__file__).parents[1] / "examples" / "three_modes_3d.json")
    proc = ActiveOU(1.0, 0.0, 1.0, 0.1)
    drv = ActiveBrownianDriver.from_effective(0.1, 1.0, 3)
    n, kw = 30_000, dict(seed=2, t_final=1.5)
    ref = np.asarray(tg.sample(jax.random.key(99), 200_000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FirstOrderWarning)
        raw = w1(sample(tg, "fox", proc, n, driver=drv, driver_correction=False, **kw).samples, ref)
        cor = w1(sample(tg, "fox", proc, n, driver=drv, **kw).samples, ref)
    floor, sd = w1_floor(tg, n, ref)
    assert cor < raw, (raw, cor)
    assert cor < floor + 4 * sd, (cor, floor, sd)


@pytest.mark.parametrize("method", ["fox", "exact", "passive", "ode"])
def test_chunked_run_equals_one_run(method):
    """An ensemble run in particle chunks (memory O(chunk)) gives the samples of one run
    with the same seed, bit for bit (the blocks carry their own random streams and run
    through the same compiled programs; tests/test_partition.py)."""
    tg, proc = default_target_2d(), ActiveOU(1.0, 0.0, 1.0, 0.1)
    kw = dict(seed=4, t_final=0.5, dt=0.002, save_every=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FirstOrderWarning)
        one = sample(tg, method, proc, 40_000, **kw)
        chunked = sample(tg, method, proc, 40_000, chunk_size=16_384, **kw)
    np.testing.assert_array_equal(chunked.samples, one.samples)
    np.testing.assert_array_equal(chunked.trajectory, one.trajectory)
    assert one.trajectory.shape == (6, 40_000, 2)
    # frames are laid out like the samples (particles of several blocks, (N, d))
    np.testing.assert_array_equal(one.trajectory[-1], one.samples)


@pytest.mark.parametrize("tau,fires", [(0.025, False), (0.1, True)])
def test_validity_warning_on_the_calibration_family(tau, fires):
    # the validity map's mixture σ = (0.4, 0.6): fox works at τ = 0.025 (τ‖∇F‖ ≈ 0.14) and is
    # worse than naive at τ = 0.1 (≈ 0.89); the threshold lies between (docs/results.md)
    from activegen.studies.validity_map import validity_target
    from activegen.samplers import VALIDITY_THRESHOLD

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = sample(validity_target(0.4), "fox", ActiveOU(1.0, 0.0, 1.0, tau), 300, seed=0,
                     t_final=0.3)
    hits = [w for w in rec if issubclass(w.category, FirstOrderWarning)]
    assert bool(hits) == fires
    assert (res.info["tau_grad_force"] > VALIDITY_THRESHOLD) == fires
    if fires:
        assert "lower tau" in str(hits[0].message) and "exact" in str(hits[0].message)


def test_unrolled_threefry_lowering_gives_the_same_bits():
    """The samplers compile with threefry's rounds unrolled (activegen._xla): same normals
    as JAX's own CPU lowering, no while loop inside the block, JAX's rule back after it."""
    from activegen._xla import unrolled_threefry

    key = jax.random.key(3)

    def lower():  # a fresh function each time: no lowering cache shared between the calls
        return jax.jit(lambda k: jax.random.normal(jax.random.fold_in(k, 5), (2, 1000))).lower(key)

    rolled = lower()
    assert "stablehlo.while" in rolled.as_text()
    with unrolled_threefry() as active:
        unrolled = lower()
    if not active:
        pytest.skip("JAX's threefry lowering moved; the samplers use JAX's own rule")
    assert "stablehlo.while" not in unrolled.as_text()
    np.testing.assert_array_equal(np.asarray(unrolled.compile()(key)),
                                  np.asarray(rolled.compile()(key)))
    assert "stablehlo.while" in lower().as_text()
