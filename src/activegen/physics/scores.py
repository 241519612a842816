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
A model may add `derivs_batch(state, xs)`, `score_batch`, `joint_score_batch` for a whole
ensemble; batched arrays carry the particle axis last (xs of shape (d, N), hessian
(d, d, N)), the layout the samplers run in (docs/performance.md). Learned models
(`learning.model.LearnedScore`) implement the same interface.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._linalg import matvec
from ..errors import ActivegenError
from .processes import ActiveOU
from .targets import GaussianMixture, MixtureState, mixture_log_prob


class ScoreDerivs(NamedTuple):
    """log p, S = ∇log p (d,), ∇S (d,d), ∇(∇·S) (d,) at one point (batched: particle axis
    last, log_p (N,), score (d, N), hessian (d, d, N), grad_div (d, N)).

    Optional fields for models that skip the full ∇S (large d, `learning.model.LearnedScore`
    with probes): hess_score = (∇S)S, jac_trace ≈ ∇·S and jac_fro2 ≈ ‖∇S‖_F² (probe
    estimates E zᵀ(∇S)z and E‖(∇S)z‖², E zzᵀ = I). hessian and grad_div are None where a
    caller asked for less (`derivs_batch(..., order=...)`)."""

    log_p: jax.Array
    score: jax.Array
    hessian: jax.Array | None
    grad_div: jax.Array | None
    hess_score: jax.Array | None = None
    jac_trace: jax.Array | None = None
    jac_fro2: jax.Array | None = None

    @property
    def div(self):
        """∇·S: jac_trace where a route gives it (probes; Ψ − |S|² on a learned model's Ψ
        route, so that V_F's correction is the one its force is the gradient of), else
        tr ∇S."""
        if self.jac_trace is not None:
            return self.jac_trace
        return jnp.trace(self.hessian)


def hessian_score(dv: ScoreDerivs):
    """(∇S)S = ½∇|S|² (vector axes first, any trailing particle axes)."""
    if dv.hess_score is not None:
        return dv.hess_score
    h, s = dv.hessian, dv.score
    return jnp.stack([sum(h[i, j] * s[j] for j in range(s.shape[0])) for i in range(h.shape[0])])


def psi_derivs(log_p, score, grad_psi, hess_score, psi, jac_fro2=None) -> ScoreDerivs:
    """ScoreDerivs from Ψ = Δp/p (THEORY.md §5; a learned model's Ψ head): since
    Δp/p = ∇·S + |S|²,  ∇·S = Ψ − |S|²  and  ∇(∇·S) = ∇Ψ − 2(∇S)S, so the forces' terms
    ∇(∇·S + ½|S|²) = ∇Ψ − (∇S)S and the driver's ∇(Δp)/p − ΨS = ∇Ψ need no third derivative.
    ∇S itself is not formed (hessian None); jac_fro2 ≈ ‖∇S‖_F² for the validity diagnostic."""
    return ScoreDerivs(log_p, score, None, grad_psi - 2.0 * hess_score, hess_score,
                       psi - jnp.sum(score * score, 0), jac_fro2)


def mixture_psi(state: MixtureState, x):
    """Ψ = Δp/p of a Gaussian mixture at one point x (d,): Σ_k r_k (|P_k(x − c_k)|² − tr P_k),
    r_k the posterior weights (Δ of a Gaussian over the Gaussian, averaged); the closed form
    the learned Ψ head is tested against."""
    diff = x - state.means
    pd = matvec(state.prec, diff)
    d = x.shape[-1]
    comp = state.log_w - 0.5 * (state.logdet + jnp.sum(diff * pd, -1) + d * math.log(2 * math.pi))
    r = jax.nn.softmax(comp)
    return jnp.sum(r * (jnp.sum(pd * pd, -1) - jnp.trace(state.prec, axis1=-2, axis2=-1)))


def autodiff_derivs(log_prob, x) -> ScoreDerivs:
    """ScoreDerivs of a scalar log-density by autodiff: S = grad, ∇S = jacfwd(grad),
    ∇(∇·S) = grad(tr ∇S), with ∇S (and S, log p) carried out of that last gradient as
    auxiliary values: the Hessian is computed once."""

    def score_aux(y):
        lp, s = jax.value_and_grad(log_prob)(y)
        return s, (lp, s)

    def trace_aux(y):
        h, (lp, s) = jax.jacfwd(score_aux, has_aux=True)(y)
        return jnp.trace(h), (lp, s, h)

    grad_div, (lp, s, h) = jax.grad(trace_aux, has_aux=True)(x)
    return ScoreDerivs(lp, s, h, grad_div)


def _prec_times(P, v, i, diagonal: bool):
    """(P_k v_k)_i for every k, v a list of d arrays (K, N); diagonal P: P_ii v_i only."""
    if diagonal:
        return P[:, i, i, None] * v[i]
    return sum(P[:, i, j, None] * v[j] for j in range(len(v)))


def _mixture_terms(state: MixtureState, xs, diagonal: bool = False):
    """(log p (N,), unnormalised responsibilities e (K, N), 1/Σ_k e_k (N,), [g_i (K, N)]
    for i < d) with g_k = −P_k(x − m_k) and r_k = e_k / Σe, for points xs of shape (d, N).

    Particles last: every array is (K, N) per coordinate, written elementwise, so that
    XLA CPU fuses the evaluation into a few vectorised loops over particles (docs/
    performance.md: with the particles first, (N, d), the fusions that end in an (N, d)
    array interleave the coordinates and are not vectorised, ~3× slower)."""
    d = xs.shape[0]
    P = state.prec
    diff = [xs[j][None, :] - state.means[:, j, None] for j in range(d)]
    g = [-_prec_times(P, diff, i, diagonal) for i in range(d)]
    quad = -sum(diff[i] * g[i] for i in range(d))
    comp = (state.log_w - 0.5 * (state.logdet + d * math.log(2 * math.pi)))[:, None] - 0.5 * quad
    m = jax.lax.stop_gradient(jnp.max(comp, 0))
    e = jnp.exp(comp - m)
    z = jnp.sum(e, 0)
    return m + jnp.log(z), e, 1.0 / z, g


