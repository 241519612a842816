"""Accuracy per step (issue 17): the second-order schemes and their Δs-convergence orders.

The orders are weak orders on a Gaussian target, where every scheme is an affine map of the
state and the step's normals: the map is read off one step applied to probe particles (a
unit state or a unit normal each; the schemes act on each particle alone), and the exact
mean and variance of the scheme's samples follow in float64, free of sampling noise.
Orders are fitted over Δs = τ, τ/2, τ/4 (τ = 0.1) and asserted within ±0.35 of 1 (euler) or 2.
"""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from activegen import ActiveOU, GaussianMixture, log_slope, sample
from activegen.physics.drivers import OUDriver
from activegen.physics.forces import force_fox
from activegen.samplers.active import active_heun_stepper, active_stepper, score_field
from activegen.samplers.exact import exact_lawson_stepper, exact_stepper, exact_strang_stepper
from activegen.samplers.passive import passive_heun_stepper, passive_stepper
from activegen.physics.scores import as_score_model

MU, SIGMA, T = 2.0, 0.5, 1.0
PROC = ActiveOU(1.0, 0.0, 1.0, 0.1)
HS = (PROC.tau, PROC.tau / 2, PROC.tau / 4)


class _ProbeDriver(OUDriver):
    """An OU driver whose step takes its two normals from the probe arrays z1, z2."""

    def __init__(self, tau, d_active, z1, z2):
        super().__init__(tau, d_active)
        object.__setattr__(self, "z", (z1, z2))

    def step(self, eta, h, key):  # the trapezoid scheme's driver step
        a, sd = math.exp(-h / self.tau), math.sqrt(self.variance * -math.expm1(-2 * h / self.tau))
        return a * eta + sd * self.z[0]

    def step_integral(self, eta, h, key):
        from activegen.physics.stepping import ou_integral_coefficients

        a, sd, w, c2 = ou_integral_coefficients(h, self.tau, self.variance)
        eta_new = a * eta + sd * self.z[0]
        return eta_new, w * (eta + eta_new) + c2 * self.z[1]


def _x64():
    """float64 inside a block (jax.enable_x64 in JAX 0.10; jax.experimental's before)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64()


def _unit(k, n):
    return jnp.zeros((1, n), jnp.float64).at[0, k].set(1.0)


def _moments(method, scheme, h):
    """(mean, variance) of x after the scheme's run from T to 0 on N(MU, SIGMA²)."""
    tg = GaussianMixture.from_stds([1.0], [[MU]], [SIGMA])
    p = PROC
    with _x64():
        score = as_score_model(tg, p)
        dt = jnp.float64
        e, v = math.exp(-p.beta * T), float(p.variance(T))
        var_x = v + SIGMA**2 * e * e
        if method == "passive":
            n_z, n_w = 1, 1
            st = (passive_heun_stepper if scheme == "heun" else passive_stepper)(score, p, T, dt)
            probes = {"x": _unit(1, 3), "xi": _unit(2, 3)}
            m, cov = np.array([MU * e]), np.array([[var_x]])
        else:
            c = float(p.cross_cov(T))
            m, cov = np.array([MU * e, 0.0]), np.array([[var_x, c], [c, p.eta_variance]])
            if method == "exact":
                n_z, n_w = 2, 4
                zs = [_unit(3 + k, 7) for k in range(4)]
                calls = []

                def normal(key, shape, dtype):
                    calls.append(1)
                    return zs[(len(calls) - 1) % 4]

                if scheme == "strang":
                    st = exact_strang_stepper(score, p, T, dt, "heun", normal)
                elif scheme == "lawson":
                    zs = zs[:2] + zs[:2]  # two normals per step
                    st = exact_lawson_stepper(score, p, T, dt, normal)
                else:  # the Euler step draws η's normal from its OUDriver
                    import activegen.samplers.exact as ex

                    old, ex.OUDriver = ex.OUDriver, lambda tau, da: _ProbeDriver(
                        tau, da, zs[0], zs[1])
                    try:
                        st = exact_stepper(score, p, T, dt)
                    finally:
                        ex.OUDriver = old
            else:  # fox: x ~ marginal, η independent of x
                n_z, n_w = 2, 2
                cov[0, 1] = cov[1, 0] = 0.0
                drv = _ProbeDriver(p.tau, p.d_active, _unit(3, 5), _unit(4, 5))
                make = active_heun_stepper if scheme == "heun" else active_stepper
                st = make(score_field(force_fox, score, p, dt), None, p, T, dt, drv)
            n = 1 + n_z + n_w
            probes = {"x": _unit(1, n), "eta": _unit(2, n)}
            if method == "fox":
                probes["tjf"] = jnp.zeros((), dt)
            if scheme == "lawson":  # its normals are carried, drawn one step ahead
                probes["xi"] = jnp.stack([zs[0], zs[1]])
        key, names = jax.random.key(0), ("x", "eta")[:n_z]

        def one(carry, i):  # the step's affine map from the probes, then the moments
            m, cov = carry
            out = st.step(probes, 0, i * h, h, key)
            z = jnp.stack([out[name][0] for name in names])
            b = z[:, 0]
            M = z[:, 1:1 + n_z] - b[:, None]
            K = z[:, 1 + n_z:] - b[:, None]
            return (M @ m + b, M @ cov @ M.T + K @ K.T), None

        run = jax.jit(lambda m, cov: jax.lax.scan(one, (m, cov), jnp.arange(round(T / h)))[0])
        m, cov = (np.asarray(a) for a in run(jnp.asarray(m), jnp.asarray(cov)))
    return m[0], cov[0, 0]


