"""Self-propulsion η that drives the generating particle.

A driver has an effective persistence time τ and strength D_A (⟨η_i(t)η_j(t')⟩ =
δ_ij (D_A/τ) e^{−|t−t'|/τ}), starts from its stationary law and advances exactly:
    init(key, shape, dtype) -> η,     step(η, h, key) -> η after a time h.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from .errors import check_positive


@dataclasses.dataclass(frozen=True)
class OUDriver:
    """Active Ornstein–Uhlenbeck noise: τ dη = −η ds + √(2D_A) dW, stationary N(0, D_A/τ).

    Exact step: η ← η e^{−h/τ} + √(D_A/τ (1 − e^{−2h/τ})) ξ.
    """

    tau: float
    d_active: float

    def __post_init__(self):
        check_positive("tau", self.tau)
        check_positive("d_active", self.d_active)

    @property
    def variance(self) -> float:
        return self.d_active / self.tau

    def decay(self, h: float) -> float:
        """e^{−h/τ}."""
        return math.exp(-h / self.tau)

    def init(self, key, shape, dtype):
        return math.sqrt(self.variance) * jax.random.normal(key, shape, dtype)

    def step(self, eta, h: float, key):
        e = self.decay(h)
        sd = math.sqrt(self.variance * -math.expm1(-2.0 * h / self.tau))
        return eta * e + sd * jax.random.normal(key, eta.shape, eta.dtype)

    def autocorrelation(self, lag):
        """(D_A/τ) e^{−|u|/τ}."""
        return self.variance * jnp.exp(-jnp.abs(lag) / self.tau)
