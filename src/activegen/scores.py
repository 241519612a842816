"""Scores S = ∇ log p(x,t) and their derivatives, behind one interface.

A score model has
    prepare(t)          -> state    (per-time quantities, computed once per step)
    log_prob(state, x)  -> log p    (one point x of shape (d,))
    derivs(state, x)    -> ScoreDerivs(log_p, score, hessian, grad_div)
with hessian = ∇S (the Jacobian of the score) and grad_div = ∇(∇·S): the score and its
derivatives up to 2nd order, all the forces of THEORY.md §2 need. The generic route is
JAX autodiff of log_prob (`autodiff_derivs`); the Gaussian mixture also has closed forms,
tested equal and faster. The exact sampler additionally needs the joint score on (x, η):
    prepare_joint(t) -> state,   joint_score(state, x, η) -> (∇_x log p, ∇_η log p),
    sample_joint(key, n, t) -> (x, η)  (its start).
Learned models (`learned.LearnedScore`) implement the same interface.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .processes import ActiveOU
from .targets import GaussianMixture, MixtureState, mixture_log_prob


class ScoreDerivs(NamedTuple):
    """log p, S = ∇log p (d,), ∇S (d,d), ∇(∇·S) (d,) at one point."""

    log_p: jax.Array
    score: jax.Array
    hessian: jax.Array
    grad_div: jax.Array

    @property
    def div(self):
        """∇·S = tr ∇S."""
        return jnp.trace(self.hessian)


def autodiff_derivs(log_prob, x) -> ScoreDerivs:
    """ScoreDerivs of a scalar log-density by autodiff: S = grad, ∇S = jacfwd(grad),
    ∇(∇·S) = grad(tr ∇S)."""
    score_fn = jax.grad(log_prob)
    hess_fn = jax.jacfwd(score_fn)
    grad_div = jax.grad(lambda y: jnp.trace(hess_fn(y)))(x)
    return ScoreDerivs(log_prob(x), score_fn(x), hess_fn(x), grad_div)


def _mixture_terms(state: MixtureState, x):
    """(log p, responsibilities r_k, g_k = −P_k(x − m_k)) at one point."""
    d = x.shape[-1]
    diff = x - state.means  # (K, d)
    g = -jnp.einsum("kij,kj->ki", state.prec, diff)
    quad = -jnp.einsum("ki,ki->k", diff, g)
    comp = state.log_w - 0.5 * (state.logdet + quad + d * jnp.log(2 * jnp.pi))
    log_p = jax.scipy.special.logsumexp(comp)
    return log_p, jnp.exp(comp - log_p), g


def mixture_score(state: MixtureState, x):
    """S = Σ_k r_k g_k (closed form)."""
    _, r, g = _mixture_terms(state, x)
    return r @ g


def mixture_derivs(state: MixtureState, x) -> ScoreDerivs:
    """Closed-form derivatives of log Σ_k w_k N(x; m_k, P_k⁻¹).

    With responsibilities r_k and g_k = −P_k(x − m_k):
      S = Σ r_k g_k,  ∇S = Σ r_k (g_k g_kᵀ − P_k) − S Sᵀ,
      Δp/p = Σ r_k (|g_k|² − tr P_k) = ∇·S + |S|²,
      ∇(Δp/p) = Σ r_k [(g_k − S)(|g_k|² − tr P_k) − 2 P_k g_k],
      ∇(∇·S) = ∇(Δp/p) − 2 (∇S) S.
    """
    log_p, r, g = _mixture_terms(state, x)
    score = r @ g
    hess = jnp.einsum("k,ki,kj->ij", r, g, g) - jnp.einsum("k,kij->ij", r, state.prec)
    hess = hess - jnp.outer(score, score)
    lap_k = jnp.sum(g * g, -1) - jnp.trace(state.prec, axis1=1, axis2=2)  # (K,)
    grad_lap = r @ ((g - score) * lap_k[:, None] - 2.0 * jnp.einsum("kij,kj->ki", state.prec, g))
    grad_div = grad_lap - 2.0 * hess @ score
    return ScoreDerivs(log_p, score, hess, grad_div)


class MixtureScore:
    """The analytic score of a Gaussian-mixture target diffused by an ActiveOU process.

    closed_form=True uses `mixture_derivs`; False uses autodiff of the same log-density.
    """

    def __init__(self, target: GaussianMixture, process: ActiveOU, closed_form: bool = True):
        self.target = target
        self.process = process
        self.closed_form = closed_form

    @property
    def dim(self) -> int:
        return self.target.dim

    def prepare(self, t, dtype=None) -> MixtureState:
        return self.target.marginal_state(self.process, t, dtype)

    def log_prob(self, state: MixtureState, x):
        return mixture_log_prob(state, x)

    def sample_marginal(self, key, n: int, t, dtype=None):
        """n exact draws of the diffused marginal p(x, t) (the samplers' start at t = T)."""
        return self.target.sample_marginal(key, n, self.process, t, dtype)

    def derivs(self, state: MixtureState, x) -> ScoreDerivs:
        if self.closed_form:
            return mixture_derivs(state, x)
        return autodiff_derivs(lambda y: mixture_log_prob(state, y), x)

    def score(self, state: MixtureState, x):
        if self.closed_form:
            return mixture_score(state, x)
        return jax.grad(mixture_log_prob, argnums=1)(state, x)

    # -- joint (x, η) score for the exact sampler ----------------------------
    def prepare_joint(self, t, dtype=None):
        """(conditional mixture state, k = cτ/D_A, b = D_A/τ) at time t."""
        p = self.process
        k = p.cross_cov(t) / p.eta_variance
        return self.target.conditional_state(p, t, dtype), k

    def sample_joint(self, key, n: int, t, dtype=None):
        """n exact draws (x, η) of the joint law p(x, η, t) (the start of method exact)."""
        return self.target.sample_joint(key, n, self.process, t, dtype)

    def joint_score(self, joint_state, x, eta):
        """(∇_x, ∇_η) log p(x,η,t): with z = x − kη and S_c the conditional mixture score,
        ∇_x = S_c(z), ∇_η = −η τ/D_A − k S_c(z)."""
        state, k = joint_state
        s_c = self.score(state, x - k * eta)
        return s_c, -eta / self.process.eta_variance - k * s_c
