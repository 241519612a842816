"""The learned effective potential (THEORY.md §5, docs/learned.md): Ψ = Δp/p as a posterior
mean (closed forms on mixtures), the Ψ head's fit, the Ψ route's derivatives against autodiff
of the same network, routes and their record, old models, and the end game's default."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from activegen import ActiveOU, GaussianMixture, sample
from activegen.learning.derivatives import psi_derivs_batch
from activegen.learning.model import LearnedScore
from activegen.learning.network import ScoreNet, energy_psi_at
from activegen.learning.training import train
from activegen.physics.scores import autodiff_derivs, mixture_derivs_batch, mixture_psi, psi_derivs
from activegen.physics.targets import mixture_log_prob

PROC = ActiveOU(beta=1.0, d_thermal=0.0, d_active=1.0, tau=0.05)
MIX = GaussianMixture([0.3, 0.5, 0.2], [[-1.5, 0.5], [1.0, 1.0], [0.5, -2.0]],
                      [[[0.5, 0.2], [0.2, 0.4]], [[0.3, 0.0], [0.0, 0.6]], [[0.8, -0.1], [-0.1, 0.2]]])


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def _tweedie_psi(mix: GaussianMixture, proc: ActiveOU, t: float, x):
    """Ψ = E[|x − m y|²/v² − d/v | x] by the posterior of the data point y given x (Gaussian per
    component: precision Σ_k⁻¹ + m²/v, mean Λ⁻¹(Σ_k⁻¹μ_k + m x/v)); an independent formula."""
    m, v = float(proc.mean_scale(t)), float(proc.variance(t))
    d = x.shape[0]
    logs, vals = [], []
    for w, mu, cov in zip(mix.weights, mix.means, mix.covs):
        c_t = m * m * cov + v * np.eye(d)
        r = x - m * mu
        logs.append(np.log(w) - 0.5 * (np.linalg.slogdet(c_t)[1] + r @ np.linalg.solve(c_t, r)))
        ic = np.linalg.inv(cov)
        lam = np.linalg.inv(ic + (m * m / v) * np.eye(d))
        mean = lam @ (ic @ mu + m * x / v)
        e2 = np.sum((x - m * mean) ** 2) + m * m * np.trace(lam)
        vals.append(e2 / v**2 - d / v)
    post = np.exp(np.array(logs) - np.max(logs))
    return float(np.sum(post / post.sum() * np.array(vals)))


@pytest.mark.parametrize("t", [0.01, 0.3, 2.0])
def test_psi_is_the_posterior_mean_and_the_laplacian_ratio(x64, t):
    """THEORY.md §5's identity on a full-covariance mixture: Tweedie's second-order posterior mean
    equals Δp/p = ∇·S + |S|² (closed form `mixture_psi` and autodiff), and `psi_derivs` rebuilds
    ∇·S and ∇(∇·S) from (S, ∇Ψ, (∇S)S, Ψ) exactly."""
    st = MIX.marginal_state(PROC, t)
    xs = np.asarray(jax.random.normal(jax.random.key(3), (6, 2), jnp.float64)) * 1.5
    dv = mixture_derivs_batch(st, jnp.asarray(xs.T))
    for i, x in enumerate(xs):
        psi = float(mixture_psi(st, jnp.asarray(x)))
        np.testing.assert_allclose(psi, _tweedie_psi(MIX, PROC, t, x), rtol=1e-9)
        np.testing.assert_allclose(psi, float(jnp.trace(dv.hessian[..., i]) + dv.score[:, i] @ dv.score[:, i]),
                                   rtol=1e-9)
    psi = jax.vmap(lambda y: mixture_psi(st, y), 1)(jnp.asarray(xs.T))
    gpsi = jax.vmap(jax.grad(lambda y: mixture_psi(st, y)), 1, 1)(jnp.asarray(xs.T))
    hs = jnp.einsum("ijn,jn->in", dv.hessian, dv.score)
    rebuilt = psi_derivs(dv.log_p, dv.score, gpsi, hs, psi)
    np.testing.assert_allclose(rebuilt.grad_div, dv.grad_div, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rebuilt.div, jnp.trace(dv.hessian), rtol=1e-9, atol=1e-9)


def _psi_model(d, seed=0):
    """An untrained model with the Ψ head (random weights, output layer scaled up)."""
    cfg = dict(kind="energy", marginal="x", width=16, depth=2, n_freq=4, t_min=1e-3, t_max=6.0,
               seed=seed, hutchinson=0, step=0, psi=True, n_fourier=4 if d <= 8 else 0,
               fourier_max=4.0, process=dict(beta=1.0, d_thermal=0.0, d_active=1.0, tau=0.05),
               data={"source": "test", "n": 1, "d": d},
               standardizer={"mean": [0.0] * d, "scale": 1.0})
    net = ScoreNet(d, "energy", 16, 2, 4, jax.random.key(seed), cfg["n_fourier"], 4.0, psi=True)
    net = eqx.tree_at(lambda n: n.out.weight, net, net.out.weight * 10.0)
    net = eqx.tree_at(lambda n: n.psi_net.out.weight, net, net.psi_net.out.weight * 10.0)
    net = jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_array(a) else a, net)
    return LearnedScore(net, cfg, np.zeros((4, d)), route="psi")


@pytest.mark.parametrize("d", [2, 10])
def test_psi_route_equals_autodiff_of_the_same_network(x64, d):
    """The Ψ route's S, ∇Ψ, (∇S)S (the channel pass at d ≤ 8, reverse passes and one
    Hessian-vector product above) equal per-point nested autodiff of (E_θ, Ψ_θ), and the fox
    force it feeds is βx + (D̄ + βτD_A)S + τD_AD̄ ∇(Ψ − ½|S|²)."""
    m = _psi_model(d)
    assert m.route == "psi"
    t = 0.3
    st = m.prepare(jnp.float64(t))
    xs = jax.random.normal(jax.random.key(1), (d, 7), jnp.float64)
    dv = jax.jit(lambda s, x: psi_derivs_batch(s, x))(st, xs)
    from activegen.physics.forces import force_fox

    def reference(x):
        ref = autodiff_derivs(lambda y: -energy_psi_at(st, y)[0], x)
        gpsi = jax.grad(lambda y: energy_psi_at(st, y)[1])(x)
        corr = jax.grad(lambda y: energy_psi_at(st, y)[1]
                        - 0.5 * jnp.sum(jax.grad(lambda z: energy_psi_at(st, z)[0])(y) ** 2))(x)
        return ref, gpsi, energy_psi_at(st, x)[1], corr

    ref, gpsi, psi, corr = jax.jit(jax.vmap(reference, 1, -1))(xs)
    hs = jnp.einsum("ijn,jn->in", ref.hessian, ref.score)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)  # noqa: E731
    close(dv.score, ref.score)
    close(dv.hess_score, hs)
    close(dv.grad_div + 2 * dv.hess_score, gpsi)
    close(dv.div, psi - jnp.sum(ref.score ** 2, 0))
    if d <= 8:
        close(dv.hessian, ref.hessian)
    p = m.process
    ta, db = p.tau * p.d_active, p.d_bar(t)
    close(force_fox(p, t, xs, dv), p.beta * xs + (db + p.beta * ta) * ref.score + ta * db * corr)


def test_routes_recorded_and_old_models_keep_theirs():
    """A model with the Ψ head samples fox on the Ψ route where asked (info["route"]) and by
    default above d = 8, the exact third-derivative pass by default at d ≤ 8 and on request; a
    model without the head (trained before it) keeps the third-derivative route."""
    m = _psi_model(2)
    net32 = jax.tree.map(lambda a: a.astype(jnp.float32) if eqx.is_array(a) else a, m.net)
    assert LearnedScore(net32, m.config, m.data).route == "taylor"
    m = LearnedScore(net32, m.config, m.data, route="psi")
    big = _psi_model(10)
    assert LearnedScore(big.net, big.config, big.data).route == "psi"
    assert LearnedScore(big.net, big.config, big.data, hutchinson=2).route == "probes"
    kw = dict(seed=0, t_final=0.2, dt=0.05, t_min=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert sample(m, "fox", PROC, 64, **kw).info["route"] == "psi"
        old_route = LearnedScore(m.net, m.config, m.data, route="derivatives")
        assert sample(old_route, "fox", PROC, 64, **kw).info["route"] == "taylor"
        cfg = dict(m.config, psi=False)
        net = ScoreNet(2, "energy", 16, 2, 4, jax.random.key(0), 4, 4.0)
        assert LearnedScore(net, cfg, m.data).route == "taylor"
    with pytest.raises(Exception, match="Psi head"):
        LearnedScore(net, cfg, m.data, route="psi")


def test_end_game_default_follows_the_models_own_validity():
    """The default end-game time scans the model's own τ‖∇F_0‖/√d: data of full rank give the
    scan's first point (the training t_min); data on a plane in 3D (a constant coordinate:
    ∇S ~ 1/v(t) across it) give a later time, where the scale has come down to the threshold."""
    rng = np.random.default_rng(0)
    full = rng.normal(size=(2000, 3))
    flat = full.copy()
    flat[:, 2] = 0.5
    kw = dict(process=PROC, steps=20, width=8, depth=1, batch=64, n_fourier=0, t_max=3.0)
    m_full, _ = train(full, **kw)
    m_flat, _ = train(flat, **kw)
    assert m_full.end_game_t_min(1.0) == pytest.approx(m_full.config["t_min"])
    from activegen.samplers.endgame import default_t_min
    from activegen.samplers.registry import get_method

    fox = get_method("fox")
    assert default_t_min(fox, m_full, False, 3.0) == 0.0  # nothing to guard: no end game
    t_flat = m_flat.end_game_t_min(1.0)
    times, vals = m_flat.end_game_scan()
    assert t_flat > 10 * m_flat.config["t_min"]
    assert np.all(vals[times >= t_flat] <= 1.0) and np.any(vals[times < t_flat] > 1.0)
    assert default_t_min(fox, m_flat, False, 3.0) == t_flat
    assert default_t_min(fox, m_flat, True, 3.0) == 0.0  # energetics: no jump
    assert default_t_min(get_method("passive"), m_flat, False, 3.0) == 0.0


def test_learned_psi_head_fits_the_closed_form():
    """The Ψ head of a model trained on mixture draws (2000 steps) against the closed form
    `mixture_psi` on the model's marginal: its rms error is under 0.6× (t = 0.3) and 0.85×
    (t = 1, where the modes have merged and the Gaussian part is already close) that of the
    Gaussian part alone (the fit of the data's mean and covariance, the residual set to 0),
    so the learned residual carries the modes (measured 0.35×, 0.75×)."""
    data = np.asarray(MIX.sample(jax.random.key(0), 20_000))
    model, _ = train(data, process=PROC, steps=2000, batch=256, seed=0, t_max=3.0, psi=True)
    from activegen.learning.derivatives import energy_psi_batch

    for t, factor in ((0.3, 0.6), (1.0, 0.85)):
        st = model.prepare(t)
        xs = jnp.asarray(np.asarray(MIX.sample_marginal(jax.random.key(2), 4000, PROC, t)).T, jnp.float32)
        _, psi = energy_psi_batch(st, xs)
        ref = jax.vmap(lambda y: mixture_psi(MIX.marginal_state(PROC, t), y), 1)(xs)
        gauss = energy_psi_batch(st._replace(psi_scale=0.0 * st.psi_scale), xs)[1]
        rms = lambda a: float(jnp.sqrt(jnp.mean((a - ref) ** 2) / jnp.mean(ref ** 2)))  # noqa: E731
        assert rms(psi) < factor * rms(gauss), (t, rms(psi), rms(gauss))


def test_cli_train_learns_psi_where_the_route_needs_it(tmp_path):
    """`train` learns the Ψ head by default above d = 8 (the Ψ route's domain), not at d ≤ 8;
    --psi / --no-psi override; the model's fox run records its route."""
    import json

    from activegen.cli import main

    rng = np.random.default_rng(0)
    for d, flag, want in ((10, [], True), (10, ["--no-psi"], False), (2, [], False), (2, ["--psi"], True)):
        np.save(tmp_path / f"x{d}.npy", rng.normal(size=(300, d)).astype(np.float32))
        out = tmp_path / f"m{d}{''.join(flag)}"
        assert main(["train", "--data", str(tmp_path / f"x{d}.npy"), "--tau", "0.05", "--steps", "5",
                     "--width", "8", "--depth", "1", "--batch", "32", "--out", str(out),
                     "--no-progress", *flag]) == 0
        assert json.loads((out / "config.json").read_text())["psi"] is want
