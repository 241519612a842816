"""Scores and their derivatives against autodiff and finite differences; F = −∇V."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activegen import (
    FORCES,
    ActiveOU,
    GaussianMixture,
    MixtureScore,
    autodiff_derivs,
    default_target_2d,
    mixture_derivs,
)
from activegen.physics.targets import mixture_log_prob


def _random_mixture(seed, d, k):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, d, d))
    covs = a @ np.swapaxes(a, 1, 2) + 0.3 * np.eye(d)
    return GaussianMixture(rng.random(k) + 0.1, rng.normal(size=(k, d)) * 2, covs)


@pytest.mark.parametrize("d,k", [(1, 2), (2, 4), (3, 3)])
def test_closed_form_derivatives_equal_autodiff(d, k):
    with jax.enable_x64(True):
        tg = _random_mixture(d * 10 + k, d, k)
        p = ActiveOU(1.0, 0.1, 1.0, 0.2)
        st_ = MixtureScore(tg, p).prepare(0.3)
        for x in np.random.default_rng(0).normal(size=(5, d)) * 2:
            cf = mixture_derivs(st_, jnp.asarray(x))
            ad = autodiff_derivs(lambda y: mixture_log_prob(st_, y), jnp.asarray(x))
            for a, b in zip(cf, ad):
                if a is None and b is None:  # optional fields (probe estimates) unset
                    continue
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


def test_derivatives_match_finite_differences():
    with jax.enable_x64(True):
        tg = default_target_2d()
        sc = MixtureScore(tg, ActiveOU(1.0, 0.0, 1.0, 0.1))
        st_ = sc.prepare(0.2)
        x = jnp.array([0.3, -0.7])
        h = 1e-5
        dv = sc.derivs(st_, x)
        eye = np.eye(2)
        fd_score = [(mixture_log_prob(st_, x + h * e) - mixture_log_prob(st_, x - h * e)) / (2 * h) for e in eye]
        np.testing.assert_allclose(dv.score, fd_score, rtol=1e-6)
        fd_hess = np.stack([(sc.derivs(st_, x + h * e).score - sc.derivs(st_, x - h * e).score) / (2 * h) for e in eye], 1)
        np.testing.assert_allclose(dv.hessian, fd_hess, rtol=1e-6, atol=1e-8)
        fd_gd = [(sc.derivs(st_, x + h * e).div - sc.derivs(st_, x - h * e).div) / (2 * h) for e in eye]
        np.testing.assert_allclose(dv.grad_div, fd_gd, rtol=1e-6, atol=1e-8)


def test_joint_score_equals_autodiff_of_joint_density():
    with jax.enable_x64(True):
        tg = default_target_2d()
        p = ActiveOU(1.0, 0.2, 1.0, 0.3)
        sc = MixtureScore(tg, p)
        t = 0.5
        js = sc.prepare_joint(t)
        x, eta = jnp.array([0.4, -1.0]), jnp.array([1.2, 0.3])
        gx, ge = sc.joint_score(js, x, eta)
        f = lambda a, b: tg.joint_log_prob(a[None], b[None], p, t)[0]  # noqa: E731
        ax, ae = jax.grad(f, argnums=(0, 1))(x, eta)
        np.testing.assert_allclose(gx, ax, rtol=1e-9)
        np.testing.assert_allclose(ge, ae, rtol=1e-9)


def _check_gradient(tg, proc, t, x, name):
    st_ = tg.marginal_state(proc, t)
    lp = lambda y: mixture_log_prob(st_, y)  # noqa: E731
    fo = FORCES[name]
    V = lambda y: fo.potential(proc, t, y, autodiff_derivs(lp, y))  # noqa: E731
    F = fo.force(proc, t, x, mixture_derivs(st_, x))
    np.testing.assert_allclose(F, -jax.grad(V)(x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(FORCES))
@pytest.mark.parametrize("d", [1, 2])
def test_force_is_minus_gradient_of_potential(name, d):
    with jax.enable_x64(True):
        tg = _random_mixture(7 + d, d, 3)
        proc = ActiveOU(1.3, 0.2, 0.8, 0.15)
        for t in (0.05, 0.6):
            for x in np.random.default_rng(d).normal(size=(3, d)):
                _check_gradient(tg, proc, t, jnp.asarray(x), name)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    tau=st.floats(0.01, 1.0),
    beta=st.floats(0.2, 3.0),
    t=st.floats(0.01, 3.0),
    name=st.sampled_from(sorted(FORCES)),
)
def test_force_gradient_property(seed, tau, beta, t, name):
    with jax.enable_x64(True):
        tg = _random_mixture(seed, 2, 2)
        proc = ActiveOU(beta, 0.1, 1.0, tau)
        x = jnp.asarray(np.random.default_rng(seed).normal(size=2))
        _check_gradient(tg, proc, t, x, name)


def test_forces_reduce_to_passive_drift_at_tau_zero():
    """At τ = 0 every force is the passive reverse drift βx + 2D S."""
    with jax.enable_x64(True):
        tg = default_target_2d()
        proc = ActiveOU(1.0, 0.3, 1.0, 0.0)
        t = 0.4
        st_ = tg.marginal_state(proc, t)
        x = jnp.array([0.2, 0.9])
        dv = mixture_derivs(st_, x)
        passive = proc.beta * x + 2 * proc.diffusivity * dv.score
        for fo in FORCES.values():
            np.testing.assert_allclose(fo.force(proc, t, x, dv), passive, rtol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_driver_correction_is_grad_laplacian_over_p(d):
    """δF = −κτD_A² ∇(Δp)/p, checked against autodiff of p itself."""
    from activegen.physics.forces import force_driver_correction

    with jax.enable_x64(True):
        tg = _random_mixture(3 + d, d, 3)
        proc = ActiveOU(1.0, 0.0, 0.7, 0.2)
        st_ = tg.marginal_state(proc, 0.3)
        dens = lambda y: jnp.exp(mixture_log_prob(st_, y))  # noqa: E731
        lap = lambda y: jnp.trace(jax.hessian(dens)(y))  # noqa: E731
        for x in np.random.default_rng(d).normal(size=(3, d)):
            x = jnp.asarray(x)
            want = -0.5 * 0.2 * 0.7**2 * jax.grad(lap)(x) / dens(x)
            got = force_driver_correction(proc, 0.5, 0.3, x, mixture_derivs(st_, x))
            np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)


def test_diagonal_fast_path_equals_general():
    """The diagonal-covariance shortcut of the batched closed form gives the general result."""
    from activegen.physics.scores import mixture_derivs_batch

    tg = GaussianMixture.from_stds([0.3, 0.7], [[-1.0, 0.5, 0.0], [1.0, -0.5, 2.0]], [0.6, 1.1])
    assert tg.diagonal and not default_target_2d().diagonal
    st_ = tg.marginal_state(ActiveOU(1.0, 0.0, 1.0, 0.2), 0.3)
    xs = jnp.asarray(np.random.default_rng(0).normal(size=(3, 5)))  # (d, N)
    for a, b in zip(mixture_derivs_batch(st_, xs, True), mixture_derivs_batch(st_, xs, False)):
        if a is None and b is None:  # optional fields (probe estimates) unset
            continue
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
