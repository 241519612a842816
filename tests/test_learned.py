"""Learned scores: derivatives (batched pass against autodiff, probes), Hutchinson
estimator, checkpoints, units (--standardize), CLI, plots, and the acceptance tests (learned
fox within 1.3× of analytic fox, + floor, on a 2D full-covariance and a narrow 1D mixture in
the data's own units)."""

import itertools
import json
import os
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from activegen import ActiveOU, GaussianMixture, MixtureScore, default_target_2d, sample, w1
from activegen.cli import main
from activegen.errors import ActivegenError
from activegen.learning.derivatives import hutchinson_grad_div, probe_derivs
from activegen.learning.model import LearnedScore, load_model
from activegen.learning.network import ScoreNet, energy_at
from activegen.learning.training import train

PROC = ActiveOU(beta=1.0, d_thermal=0.0, d_active=1.0, tau=0.1)
TINY = dict(width=16, depth=2, batch=64, steps=40, chunk=10, t_max=3.0)


def _model(kind="energy", marginal="x", zero_out=False, d=2, seed=0, scale=1.0):
    """An untrained LearnedScore (random weights; zero_out: the output layer is 0, so the
    model is exactly the diffused standard normal N(0, (m² + var) I))."""
    cfg = dict(kind=kind, marginal=marginal, width=16, depth=2, n_freq=4, t_min=1e-3,
               t_max=6.0, seed=seed, hutchinson=0, step=0,
               process=dict(beta=1.0, d_thermal=0.0, d_active=1.0, tau=0.1),
               data={"source": "test", "n": 1, "d": d},
               standardizer={"mean": [0.0] * d, "scale": 1.0})
    net = ScoreNet(d, kind, 16, 2, 4, jax.random.key(seed))
    net = eqx.tree_at(lambda n: n.out.weight, net, net.out.weight * (0.0 if zero_out else 10 * scale))
    if zero_out:
        net = eqx.tree_at(lambda n: n.out.bias, net, 0.0 * net.out.bias)
    return LearnedScore(net, cfg, np.zeros((4, d)))


@pytest.mark.parametrize("kind", ["energy", "vector"])
def test_zero_network_is_the_diffused_standard_normal(kind):
    model = _model(kind, zero_out=True)
    exact = MixtureScore(GaussianMixture.from_stds([1.0], [[0.0, 0.0]], [1.0]), PROC)
    x = jnp.array([0.7, -1.3])
    fa = jax.jit(lambda t, x: model.derivs(model.prepare(t), x))
    fb = jax.jit(lambda t, x: exact.derivs(exact.prepare(t), x))
    for t in (0.01, 0.5, 3.0):
        a, b = fa(t, x), fb(t, x)
        for f in ("score", "hessian", "grad_div"):
            np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-5, atol=1e-6)


def test_energy_derivs_are_autodiff_of_minus_energy():
    """S = −∇E, ∇S = −∇²E (symmetric), ∇(∇·S) = −∇ΔE: checked with jax.hessian and a
    central finite difference of the divergence."""
    model = _model("energy")
    st = model.prepare(0.3)
    x = jnp.array([0.4, -0.2])
    dv = jax.jit(lambda y: model.derivs(st, y))(x)
    e = lambda y: energy_at(st, y)  # noqa: E731
    np.testing.assert_allclose(dv.score, -jax.jit(jax.grad(e))(x), rtol=1e-5)
    np.testing.assert_allclose(dv.hessian, -jax.jit(jax.hessian(e))(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dv.hessian, dv.hessian.T, atol=1e-6)
    np.testing.assert_allclose(dv.log_p, -e(x), rtol=1e-6)
    jax.config.update("jax_enable_x64", True)
    try:
        x64 = x.astype(jnp.float64)
        st64 = jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, st)
        div = jax.jit(lambda y: -jnp.trace(jax.hessian(lambda z: energy_at(st64, z))(y)))
        h = 1e-5
        fd = [(div(x64.at[i].add(h)) - div(x64.at[i].add(-h))) / (2 * h) for i in range(2)]
        gd = jax.jit(lambda y: model.derivs(st64, y).grad_div)(x64)
        np.testing.assert_allclose(gd, fd, rtol=1e-5)
    finally:
        jax.config.update("jax_enable_x64", False)


