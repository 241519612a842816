"""External forces on the generating active particle, as pure functions of the score.

THEORY.md §2, with D̄(t) = D_T + D_A + D_eff(t) and S, ∇S, ∇(∇·S) from a ScoreDerivs:

    F_0 = β x + D̄ S                                                     (naive, E0)
    F_F = β x + (D̄ + βτD_A) S + τ D_A D̄ ∇(∇·S + ½|S|²)                  (fox, E)
    F_U = F_0 + τ [ D_A D̄ ∇(∇·S) + 2βD_A S + (D_A D̄ − ½D̄²) ∇|S|²
                    − β² x − β D̄ ∇(x·S) ]                                (ucn, U)

each the gradient of a potential, F = −∇V (V at time t is written V(x,t)):

    V_0 = −½β|x|² − D̄ log p
    V_F = −½β|x|² − (D̄ + βτD_A) log p − τ D_A D̄ (∇·S + ½|S|²)
    V_U = V_0 − τ [ D_A D̄ ∇·S + 2βD_A log p + (D_A D̄ − ½D̄²)|S|² − ½β²|x|² − βD̄ x·S ]

using ∇|S|² = 2(∇S)S and ∇(x·S) = S + (∇S)x (∇S is symmetric). To add a force, write its
force and potential here and register it in FORCES. Every function takes one point, x of
shape (d,) with a per-point ScoreDerivs, or a whole ensemble particles last, x (d, N) with
batched ScoreDerivs (score (d, N), hessian (d, d, N)): vector axes come first.

Self-consistent V_F (`fox-sc`, docs/beyond_first_order.md). Exactly, for any τ and any
driver, the x-marginal of dx = (F + η) ds + √(2D_T) dW̄ obeys ∂_s q = −∇·[(F + m) q] + D_T Δq
with m(x, s) = E[η | x] over the generating ensemble, so q runs p backwards iff

    F = β x + (D_eff + D_T) S − m.

V_F is this with Fox's first-order m ≈ −D_A(1+βτ) S − τD_A D̄ ∇(∇·S + ½|S|²). Here m is
instead the least-squares projection of the ensemble's own η onto the same features,
φ = (S, (∇S)S, ∇(∇·S), x, e_1 … e_d), refitted at every step: m̂ = Σ_j θ_j φ_j, and

    F_SC = β x + (D_eff + D_T) S − Σ_j θ_j φ_j        = −∇V_SC,
    V_SC = −½β|x|² − (D_eff + D_T − θ_1) log p + θ_2 ½|S|² + θ_3 ∇·S + θ_4 ½|x|² + Σ_j θ_{4+j} x_j.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp

from .._linalg import dot0, matvec0
from ..errors import ActivegenError
from .processes import ActiveOU
from .scores import ScoreDerivs, hessian_score


# -- naive (zeroth order) --------------------------------------------------
def force_naive(p: ActiveOU, t, x, dv: ScoreDerivs):
    """F_0 = βx + D̄ S."""
    return p.beta * x + p.d_bar(t) * dv.score


def potential_naive(p: ActiveOU, t, x, dv: ScoreDerivs):
    """V_0 = −½β|x|² − D̄ log p."""
    return -0.5 * p.beta * dot0(x, x) - p.d_bar(t) * dv.log_p


# -- effective potential V_F (Fox) ----------------------------------------------
def fox_form(beta, d_bar, d2, x, dv: ScoreDerivs):
    """βx + (D̄ + βD_2) S + D_2 D̄ [∇(∇·S) + (∇S)S]: F_F with D_2 = τD_A, and the activity
    schedule's force with D_2(s), D̄(s) of the scheduled noise (`samplers.schedule`)."""
    corr = dv.grad_div + hessian_score(dv)
    return beta * x + (d_bar + beta * d2) * dv.score + d2 * d_bar * corr