def _mean(e, iz, a):
    """Σ_k r_k a_k = (Σ_k e_k a_k) / Σ_k e_k for a (K, N): one division per particle."""
    return jnp.sum(e * a, 0) * iz


def mixture_score_batch(state: MixtureState, xs, diagonal: bool = False):
    """S = Σ_k r_k g_k (closed form) at points xs (d, N) -> (d, N). diagonal: every P_k
    is diagonal (skips the zero products)."""
    _, e, iz, g = _mixture_terms(state, xs, diagonal)
    return jnp.stack([_mean(e, iz, gi) for gi in g])


def mixture_derivs_batch(state: MixtureState, xs, diagonal: bool = False) -> ScoreDerivs:
    """Closed-form derivatives of log Σ_k w_k N(x; m_k, P_k⁻¹) at points xs (d, N).

    With responsibilities r_k and g_k = −P_k(x − m_k):
      S = Σ r_k g_k,  ∇S = Σ r_k (g_k g_kᵀ − P_k) − S Sᵀ  (symmetric: i ≤ j computed),
      Δp/p = Σ r_k (|g_k|² − tr P_k) = ∇·S + |S|²,
      ∇(Δp/p) = Σ r_k [(g_k − S)(|g_k|² − tr P_k) − 2 P_k g_k],
      ∇(∇·S) = ∇(Δp/p) − 2 (∇S) S.
    Returns ScoreDerivs with the particle axis last: log_p (N,), score (d, N),
    hessian (d, d, N), grad_div (d, N). diagonal: every P_k is diagonal.
    """
    d = xs.shape[0]
    P = state.prec
    log_p, e, iz, g = _mixture_terms(state, xs, diagonal)
    S = [_mean(e, iz, gi) for gi in g]
    H = [[None] * d for _ in range(d)]
    for i in range(d):
        for j in range(i, d):
            gg = g[i] * g[j]
            if not (diagonal and i != j):
                gg = gg - P[:, i, j, None]
            H[i][j] = H[j][i] = _mean(e, iz, gg) - S[i] * S[j]
    lap_k = sum(gi * gi for gi in g) - jnp.trace(P, axis1=1, axis2=2)[:, None]
    grad_lap = [
        _mean(e, iz, (g[i] - S[i]) * lap_k - 2.0 * _prec_times(P, g, i, diagonal))
        for i in range(d)
    ]
    grad_div = [grad_lap[i] - 2.0 * sum(H[i][j] * S[j] for j in range(d)) for i in range(d)]
    return ScoreDerivs(
        log_p, jnp.stack(S), jnp.stack([jnp.stack(row) for row in H]), jnp.stack(grad_div)
    )


def _one(batch_fn):
    """The single-point version (x of shape (d,)) of a batched function."""

    def one(state, x):
        return jax.tree.map(lambda a: a[..., 0], batch_fn(state, x[:, None]))

    one.__doc__ = f"{batch_fn.__name__} at one point x of shape (d,)."
    return one


mixture_score = _one(mixture_score_batch)
mixture_derivs = _one(mixture_derivs_batch)


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

    def derivs_batch(self, state: MixtureState, xs) -> ScoreDerivs:
        """`derivs` at points xs (d, N), with the particle axis last."""
        if self.closed_form:
            return mixture_derivs_batch(state, xs, self.target.diagonal)
        return jax.vmap(self.derivs, in_axes=(None, -1), out_axes=-1)(state, xs)

    def score_batch(self, state: MixtureState, xs):
        """`score` at points xs (d, N) -> (d, N)."""
        if self.closed_form:
            return mixture_score_batch(state, xs, self.target.diagonal)
        return jax.vmap(self.score, in_axes=(None, -1), out_axes=-1)(state, xs)

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
        return self._joint(self.score, joint_state, x, eta)

    def joint_score_batch(self, joint_state, xs, etas):
        """`joint_score` at points (d, N), (d, N) (particles last)."""
        return self._joint(self.score_batch, joint_state, xs, etas)

    def _joint(self, score_fn, joint_state, x, eta):
        state, k = joint_state
        s_c = score_fn(state, x - k * eta)
        return s_c, -eta / self.process.eta_variance - k * s_c


#: What `as_score_model` requires of a score model (`interfaces.ScoreModel`).
SCORE_MODEL_ATTRS = ("dim", "prepare", "derivs", "score", "sample_marginal")


def as_score_model(model, process: ActiveOU, closed_form: bool = True):
    """A GaussianMixture becomes its analytic MixtureScore for `process`; a score model
    (`interfaces.ScoreModel`: dim, prepare, derivs, score, sample_marginal; e.g. a learned
    one) is used as it is, after its own `check_process(process)` where it has one."""
    if isinstance(model, GaussianMixture):
        return MixtureScore(model, process, closed_form=closed_form)
    missing = [a for a in SCORE_MODEL_ATTRS if not hasattr(model, a)]
    if missing:
        raise ActivegenError(
            f"target must be a GaussianMixture or a score model; {type(model).__name__} "
            f"lacks {', '.join(missing)}"
        )
    check = getattr(model, "check_process", None)
    if check is not None:
        check(process)
    return model
