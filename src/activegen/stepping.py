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


def default_dt(tau: float) -> float:
    """Δs = min(τ/20, 0.002) (0.002 at τ = 0)."""
    return DT_MAX if tau == 0 else min(tau / STEPS_PER_TAU, DT_MAX)


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