def force_fox(p: ActiveOU, t, x, dv: ScoreDerivs):
    """F_F = βx + (D̄ + βτD_A) S + τD_A D̄ [∇(∇·S) + (∇S)S]."""
    return fox_form(p.beta, p.d_bar(t), p.tau * p.d_active, x, dv)


def potential_fox(p: ActiveOU, t, x, dv: ScoreDerivs):
    """V_F = −½β|x|² − (D̄ + βτD_A) log p − τD_A D̄ (∇·S + ½|S|²)."""
    db = p.d_bar(t)
    ta = p.tau * p.d_active
    return (
        -0.5 * p.beta * dot0(x, x)
        - (db + p.beta * ta) * dv.log_p
        - ta * db * (dv.div + 0.5 * dot0(dv.score, dv.score))
    )


# -- unified colored noise V_U ----------------------------------------------------
def force_ucn(p: ActiveOU, t, x, dv: ScoreDerivs):
    """F_U = F_0 + τ[D_A D̄ ∇(∇·S) + 2βD_A S + (D_A D̄ − ½D̄²)·2(∇S)S − β²x − βD̄(S + (∇S)x)]."""
    if dv.hessian is None:
        raise ActivegenError("force ucn needs the full matrix grad S (for (grad S) x); "
                             "the score model did not form it (use hutchinson = 0)")
    db = p.d_bar(t)
    b, da = p.beta, p.d_active
    hs = matvec0(dv.hessian, dv.score)
    corr = (
        da * db * dv.grad_div
        + 2 * b * da * dv.score
        + (da * db - 0.5 * db * db) * 2.0 * hs
        - b * b * x
        - b * db * (dv.score + matvec0(dv.hessian, x))
    )
    return force_naive(p, t, x, dv) + p.tau * corr


def potential_ucn(p: ActiveOU, t, x, dv: ScoreDerivs):
    """V_U = V_0 − τ[D_A D̄ ∇·S + 2βD_A log p + (D_A D̄ − ½D̄²)|S|² − ½β²|x|² − βD̄ x·S]."""
    db = p.d_bar(t)
    b, da = p.beta, p.d_active
    corr = (
        da * db * dv.div
        + 2 * b * da * dv.log_p
        + (da * db - 0.5 * db * db) * dot0(dv.score, dv.score)
        - 0.5 * b * b * dot0(x, x)
        - b * db * dot0(x, dv.score)
    )
    return potential_naive(p, t, x, dv) - p.tau * corr


# -- correction for a non-Gaussian driver ------------------------------------------------
def force_driver_correction(p: ActiveOU, kappa: float, t, x, dv: ScoreDerivs):
    """δF = −κτD_A² ∇(Δp)/p = −κτD_A² [∇(∇·S) + 2(∇S)S + (∇·S + |S|²) S].

    Cancels the fourth-order term −κτD_A² Δ²q that a run-and-tumble or active Brownian
    driver adds to the x-marginal equation at O(τ) (docs/drivers.md). Not a gradient in
    d > 1 (it is in 1D).
    """
    lap = dv.div + dot0(dv.score, dv.score)
    c = -kappa * p.tau * p.d_active**2
    return c * (dv.grad_div + 2.0 * hessian_score(dv) + lap * dv.score)


def saturate(delta, force):
    """δ/(1 + |δ|/|F|): a correction that is small against F passes unchanged, one that is
    not (far tails, where the small-τ expansion fails and δF grows like |x|³) stays below |F|."""
    ratio = jnp.sqrt(dot0(delta, delta)) / (jnp.sqrt(dot0(force, force)) + 1e-12)
    return delta / (1.0 + ratio)


def jacobian_norm(beta, d_bar, hessian):
    """‖βI + D̄ ∇S‖_F over the first two axes (any trailing particle axes)."""
    d = hessian.shape[0]
    return jnp.sqrt(sum((beta * (i == j) + d_bar * hessian[i, j]) ** 2
                        for i in range(d) for j in range(d)))


