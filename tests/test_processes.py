"""Forward process: closed-form v(t), c(t) against the Lyapunov equation and simulation."""

import jax
import numpy as np
import pytest

from activegen import ActiveOU, ActivegenError

PARAMS = [
    (1.0, 0.0, 1.0, 0.1),
    (1.0, 0.3, 1.0, 0.5),
    (2.0, 0.1, 0.5, 0.02),
    (0.5, 0.0, 2.0, 3.0),
]


@pytest.mark.parametrize("beta,dt_,da,tau", PARAMS)
@pytest.mark.parametrize("t", [0.003, 0.2, 1.0, 4.0])
def test_moments_match_lyapunov(beta, dt_, da, tau, t):
    with jax.enable_x64(True):
        p = ActiveOU(beta, dt_, da, tau)
        sig = p.lyapunov_covariance(t)
        assert float(p.variance(t)) == pytest.approx(sig[0, 0], rel=1e-7, abs=1e-12)
        assert float(p.cross_cov(t)) == pytest.approx(sig[0, 1], rel=1e-7, abs=1e-12)
        assert float(p.d_eff(t)) == pytest.approx(dt_ + sig[0, 1], rel=1e-7)


def test_stationary_variance():
    with jax.enable_x64(True):
        p = ActiveOU(1.3, 0.2, 0.7, 0.4)
        assert float(p.variance(60.0)) == pytest.approx(p.stationary_variance, rel=1e-10)


def test_limit_two_beta_equals_a_is_continuous():
    # a = β + 1/τ = 2β at τ = 1/β.
    with jax.enable_x64(True):
        beta = 2.0
        for t in [0.01, 0.5, 2.0]:
            at = float(ActiveOU(beta, 0.1, 1.0, 1 / beta).variance(t))
            near = [float(ActiveOU(beta, 0.1, 1.0, 1 / beta + e).variance(t)) for e in (-1e-7, 1e-7)]
            assert near[0] == pytest.approx(at, rel=1e-6)
            assert near[1] == pytest.approx(at, rel=1e-6)
            lyap = ActiveOU(beta, 0.1, 1.0, 1 / beta).lyapunov_covariance(t)[0, 0]
            assert at == pytest.approx(lyap, rel=1e-7)


def test_passive_limit():
    with jax.enable_x64(True):
        p = ActiveOU(1.0, 0.3, 1.0, 0.0)
        t = 0.7
        assert float(p.variance(t)) == pytest.approx(1.3 * (1 - np.exp(-2 * t)), rel=1e-12)
        assert float(p.d_eff(t)) == pytest.approx(1.3)
        # small τ approaches the passive moments
        assert float(ActiveOU(1.0, 0.3, 1.0, 1e-5).variance(t)) == pytest.approx(
            float(p.variance(t)), rel=1e-4
        )


def test_brute_force_simulation_matches_moments():
    p = ActiveOU(1.0, 0.2, 1.0, 0.3)
    n, t = 40_000, 1.0
    x0 = np.zeros((n, 1), np.float32) + 1.5
    x, eta = p.simulate(jax.random.key(0), x0, t, dt=0.001)
    x, eta = np.asarray(x[:, 0], np.float64), np.asarray(eta[:, 0], np.float64)
    v, c = float(p.variance(t)), float(p.cross_cov(t))
    # mean: sd of the sample mean is √(v/n); 5σ (+ the O(dt) Euler bias)
    assert abs(x.mean() - 1.5 * np.exp(-t)) < 5 * np.sqrt(v / n) + 2e-3
    # variance: sd of the sample variance is v√(2/n)
    assert abs(x.var() - v) < 5 * v * np.sqrt(2 / n) + 2e-3
    # covariance: sd ≈ √((v·b + c²)/n), b = D_A/τ
    b = p.eta_variance
    cov = np.mean((x - x.mean()) * (eta - eta.mean()))
    assert abs(cov - c) < 5 * np.sqrt((v * b + c * c) / n) + 2e-3


@pytest.mark.parametrize(
    "kw,name",
    [({"tau": -0.1}, "tau"), ({"beta": 0.0}, "beta"), ({"d_active": float("nan")}, "d_active"),
     ({"d_thermal": -1.0}, "d_thermal"), ({"tau": float("inf")}, "tau")],
)
def test_bad_parameters_are_rejected(kw, name):
    with pytest.raises(ActivegenError, match=name):
        ActiveOU(**kw)