def _order(method, scheme, ref=None):
    errs = []
    for h in HS:
        mean, var = _moments(method, scheme, h)
        target_mean, target_var = ref if ref is not None else (MU, SIGMA**2)
        errs.append(abs(var - target_var) + abs(mean - target_mean))
    return log_slope(HS, errs), errs


@pytest.mark.parametrize("method,new", [("passive", "heun"), ("exact", "strang"),
                                        ("exact", "lawson"), ("fox", "heun")])
def test_weak_order_two(method, new):
    """The new schemes are second order; at Δs = τ/4 they beat the old (euler) by ≥ 2.5×.
    passive and exact are exact in law (the error is the step's alone); fox has its own
    O(τ²) error and is measured against its run at Δs = τ/32. Measured orders (float64
    moments): passive 1.93, exact strang 2.06, exact lawson 1.59 (pre-asymptotic: 1.48 then
    1.71 between neighbours, with 2.5–5× smaller errors than strang's), fox 1.89; the old
    schemes 1.26, 1.85, 1.45 over the same steps (pre-asymptotic: first order below τ/10)."""
    ref = _moments(method, new, PROC.tau / 32) if method == "fox" else None
    got, errs = _order(method, new, ref)
    if new == "lawson":
        assert 1.45 < got < 2.35 and log_slope(HS[1:], errs[1:]) > 1.55, (got, errs)
    else:
        assert abs(got - 2) < 0.35, (got, errs)
    ref = ref or (MU, SIGMA**2)  # fox's schemes share the Δs → 0 limit
    mean, var = _moments(method, "euler", HS[2])
    old = abs(var - ref[1]) + abs(mean - ref[0])
    assert old > 2.5 * errs[2], (old, errs)


def test_ou_integral_is_exact():
    """(η_h, ∫_0^h η) of the OU driver: Var ∫ = 2D_A[h − 2τ(1 − a) + τ(1 − a²)/2],
    Cov(∫, η_h) = (D_A/τ) τ(1 − a)², a = e^{−h/τ}, given η_0 (2·10⁵ draws: 1 % on each)."""
    tau, d_a, h, n = 0.05, 1.0, 0.0125, 200_000
    drv = OUDriver(tau, d_a)
    eta0 = jnp.full((1, n), 0.7)
    eta, inc = (np.asarray(a)[0] for a in drv.step_integral(eta0, h, jax.random.key(1)))
    a = math.exp(-h / tau)
    np.testing.assert_array_equal(eta, np.asarray(drv.step(eta0, h, jax.random.key(1)))[0])
    assert abs(inc.mean() - 0.7 * tau * (1 - a)) < 4 * inc.std() / math.sqrt(n)
    var_i = 2 * d_a * (h - 2 * tau * (1 - a) + tau * (1 - a * a) / 2)
    assert abs(inc.var() / var_i - 1) < 0.02
    cov = np.mean((inc - inc.mean()) * (eta - eta.mean()))
    assert abs(cov / (d_a / tau * tau * (1 - a) ** 2) - 1) < 0.02