def test_hutchinson_unbiased_within_standard_error():
    model = _model("energy", d=5, scale=3.0)
    st = model.prepare(0.2)
    x = jnp.linspace(-1.0, 1.0, 5)
    exact = model.derivs(st, x).grad_div
    sfn = lambda y: model.score(st, y)  # noqa: E731
    keys = jax.random.split(jax.random.key(3), 2000)
    est = np.asarray(jax.jit(jax.vmap(lambda k: hutchinson_grad_div(sfn, x, k, 1)))(keys))
    mean, se = est.mean(0), est.std(0, ddof=1) / np.sqrt(len(est))
    assert np.all(est.std(0) > 0)  # really random
    assert np.all(np.abs(mean - np.asarray(exact)) < 4 * se + 1e-6), (mean, exact, se)
    # the interface route: fresh probes per (t, x), same estimator
    h = LearnedScore(model.net, model.config, model.data, hutchinson=4)
    dv = jax.jit(lambda x: h.derivs(h.prepare(0.2), x))(x)
    np.testing.assert_allclose(dv.score, model.derivs(st, x).score, rtol=1e-6)
    assert np.all(np.isfinite(dv.grad_div))


def test_joint_zero_network_matches_mixture_joint_score():
    model = _model("energy", marginal="joint", zero_out=True)
    exact = MixtureScore(GaussianMixture.from_stds([1.0], [[0.0, 0.0]], [1.0]), PROC)
    x, eta = jnp.array([0.3, -0.8]), jnp.array([1.5, 0.2])
    for t in (0.05, 1.0):
        a = model.joint_score(model.prepare_joint(t), x, eta)
        b = exact.joint_score(exact.prepare_joint(t), x, eta)
        for u, v in zip(a, b):
            np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
    with pytest.raises(ActivegenError, match="x-marginal"):
        model.derivs(model.prepare(1.0), x)


def _data(n=2000, seed=0):
    return np.asarray(default_target_2d().sample(jax.random.key(seed), n))


