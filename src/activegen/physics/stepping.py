"""One-step updates shared by the forward simulators and the reverse samplers.

    ou_coefficients(h, τ, var) = (e^{−h/τ}, √(var (1 − e^{−2h/τ})))    exact OU step of
        τ dη = −η ds + √(2D_A) dW (var = D_A/τ):  η ← e^{−h/τ} η + √(var(1 − e^{−2h/τ})) ξ
    thermal_amplitude(D_T, h) = √(2 D_T h),  thermal_kick(x, a, key) = x + a ξ
    active_update(x, F, η, η′, h) = x + [F + ½(η + η′)] h    (trapezoid mean of η over a step)
    default_dt(τ) = min(τ/20, 0.002)   (0.002 at τ = 0)

Scalar arguments give Python floats (weakly typed in JAX, so a float32 run stays float32);
array arguments give numpy arrays (tables of a step grid).
"""

from __future__ import annotations

import math

import jax
import numpy as np

#: Largest default step Δs, and steps per persistence time: Δs ≤ τ/10 with margin.
DT_MAX = 0.002
STEPS_PER_TAU = 20


def tau_step(tau: float, per_tau: float, dt_max: float) -> float:
    """Δs = min(τ/per_tau, dt_max) (dt_max at τ = 0): the form of every default step."""
    return dt_max if tau == 0 else min(tau / per_tau, dt_max)


def default_dt(tau: float) -> float:
    """Δs = min(τ/20, 0.002) (0.002 at τ = 0)."""
    return tau_step(tau, STEPS_PER_TAU, DT_MAX)


def ou_coefficients(h, tau, variance):
    """(e^{−h/τ}, √(var·(1 − e^{−2h/τ}))) of the exact OU step over h."""
    if np.ndim(h) == 0 and np.ndim(tau) == 0 and np.ndim(variance) == 0:
        return math.exp(-h / tau), math.sqrt(variance * -math.expm1(-2.0 * h / tau))
    h, tau = np.asarray(h, np.float64), np.asarray(tau, np.float64)
    return np.exp(-h / tau), np.sqrt(variance * -np.expm1(-2.0 * h / tau))


def thermal_amplitude(d_thermal, h):
    """√(2 D_T h): the thermal displacement's standard deviation over a step h."""
    if np.ndim(d_thermal) == 0 and np.ndim(h) == 0:
        return math.sqrt(2.0 * d_thermal * h)
    return np.sqrt(2.0 * np.asarray(d_thermal, np.float64) * np.asarray(h, np.float64))


def thermal_kick(x, amplitude, key):
    """x + a ξ, ξ ~ N(0, I) of x's shape and dtype."""
    return x + amplitude * jax.random.normal(key, x.shape, x.dtype)


def active_update(x, force, eta, eta_new, h):
    """x + [F + ½(η + η′)] h: the position step of a particle driven by η, with η's
    trapezoid mean over the step (η at its start and end)."""
    return x + (force + 0.5 * (eta + eta_new)) * h


def ou_step(eta, decay, sd, key):
    """η e^{−h/τ} + √(var(1 − e^{−2h/τ})) ξ with the coefficients of `ou_coefficients`."""
    return eta * decay + sd * jax.random.normal(key, eta.shape, eta.dtype)


# -- second-order schemes (issue 17; docs/theory.md "Time stepping") ------------------------


def _u_minus_tanh(u: float) -> float:
    """u − tanh u without cancellation at small u."""
    if u < 1e-2:
        u2 = u * u
        return u * u2 * (1.0 / 3.0 - u2 * (2.0 / 15.0 - u2 * 17.0 / 315.0))
    return u - math.tanh(u)