def test_far_target_has_no_step_bias():
    """βx integrated exactly: a mode at |μ| = 10³ is not moved by the step (the Euler
    steps moved it by ≈ 4.6·10⁻⁴|μ| at Δs = 0.002: −0.6 at Δs = 0.0025 here, T = 1)."""
    tg = GaussianMixture.from_stds([1.0], [[1000.0]], [1.0])
    n = 10_000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = sample(tg, "fox", ActiveOU(1.0, 0.0, 1.0, 0.05), n, seed=1, t_final=1.0,
                   scheme="heun").samples
    # measured (seed 1): passive +0.002, exact +0.010, fox +0.002 (sd of the mean 0.01)
    assert abs(x.mean() - 1000.0) < 5 / math.sqrt(n) + 0.01, x.mean()


# -- the per-method defaults (issue 17) -------------------------------------------------------
def test_each_method_declares_its_default_scheme_and_step():
    """heun for passive (Δs = min(τ/4, 0.0125)) and the active methods (min(τ/3, 0.02)),
    lawson for exact (min(τ/2.5, 0.02)); euler on request (min(τ/20, 0.002)); energetics runs
    default to euler."""
    from activegen.samplers import build_plan, get_method

    tg = GaussianMixture.from_stds([0.5, 0.5], [[-1.0], [1.0]], [0.6, 0.6])
    a = 0.05 / 3
    expect = {"passive": ("heun", 0.0125), "exact": ("lawson", 0.02), "fox": ("heun", a),
              "naive": ("heun", a), "ucn": ("heun", a), "fox-sc": ("heun", a)}
    p = ActiveOU(1.0, 0.0, 1.0, 0.05)
    for m, (scheme, dt) in expect.items():
        assert get_method(m).options["scheme"] == scheme
        _, req, plan = build_plan(tg, m, p, 1000, t_final=1.0)
        assert req.options["scheme"] == scheme and plan.info["scheme"] == scheme
        assert plan.grid.h == pytest.approx(dt), m
        _, _, plan = build_plan(tg, m, p, 1000, t_final=1.0, scheme="euler")
        assert plan.grid.h == pytest.approx(0.002), m
    _, req, _ = build_plan(tg, "fox", p, 100, t_final=1.0, energetics=True)
    assert req.options["scheme"] == "euler"
    # a score model without a narrowest scale (a learned one: unbounded stiffness at t → 0)
    from activegen import MixtureScore

    _, req, plan = build_plan(MixtureScore(tg, p), "fox", p, 100, t_final=1.0)
    assert req.options["scheme"] == "euler" and plan.grid.h == pytest.approx(0.002)
    _, req, _ = build_plan(MixtureScore(tg, p), "fox", p, 100, t_final=1.0, scheme="heun")
    assert req.options["scheme"] == "heun"
    _, _, plan = build_plan(tg, "fox", ActiveOU(1.0, 0.0, 1.0, 0.02), 100, t_final=1.0)
    assert plan.grid.h == pytest.approx(1 / 150)  # τ/3 on T = 1


def test_a_default_step_is_never_coarse():
    """Narrow modes (σ_min = 0.1: σ²/(2D) = 0.005) and a stiff trap (β = 20: 0.1/β = 0.005)
    cap the default step, so that a default run does not warn about its own step."""
    from activegen.samplers.validity import CoarseStepWarning

    narrow = GaussianMixture.from_stds([0.5, 0.5], [[-1.0], [1.0]], [0.1, 0.1])
    wide = GaussianMixture.from_stds([0.5, 0.5], [[-1.0], [1.0]], [0.6, 0.6])
    for tg, p in ((narrow, ActiveOU(1.0, 0.0, 1.0, 0.0)), (wide, ActiveOU(20.0, 0.0, 1.0, 0.0))):
        with warnings.catch_warnings():
            warnings.simplefilter("error", CoarseStepWarning)
            r = sample(tg, "passive", p, 200, seed=0, t_final=0.1)
        assert r.info["dt"] == pytest.approx(0.005)
    with pytest.warns(CoarseStepWarning, match="sigma_min"):  # an explicit step is kept
        sample(narrow, "passive", ActiveOU(1.0, 0.0, 1.0, 0.0), 200, seed=0, t_final=0.1,
               dt=0.01)