def test_checkpoint_round_trip_resume_and_process_refused(tmp_path):
    x = _data(500)
    full, _ = train(x, tmp_path / "a", process=PROC, **TINY)
    part, _ = train(x, tmp_path / "b", process=PROC, stop_at=20, **TINY)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["step"] == 20
    resumed, rep = train(None, tmp_path / "b", resume=True)
    assert rep["steps"] == 40
    for a, b in zip(jax.tree.leaves(eqx.filter(full.net, eqx.is_array)),
                    jax.tree.leaves(eqx.filter(resumed.net, eqx.is_array))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    loaded = load_model(tmp_path / "a")
    assert loaded.config["process"]["tau"] == 0.1 and loaded.n_params == full.n_params
    xs = jnp.array([0.2, 0.1])
    np.testing.assert_allclose(loaded.derivs(loaded.prepare(0.5), xs).grad_div,
                               full.derivs(full.prepare(0.5), xs).grad_div, rtol=1e-6)
    np.testing.assert_allclose(loaded.to_data(loaded.from_data(x[:3])), x[:3], rtol=1e-6)
    assert len((tmp_path / "a" / "loss.csv").read_text().splitlines()) == 1 + 4
    with pytest.raises(ActivegenError, match="trained for tau = 0.1, not 0.2"):
        sample(loaded, "fox", ActiveOU(1.0, 0.0, 1.0, 0.2), 10, seed=0, t_final=1.0)
    with pytest.raises(ActivegenError, match="beta"):
        sample(loaded, "fox", ActiveOU(2.0, 0.0, 1.0, 0.1), 10, seed=0, t_final=1.0)
    with pytest.raises(ActivegenError, match="t_max"):
        sample(loaded, "fox", PROC, 10, seed=0, t_final=6.0)
    with pytest.raises(ActivegenError, match="already holds a model"):
        train(x, tmp_path / "a", process=PROC, **TINY)
    with pytest.raises(ActivegenError, match="no model"):
        load_model(tmp_path / "nothing")


def test_cli_train_sample_and_errors(tmp_path, capsys):
    mdir = str(tmp_path / "m")
    assert main(["train", "--data", "two-moons", "--out", mdir, "--tau", "0.1", "--steps", "20",
                 "--width", "16", "--depth", "2", "--batch", "64", "--n-data", "500",
                 "--t-max", "2", "--no-progress"]) == 0
    assert main(["train", "--out", mdir, "--resume", "--steps", "30", "--no-progress"]) == 0
    assert json.loads((tmp_path / "m" / "config.json").read_text())["step"] == 30
    out = tmp_path / "s.npz"
    assert main(["sample", "--model", mdir, "--method", "fox", "--n", "50", "--t-final", "1",
                 "--dt", "0.01", "--no-progress", "--out", str(out)]) == 0
    z = np.load(out)["samples"]
    assert z.shape == (50, 2) and np.all(np.isfinite(z))
    assert abs(z.mean(0)[0] - 0.5) < 1.0  # mapped back to data coordinates (moons: x̄ = 0.5)
    capsys.readouterr()
    for argv, msg in [
        (["sample", "--model", mdir, "--method", "fox", "--tau", "0.2"], "trained for tau = 0.1"),
        (["sample", "--method", "fox", "--tau", "0.1"], "exactly one of --target"),
        (["sample", "--model", mdir, "--method", "exact"], "joint"),
        (["sample", "--model", str(tmp_path / "none"), "--method", "fox"], "no model"),
        (["train", "--data", "nope", "--out", str(tmp_path / "x"), "--tau", "0.1"], "unknown data set"),
        (["train", "--data", "rings", "--out", mdir, "--tau", "0.1"], "already holds a model"),
    ]:
        rc = main(argv + (["--n", "10", "--out", str(tmp_path / "e.npz")] if argv[0] == "sample" else [])
                  + ["--no-progress"])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and err.count("\n") == 1, err
    assert not (tmp_path / "e.npz").exists()


def test_joint_model_drives_exact(tmp_path):
    x = _data(500)
    model, _ = train(x, None, process=PROC, marginal="joint", **TINY)
    res = sample(model, "exact", PROC, 200, seed=0, t_final=1.0, dt=0.01)
    assert res.samples.shape == (200, 2) and np.all(np.isfinite(res.samples))


def _x64_model(kind, d, n_fourier=8, width=16, depth=3):
    """A random float64 model with a non-trivial conditioning (mean ≠ 0, full covariance)."""
    rng = np.random.default_rng(d)
    a = rng.normal(size=(d, d))
    cfg = dict(kind=kind, marginal="x", width=width, depth=depth, n_freq=4, t_min=1e-3,
               t_max=6.0, seed=0, hutchinson=0, step=0, n_fourier=n_fourier, fourier_max=4.0,
               process=dict(beta=1.0, d_thermal=0.0, d_active=1.0, tau=0.1),
               data={"source": "test", "n": 1, "d": d},
               standardizer={"mean": [0.0] * d, "scale": 1.0}, standardized=False,
               conditioning={"mean": rng.normal(size=d).tolist(),
                             "cov": (a @ a.T + 0.5 * np.eye(d)).tolist()})
    net = ScoreNet(d, kind, width, depth, 4, jax.random.key(d), n_fourier, 4.0)
    net = eqx.tree_at(lambda n: n.out.weight, net, net.out.weight * 10)
    net = jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, net)
    return LearnedScore(net, cfg, np.zeros((4, d)))


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


@pytest.mark.parametrize("kind,d,n_fourier", [("energy", 1, 8), ("energy", 2, 8), ("energy", 3, 0),
                                              ("vector", 2, 8), ("vector", 3, 8)])
