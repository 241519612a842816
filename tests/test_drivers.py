"""Self-propulsion drivers: stationary autocorrelation (D_A/τ)e^{−|u|/τ} per coordinate and
the free-particle mean-square displacement 2D_A[t − τ(1 − e^{−t/τ})] per coordinate.
Tolerances: 5 standard errors of the estimate (from the sample itself) plus the O(h) bias
of integrating x with η held over a step (h = τ/200: < 1%)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from activegen import ActiveOU, ActivegenError, default_target_1d, sample
from activegen.physics.drivers import ActiveBrownianDriver, OUDriver, RunAndTumbleDriver

TAU, DA = 0.5, 0.8
CASES = [
    ("ou", 1, lambda d: OUDriver(TAU, DA)),
    ("ou", 2, lambda d: OUDriver(TAU, DA)),
    ("rtp", 1, lambda d: RunAndTumbleDriver.from_effective(TAU, DA, d)),
    ("rtp", 2, lambda d: RunAndTumbleDriver.from_effective(TAU, DA, d)),
    ("rtp", 3, lambda d: RunAndTumbleDriver.from_effective(TAU, DA, d)),
    ("abp", 2, lambda d: ActiveBrownianDriver.from_effective(TAU, DA, d)),
    ("abp", 3, lambda d: ActiveBrownianDriver.from_effective(TAU, DA, d)),
]


def _run(drv, d, n=20_000, t=2 * TAU, h=TAU / 200, seed=0):
    steps = int(round(t / h))
    k0, k1 = jax.random.split(jax.random.key(seed))
    eta0 = drv.init(k0, (d, n), jnp.float32)  # vector axis first

    def body(c, k):
        x, eta = c
        return (x + eta * h, drv.step(eta, h, k)), None

    (x, eta), _ = jax.lax.scan(body, (jnp.zeros_like(eta0), eta0), jax.random.split(k1, steps))
    return np.asarray(eta0, np.float64), np.asarray(eta, np.float64), np.asarray(x, np.float64), steps * h


@pytest.mark.parametrize("kind,d,make", CASES, ids=[f"{k}-{d}d" for k, d, _ in CASES])
def test_autocorrelation_and_msd(kind, d, make):
    drv = make(d)
    assert drv.tau == pytest.approx(TAU) and drv.d_active == pytest.approx(DA)
    eta0, eta, x, t = _run(drv, d)
    # stationary variance D_A/τ at the start and after the run
    for e in (eta0, eta):
        sq = (e**2).ravel()
        assert abs(sq.mean() - DA / TAU) < 5 * sq.std() / np.sqrt(sq.size) + 1e-6
    prod = (eta0 * eta).ravel()
    expect = DA / TAU * np.exp(-t / TAU)
    assert abs(prod.mean() - expect) < 5 * prod.std() / np.sqrt(prod.size)
    sq = (x**2).ravel()
    msd = 2 * DA * (t - TAU * (1 - np.exp(-t / TAU)))
    assert abs(sq.mean() - msd) < 5 * sq.std() / np.sqrt(sq.size) + 0.01 * msd


def test_documented_mappings():
    rtp1 = RunAndTumbleDriver(speed=2.0, tumble_rate=4.0, dim=1)  # flips at λ = 2
    assert rtp1.tau == pytest.approx(1 / (2 * 2.0)) and rtp1.d_active == pytest.approx(4.0 * rtp1.tau)
    abp2 = ActiveBrownianDriver(speed=2.0, rot_diffusion=0.5, dim=2)
    assert abp2.tau == pytest.approx(2.0) and abp2.d_active == pytest.approx(4.0 / (2 * 0.5))
    abp3 = ActiveBrownianDriver(speed=2.0, rot_diffusion=0.5, dim=3)
    assert abp3.tau == pytest.approx(1.0) and abp3.d_active == pytest.approx(4.0 / (6 * 0.5))


def test_driver_must_match_process():
    tg = default_target_1d()
    with pytest.raises(ActivegenError, match="effective tau"):
        sample(tg, "fox", ActiveOU(1.0, 0.0, 1.0, 0.1), 10, seed=0,
               driver=RunAndTumbleDriver.from_effective(0.2, 1.0, 1))
    with pytest.raises(ActivegenError, match="d = 2 or 3"):
        ActiveBrownianDriver(1.0, 1.0, 1)


def test_rtp_driven_fox_runs():
    tg = default_target_1d()
    proc = ActiveOU(1.0, 0.0, 1.0, 0.1)
    res = sample(tg, "fox", proc, 2000, seed=0, t_final=2.0,
                 driver=RunAndTumbleDriver.from_effective(0.1, 1.0, 1))
    assert res.info["driver"] == "RunAndTumbleDriver"
    assert np.all(np.isfinite(res.samples))


KAPPA_CASES = [
    ("rtp", 1, RunAndTumbleDriver, 1.0),
    ("rtp", 2, RunAndTumbleDriver, 0.5),
    ("abp", 2, ActiveBrownianDriver, 7 / 8),
    ("abp", 3, ActiveBrownianDriver, 11 / 15),
]


@pytest.mark.parametrize("kind,d,cls,kappa", KAPPA_CASES, ids=[f"{k}-{d}d" for k, d, _, _ in KAPPA_CASES])
def test_fourth_cumulant_rate_gives_kappa(kind, d, cls, kappa):
    if (kind, d) == ("abp", 3) and not os.environ.get("ACTIVEGEN_SLOW"):
        pytest.skip("set ACTIVEGEN_SLOW=1 (~20 s; the 3D rotation step is also tested for "
                    "its autocorrelation and mean-square displacement)")
    if (kind, d) == ("rtp", 2) and not os.environ.get("ACTIVEGEN_SLOW"):
        pytest.skip("set ACTIVEGEN_SLOW=1 (~18 s; the Monte-Carlo κ of tumbling is checked in "
                    "1D here, the 2D driver's autocorrelation and MSD above)")
    """Free particle ẋ = η: the per-coordinate fourth cumulant grows as
    κ4(t2) − κ4(t1) = −24 κ τ D_A² (t2 − t1) for t ≫ τ (from ∂_tP = D_AΔP − κτD_A²Δ²P).
    Tolerance: 5 standard errors over 10 independent batches of particles."""
    tau, da, n, h = 1.0, 1.0, 1_000_000, 0.05
    drv = cls.from_effective(tau, da, d)
    assert drv.kappa == pytest.approx(kappa)
    t1, t2 = 8.0, 16.0

    @jax.jit
    def run(key):
        k0, k1 = jax.random.split(key)
        eta0 = drv.init(k0, (d, n), jnp.float32)  # vector axis first

        def body(c, k):
            x, eta = c
            eta_new = drv.step(eta, h, k)
            return (x + 0.5 * (eta + eta_new) * h, eta_new), None

        (x1, e1), _ = jax.lax.scan(body, (jnp.zeros_like(eta0), eta0),
                                   jax.random.split(k1, int(t1 / h)))
        (x2, _), _ = jax.lax.scan(body, (x1, e1),
                                  jax.random.split(jax.random.fold_in(k1, 1), int((t2 - t1) / h)))
        return x1.T, x2.T

    def k4(x):
        x = x - x.mean()
        return np.mean(x**4) - 3 * np.mean(x**2) ** 2

    x1, x2 = (np.asarray(a, np.float64) for a in run(jax.random.key(100)))
    # 10 independent batches of n/10 particles (all coordinates of a particle in one batch)
    diffs = np.array([k4(b2.ravel()) - k4(b1.ravel())
                      for b1, b2 in zip(np.split(x1, 10), np.split(x2, 10))])
    want = -24 * kappa * tau * da**2 * (t2 - t1)
    se = diffs.std(ddof=1) / np.sqrt(len(diffs))
    assert abs(diffs.mean() - want) < 5 * se, (diffs.mean(), want, se)
    # and it is resolved: κ is measured to better than ±40 %
    assert 5 * se < 0.4 * abs(want)
