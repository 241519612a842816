"""Learned scores: derivatives, Hutchinson estimator, checkpoints, CLI, and the acceptance
test (learned fox within 2× of analytic fox on a 2D Gaussian mixture)."""

import json
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from activegen import ActiveOU, GaussianMixture, MixtureScore, default_target_2d, sample, w1
from activegen.cli import main
from activegen.errors import ActivegenError
from activegen.learned import (
    LearnedScore,
    ScoreNet,
    _time_state,
    energy_at,
    hutchinson_grad_div,
    load_model,
    train,
)

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


def test_acceptance_learned_fox_within_2x_of_analytic_fox():
    """Acceptance (issue 5): a small energy model (width 32, depth 3, 5.6k parameters)
    trained for 1500 DSM steps on 20 000 draws of the 2D demo mixture, sampled with fox at
    τ = 0.1, reaches a sliced W1 within 2× of fox with the analytic score at the same τ, same
    seed, particles and step. The model is trained in data coordinates (standardize=False)
    so that the process, and hence fox's own O(τ²) bias, is the same as the analytic run's.
    T = 3 (e^{-3} of the data left; both start from the same kind of law) and Δs = τ/10
    keep the test cheap; n = 4000 particles put the finite-sample floor at about 0.035,
    analytic fox at ~0.04, so the 2× bound leaves room for the learned-score error and the
    sampling noise but fails an untrained or badly conditioned model (fox with Fourier
    features of scale up to 16 gave 0.39). About 30–50 s on 2 shared cores."""
    tgt = default_target_2d()
    model, rep = train(_data(20_000), None, process=PROC, standardize=False, width=32, depth=3,
                       batch=256, lr=3e-3, steps=1500, t_max=3.0, seed=0)
    ref = np.asarray(tgt.sample(jax.random.key(11), 100_000))
    kw = dict(seed=1, t_final=3.0, dt=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learned = w1(sample(model, "fox", PROC, 4000, **kw).samples, ref)
        analytic = w1(sample(tgt, "fox", PROC, 4000, **kw).samples, ref)
    assert learned < 2.0 * analytic, (learned, analytic, rep)