def test_batched_derivs_equal_nested_autodiff(x64, kind, d, n_fourier):
    """The one-pass batched derivatives (value, ∇, ∇², ∇Δ carried through the layers, particles
    last) equal per-point nested autodiff at float64 for every order, and `score_batch`,
    per-point `derivs`/`score` and the joint batch agree."""
    m = _x64_model(kind, d, n_fourier)
    st = m.prepare(jnp.float64(0.3))
    xs = 2.0 * jax.random.normal(jax.random.key(1), (d, 9), jnp.float64)
    ref = jax.jit(jax.vmap(m.derivs_autodiff, (None, -1), -1))(st, xs)
    for order in (0, 1, 2):
        dv = jax.jit(lambda s, x: m.derivs_batch(s, x, order))(st, xs)
        assert dv.score.shape == (d, 9) and dv.log_p.shape == (9,)
        fields = ("log_p", "score") + (("hessian",) if order >= 1 else ()) + (("grad_div",) if order == 2 else ())
        for f in fields:
            np.testing.assert_allclose(getattr(dv, f), getattr(ref, f), rtol=1e-11, atol=1e-11, err_msg=f)
        assert (dv.hessian is None) == (order == 0) and (dv.grad_div is None) == (order < 2)
    np.testing.assert_allclose(jax.jit(m.score_batch)(st, xs), ref.score, rtol=1e-11, atol=1e-12)
    one = m.derivs(st, xs[:, 0])
    np.testing.assert_allclose(one.grad_div, ref.grad_div[:, 0], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(m.score(st, xs[:, 0]), ref.score[:, 0], rtol=1e-11, atol=1e-12)


def test_probe_derivs_exact_over_all_sign_probes(x64):
    """With the 2^d Rademacher probes together (Σ zzᵀ/2^d = I exactly) the probe estimates of
    ∇·S, ‖∇S‖_F², ∇(∇·S) and (∇S)S are exact; so is the validity norm built from them."""
    from activegen.physics.forces import force_jacobian_norm
    from activegen.physics.scores import hessian_score

    d = 3
    m = _x64_model("energy", d)
    st = m.prepare(jnp.float64(0.2))
    xs = jax.random.normal(jax.random.key(2), (d, 5), jnp.float64)
    z = jnp.asarray(list(itertools.product([-1.0, 1.0], repeat=d)))[:, :, None] * jnp.ones((1, 1, 5))
    est = jax.jit(lambda s, x, z: probe_derivs(lambda y: m._score_inner(s, y), x, z, 2))(st, xs, z)
    ex = jax.jit(lambda s, x: m.derivs_batch(s, x, 2))(st, xs)
    np.testing.assert_allclose(est.jac_trace, jnp.trace(ex.hessian), rtol=1e-10)
    np.testing.assert_allclose(est.jac_fro2, jnp.sum(ex.hessian**2, (0, 1)), rtol=1e-10)
    np.testing.assert_allclose(est.grad_div, ex.grad_div, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hessian_score(est), hessian_score(ex), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(force_jacobian_norm(PROC, 0.2, est), force_jacobian_norm(PROC, 0.2, ex),
                               rtol=1e-10)
    # the model's probe route (hutchinson > 0): ∇S not formed, finite estimates
    h = LearnedScore(m.net, dict(m.config, hutchinson=2), m.data)
    dv = jax.jit(lambda s, x: h.derivs_batch(s, x, 2))(st, xs)
    assert dv.hessian is None and dv.grad_div.shape == (d, 5) and np.all(np.isfinite(dv.jac_fro2))
    np.testing.assert_allclose(dv.score, ex.score, rtol=1e-12)


def test_old_checkpoint_loads_as_standardized(tmp_path):
    """A model folder written before issue 14 (no "standardized", no "conditioning") loads as
    standardized = True with the old conditioning (μ = 0, Σ = I: the zero network is the
    diffused standard normal, as before), and maps samples back with its standardizer."""
    x = _data(300) * 3.0 + 5.0
    train(x, tmp_path / "new", process=PROC, standardize=True, **TINY)
    cfg = json.loads((tmp_path / "new" / "config.json").read_text())
    assert cfg["standardized"] is True and "conditioning" in cfg
    for k in ("standardized", "conditioning", "checksum"):  # as written before those
        cfg.pop(k)
    (tmp_path / "new" / "config.json").write_text(json.dumps(cfg))
    old = load_model(tmp_path / "new")
    assert old.standardized and "standardize" in old.units_line()
    st = old.prepare(0.5)
    np.testing.assert_allclose(st.prec, np.eye(2) / (PROC.mean_scale(0.5) ** 2 + PROC.variance(0.5)),
                               rtol=1e-5)
    np.testing.assert_allclose(old.to_data(np.zeros((1, 2))), [old.standardizer.mean], rtol=1e-6)
    plain = _model()  # no "standardized" key, identity standardizer: to_data is the identity
    np.testing.assert_array_equal(plain.to_data(x[:3]), x[:3])


def test_cli_standardize_recorded_printed_and_plot_samples(tmp_path, capsys):
    """train --standardize is recorded in the model and printed (one stderr line) by sample
    --model; the default is the data's units; plot samples works on sample --model's output
    and overlays the training data (in data units)."""
    common = ["--tau", "0.1", "--steps", "20", "--width", "8", "--depth", "1", "--batch", "32",
              "--n-data", "300", "--t-max", "1", "--n-fourier", "0", "--no-progress"]
    for flag, name in (([], "plain"), (["--standardize"], "std")):
        assert main(["train", "--data", "two-moons", "--out", str(tmp_path / name)] + common + flag) == 0
    assert json.loads((tmp_path / "std" / "config.json").read_text())["standardized"] is True
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["standardized"] is False
    capsys.readouterr()
    for name, words in (("plain", "data's own units"), ("std", "trained with --standardize")):
        out = tmp_path / f"{name}.npz"
        assert main(["sample", "--model", str(tmp_path / name), "--method", "passive", "--n", "300",
                     "--t-final", "1", "--dt", "0.01", "--no-progress", "--out", str(out)]) == 0
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
        z = np.load(out)
        assert z["reference"].shape == (300, 2) and abs(z["reference"][:, 0].mean() - 0.5) < 0.1
    png = tmp_path / "gen.png"
    assert main(["plot", "samples", "--input", str(tmp_path / "std.npz"), "--out", str(png)]) == 0
    assert png.stat().st_size > 1000


# -- acceptance: learned fox against analytic fox, in the data's own units ------------------
ACC_TAU = 0.05
ACC_PROC = ActiveOU(beta=1.0, d_thermal=0.0, d_active=1.0, tau=ACC_TAU)


def acceptance_target(name: str) -> GaussianMixture:
    """2D: three modes with full covariances, data std ≈ 2, mean ≈ (0.6, 0.8); 1D: two narrow
    modes (σ 0.6, 0.9) at 1 and 6 (std ≈ 2.5). Standardising would multiply τD/σ² by ≈ 4–6
    and take fox out of its first-order regime."""
    if name == "2d":
        return GaussianMixture([0.3, 0.4, 0.3], [[-2.0, 1.0], [1.5, 2.5], [2.5, -1.5]],
                               [[[1.0, 0.4], [0.4, 0.5]], [[0.6, -0.2], [-0.2, 0.8]],
                                [[0.7, 0.0], [0.0, 0.4]]])
    return GaussianMixture.from_stds([0.4, 0.6], [[1.0], [6.0]], [0.6, 0.9])


def _fox_learned_vs_analytic(name, n, steps, width, depth, n_fourier, batch=256):
    tg = acceptance_target(name)
    data = np.asarray(tg.sample(jax.random.key(0), 20_000))
    ref = np.asarray(tg.sample(jax.random.key(11), 100_000))
    model, _ = train(data, None, process=ACC_PROC, width=width, depth=depth, n_fourier=n_fourier,
                     batch=batch, steps=steps, t_max=3.0, seed=0)
    fl = [w1(np.asarray(tg.sample(jax.random.key(100 + i), n)), ref) for i in range(5)]
    floor, floor_sd = float(np.mean(fl)), float(np.std(fl, ddof=1))
    kw = dict(seed=1, t_final=3.0, dt=ACC_TAU / 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learned = w1(sample(model, "fox", ACC_PROC, n, **kw).samples, ref)
        analytic = w1(sample(tg, "fox", ACC_PROC, n, **kw).samples, ref)
    return learned, analytic, floor, floor_sd


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ACTIVEGEN_SLOW"), reason="set ACTIVEGEN_SLOW=1 (~1 min)")
def test_acceptance_learned_fox_within_1_3x_of_analytic_fox():
    """Issue 14 (cheap form): the default energy network and schedule (3000 DSM steps, batch
    512; 1500 steps at batch 256 left it at 2.2× in 2D) on 20 000 draws of each acceptance mixture, in the data's own units, sampled with fox at
    τ = 0.05 (T = 3, Δs = τ/10, 4000 particles), is within 1.3× of fox with the analytic score
    plus the finite-sample floor (at 4000 particles the floor is as large as analytic fox's
    error, so this bound is loose; the strict form at 20 000 particles is the slow test)."""
    for name in ("2d", "1d"):
        learned, analytic, floor, _ = _fox_learned_vs_analytic(name, 4000, 3000, 16, 2, 16,
                                                               batch=512)
        assert learned < 1.3 * analytic + floor, (name, learned, analytic, floor)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ACTIVEGEN_SLOW"), reason="set ACTIVEGEN_SLOW=1 (a few min)")
@pytest.mark.parametrize("name", ["2d", "1d"])
def test_acceptance_learned_fox_within_1_3x_of_analytic_fox_strict(name):
    """Issue 14's target: the default network and schedule (3000 steps, batch 512), 20 000
    particles; learned fox within 1.3× of analytic fox, plus two sd of the finite-sample W1
    of exact draws (the sampling noise of one run)."""
    learned, analytic, floor, sd = _fox_learned_vs_analytic(name, 20_000, 3000, 16, 2, 16, batch=512)
    assert learned < 1.3 * analytic + 2 * sd, (name, learned, analytic, floor, sd)