def force_jacobian_norm(p: ActiveOU, t, dv: ScoreDerivs):
    """‖∇F_0‖_F = ‖βI + D̄ ∇S‖_F: the scale τ·‖∇F‖ must stay small for first order to hold.

    Without the full ∇S (probe estimates in dv): ‖βI + D̄∇S‖_F² = dβ² + 2βD̄ ∇·S + D̄²‖∇S‖_F²
    with ∇·S ≈ E zᵀ(∇S)z, ‖∇S‖_F² ≈ E‖(∇S)z‖² (clipped at 0 before the root)."""
    if dv.hessian is None:
        d, db = dv.score.shape[0], p.d_bar(t)
        sq = d * p.beta**2 + 2.0 * p.beta * db * dv.jac_trace + db * db * dv.jac_fro2
        return jnp.sqrt(jnp.maximum(sq, 0.0))
    return jacobian_norm(p.beta, p.d_bar(t), dv.hessian)


# -- self-consistent V_F (fox-sc) ---------------------------------------------------------
def projection_features(x, dv: ScoreDerivs, swimmer: bool = False):
    """φ(x) = (S, (∇S)S, ∇(∇·S), x, e_1 … e_d) as rows of a (4 + d, d) array; with
    `swimmer` (a non-Gaussian driver) also (Δp/p) S = (∇·S + |S|²) S, the part of the
    driver correction ∇(Δp)/p that is not a gradient (docs/beyond_first_order.md)."""
    d = x.shape[0]
    rows = [dv.score, hessian_score(dv), dv.grad_div, x]
    if swimmer:
        rows.append((dv.div + dot0(dv.score, dv.score)) * dv.score)
    eye = jnp.eye(d, dtype=x.dtype).reshape((d, d) + (1,) * (x.ndim - 1))
    return jnp.concatenate([jnp.stack(rows), jnp.broadcast_to(eye, (d,) + x.shape)], 0)


def fit_projection(phi, eta, ridge: float = 1e-6):
    """θ minimising Σ_i |η_i − Σ_j θ_j φ_j(x_i)|² over an ensemble, particles last:
    phi (J, d, N), eta (d, N).

    Normal equations on features scaled to unit mean square, with a relative ridge (a
    feature that vanishes on the ensemble, e.g. ∇(∇·S) of one Gaussian, gets θ = 0). The
    sums over particles are products reduced by XLA, not a dot: XLA CPU hands a dot to
    Eigen, which splits a long contraction over its threads, so its rounding depended on
    the process's cores (a worker pinned to one core differed from a two-core process in
    the last bits, ~1e-4 in the samples after T = 1; docs/distributed.md).
    """
    g = jnp.sum(phi[:, None] * phi[None, :], axis=(-2, -1))
    b = jnp.sum(phi * eta, axis=(-2, -1))
    scale = jnp.sqrt(jnp.diagonal(g)) + 1e-30
    gs = g / (scale[:, None] * scale[None, :])
    j = g.shape[0]
    ts = jnp.linalg.solve(gs + ridge * jnp.eye(j, dtype=g.dtype), b / scale)
    return ts / scale


def force_projected(p: ActiveOU, t, x, dv: ScoreDerivs, theta):
    """F_SC = βx + (D_eff + D_T) S − Σ_j θ_j φ_j(x) (4 + d coefficients, or 5 + d with the
    swimmer feature)."""
    phi = projection_features(x, dv, swimmer=theta.shape[0] > 4 + x.shape[0])
    m = jnp.tensordot(theta, phi, 1)
    return p.beta * x + (p.d_eff(t) + p.d_thermal) * dv.score - m