def test_cli_scheme_option(tmp_path, capsys):
    """--scheme picks the steps and is recorded; a method without schemes refuses it."""
    import json as _json

    from activegen.cli import main

    t = tmp_path / "t.json"
    t.write_text(_json.dumps({"weights": [1.0], "means": [[0.0]], "stds": [1.0]}))
    out = tmp_path / "o.npz"
    base = ["sample", "--target", str(t), "--tau", "0.1", "--n", "50", "--t-final", "0.5",
            "--no-progress", "--out", str(out)]
    assert main(base + ["--method", "exact", "--scheme", "strang"]) == 0
    info = _json.loads(str(np.load(out)["info"]))
    assert info["scheme"] == "strang" and info["n_steps"] == 40  # min(τ/4, 0.0125)
    out.unlink()
    assert main(base + ["--method", "ode", "--scheme", "heun"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scheme" in err[0] and not out.exists()
    assert main(base + ["--method", "fox", "--scheme", "lawson"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'euler', 'heun'" in err[0] and not out.exists()


# -- the end game (samplers.endgame) -------------------------------------------------------
def test_end_game_stops_at_t_min_and_denoises_with_tweedie():
    """Stopped at t_min, x_t ~ N(mμ, m²σ² + v); x̂ = (x + vS)/m has mean μ and variance
    σ²·m²σ²/(m²σ² + v) exactly (the posterior mean shrinks the spread). 4·10⁴ draws: the
    variance to 4 standard errors (√(2/n) relative)."""
    mu, sig, t_min, n = 2.0, 0.5, 0.2, 40_000
    tg = GaussianMixture.from_stds([1.0], [[mu]], [sig])
    p = ActiveOU(1.0, 0.0, 1.0, 0.0)
    r = sample(tg, "passive", p, n, seed=3, t_final=1.0, t_min=t_min)
    m, v = float(p.mean_scale(t_min)), float(p.variance(t_min))
    var = sig**2 * m**2 * sig**2 / (m**2 * sig**2 + v)
    x = r.samples[:, 0]
    assert r.info["t_min"] == t_min and r.info["n_steps"] == 64  # (1 − 0.2)/0.0125
    assert abs(x.mean() - mu) < 4 * math.sqrt(var / n)
    assert abs(x.var() / var - 1) < 4 * math.sqrt(2 / n), (x.var(), var)
    assert abs(r.info["denoise_jump"]) > 0.1  # the jump is real (≈ √v(t_min) scale)


def test_end_game_refused_where_it_does_not_apply(tmp_path, capsys):
    from activegen import ActivegenError
    from activegen.cli import main

    tg = GaussianMixture.from_stds([1.0], [[0.0]], [1.0])
    p = ActiveOU(1.0, 0.0, 1.0, 0.1)
    with pytest.raises(ActivegenError, match=r"t_min must lie in \[0, t_final"):
        sample(tg, "fox", p, 10, seed=0, t_final=1.0, t_min=1.0)
    with pytest.raises(ActivegenError, match="energetics"):
        sample(tg, "fox", p, 10, seed=0, t_final=1.0, t_min=0.1, energetics=True)
    with pytest.raises(ActivegenError, match="uniform grid"):
        sample(tg, "ode", p, 10, seed=0, t_final=1.0, t_min=0.1)
    with pytest.raises(ActivegenError, match="t_min"):
        sample(tg, "fox", p, 10, seed=0, t_final=1.0, t_min=-0.1)
    t = tmp_path / "t.json"
    t.write_text('{"weights": [1.0], "means": [[0.0]], "stds": [1.0]}')
    out = tmp_path / "o.npz"
    assert main(["sample", "--target", str(t), "--method", "fox", "--tau", "0.1", "--n", "20",
                 "--t-final", "1", "--t-min", "2", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "t_min" in err[0] and not out.exists()