def ou_integral_coefficients(h: float, tau: float, variance: float):
    """Coefficients of the exact joint step of the OU noise η and its integral over h.

    τ dη = −η ds + √(2D_A) dW (var = D_A/τ); with a = e^{−h/τ}, u = h/(2τ) and ξ1, ξ2
    independent N(0, 1):

        η_h = a η_0 + σ ξ1,                σ = √(var (1 − a²))      (`ou_coefficients`)
        I_h = ∫_0^h η ds = τ(η_0 − η_h) + √(2D_A) W_h
            = τ(1 − a) η_0 + τ tanh(u) σ ξ1 + 2τ √(var (u − tanh u)) ξ2
            = τ tanh(u) (η_0 + η_h) + 2τ √(var (u − tanh u)) ξ2

    (W_h regressed on the OU noise, written without cancellation; the last form, with
    τ(1 − a) = τ tanh(u)(1 + a), is a trapezoid with h/2 → τ tanh(h/2τ) plus an independent
    term, and uses ξ1 only through η_h: XLA then computes each normal once, where the
    middle form made it recompute ξ1's random bits in both outputs, docs/performance.md).
    Returns (a, σ, τ tanh(u), 2τ √(var (u − tanh u))), Python floats.
    """
    a, sd = ou_coefficients(h, tau, variance)
    u = 0.5 * h / tau
    return a, sd, tau * math.tanh(u), 2.0 * tau * math.sqrt(variance * _u_minus_tanh(u))


def ou_integral_step(eta, coefficients, key):
    """(η_h, ∫_0^h η ds) = (a η + σ ξ1, w (η + η_h) + c2 ξ2) with the coefficients
    (a, σ, w = τ tanh(h/2τ), c2) of `ou_integral_coefficients` (floats, or traced values of a
    table), ξ1 from key (through `ou_step`), ξ2 from fold_in(key, 1)."""
    a, sd, w, c2 = coefficients
    eta_new = ou_step(eta, a, sd, key)
    xi2 = jax.random.normal(jax.random.fold_in(key, 1), eta.shape, eta.dtype)
    return eta_new, w * (eta + eta_new) + c2 * xi2


def linear_coefficients(beta: float, h: float):
    """(e^{βh}, φ = (e^{βh} − 1)/(βh), (e^{2βh} − 1)/(2β h)) of the exact step of dx = βx ds:
    the propagator, the mean weight of a constant forcing, the variance weight of white
    noise (x ← e^{βh} x + φ h g + √(2D h ψ) ξ is exact for constant g and D)."""
    z = beta * h
    if z == 0:
        return 1.0, 1.0, 1.0
    return math.exp(z), math.expm1(z) / z, math.expm1(2.0 * z) / (2.0 * z)


def joint_ou_matrices(beta: float, tau: float, d_thermal: float, d_active: float, h: float):
    """Exact step over h of the linear part of the reverse joint (x, η) process (per
    coordinate), z = (x, η):

        dz = L z ds + dB,   L = [[β, −1], [0, −1/τ]],   Cov dB = diag(2D_T, 2D_A/τ²) ds

    z_h = Φ z_0 + C ξ with Φ = e^{Lh} and C C^T = ∫_0^h e^{Lu} Q e^{L^T u} du (Van Loan's
    block exponential, float64). Returns (Φ, C) as 2×2 numpy arrays (C upper triangular:
    η's noise is one normal, x's the η part plus an independent one)."""
    from scipy.linalg import expm

    L = np.array([[beta, -1.0], [0.0, -1.0 / tau]])
    Q = np.diag([2.0 * d_thermal, 2.0 * d_active / tau**2])
    M = np.zeros((4, 4))
    M[:2, :2], M[:2, 2:], M[2:, 2:] = -L, Q, L.T
    E = expm(M * h)
    phi = E[2:, 2:].T
    cov = phi @ E[:2, 2:]
    cov = 0.5 * (cov + cov.T)
    # C C^T = cov with C = [[c00, c01], [0, c11]] (η first: the x-variance may be tiny)
    c11 = math.sqrt(max(cov[1, 1], 0.0))
    c01 = cov[0, 1] / c11 if c11 > 0 else 0.0
    c00 = math.sqrt(max(cov[0, 0] - c01 * c01, 0.0))
    return phi, np.array([[c00, c01], [0.0, c11]])