def potential_projected(p: ActiveOU, t, x, dv: ScoreDerivs, theta):
    """V_SC = −½β|x|² − (D_eff + D_T − θ_1) log p + ½θ_2|S|² + θ_3 ∇·S + ½θ_4|x|² + θ_{4+j}x_j.

    Only for the 4 + d gradient features: with the swimmer feature F_SC has no potential."""
    if theta.shape[0] != 4 + x.shape[0]:
        raise ActivegenError(
            f"theta must have 4 + d = {4 + x.shape[0]} entries for a potential (the swimmer "
            f"feature is not a gradient); got {theta.shape[0]}"
        )
    xx = dot0(x, x)
    return (
        -0.5 * p.beta * xx
        - (p.d_eff(t) + p.d_thermal - theta[0]) * dv.log_p
        + 0.5 * theta[1] * dot0(dv.score, dv.score)
        + theta[2] * dv.div
        + 0.5 * theta[3] * xx
        + jnp.tensordot(theta[4:], x, 1)
    )


def projection_potentials(x, dv: ScoreDerivs):
    """ψ(x) = (log p, ½|S|², ∇·S, ½|x|², x_1 … x_d) as rows of a (4 + d, N) array: ∇ψ_j = φ_j
    (`projection_features` without the swimmer), so V_SC = −½β|x|² − (D_eff + D_T) log p + θ·ψ."""
    return jnp.concatenate([jnp.stack([dv.log_p, 0.5 * dot0(dv.score, dv.score), dv.div,
                                       0.5 * dot0(x, x)]), x], 0)


def potential_projected_gauged(p: ActiveOU, t, x, dv: ScoreDerivs, theta, psi_ref):
    """V_SC in the gauge of V_F, evaluated without cancellation:

        V_F(x) + (θ − θ_F)·(ψ(x) − ψ_ref),    ψ_ref (4 + d,) e.g. ψ's mean over the ensemble θ
                                              was fitted to,

    which is `potential_projected` less the constant (θ − θ_F)·ψ_ref. Its force is F_SC. The
    fit's near-collinear features (early in generation ∇(∇·S) ≈ 0 with ∇·S ≈ constant, and S,
    (∇S)S, x all ∝ x) give coefficients of 10⁴–10⁵ along the ill-determined directions,
    whose θ·ψ is then a huge near-constant: in float32 its differences along a run are
    rounding. With ψ_ref = the ensemble mean, E_ens[V_SC − V_F] = 0 at every step: V_SC's
    constant (not set by its force) is fixed to V_F's (docs/thermodynamics.md)."""
    if theta.shape[0] != 4 + x.shape[0]:
        raise ActivegenError(
            f"theta must have 4 + d = {4 + x.shape[0]} entries for a potential (the swimmer "
            f"feature is not a gradient); got {theta.shape[0]}"
        )
    dtheta = theta - theta_fox(p, t, x.shape[0]).astype(theta.dtype)
    psi = projection_potentials(x, dv) - psi_ref.reshape((-1,) + (1,) * (x.ndim - 1))
    return potential_fox(p, t, x, dv) + jnp.tensordot(dtheta, psi, 1)


def theta_fox(p: ActiveOU, t, d: int):
    """The θ for which F_SC = F_F: Fox's first-order m (module doc)."""
    ta = p.tau * p.d_active
    db = p.d_bar(t)
    return jnp.concatenate([jnp.stack([-p.d_active - p.beta * ta, -ta * db, -ta * db,
                                       0.0 * db]), jnp.zeros(d)])


class Force(NamedTuple):
    """A force F(process, t, x, derivs) and its potential V with F = −∇_x V; `order`: the
    highest derivative of S it needs besides the validity diagnostic's ∇S (0: S only,
    2: ∇(∇·S)), passed to score models whose `derivs_batch` takes `order`."""

    force: Callable
    potential: Callable
    order: int = 2


FORCES: dict[str, Force] = {
    "naive": Force(force_naive, potential_naive, order=1),
    "fox": Force(force_fox, potential_fox),
    "ucn": Force(force_ucn, potential_ucn),
}
