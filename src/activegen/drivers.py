"""Self-propulsion η that drives the generating particle.

A driver has an effective persistence time τ and strength D_A (⟨η_i(t)η_j(t')⟩ =
δ_ij (D_A/τ) e^{−|t−t'|/τ}), starts from its stationary law and advances exactly:
    init(key, shape, dtype) -> η,     step(η, h, key) -> η after a time h.
η has the vector axis first, shape (d, N) (particles last, the samplers' layout).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from .errors import ActivegenError, check_positive


def _uniform_directions(key, shape, dtype):
    """Unit vectors uniform on the sphere S^{d−1} (d = shape[0]; ±1 in 1D)."""
    if shape[0] == 1:
        return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1.0, -1.0).astype(dtype)
    z = jax.random.normal(key, shape, dtype)
    return z / jnp.linalg.norm(z, axis=0, keepdims=True)


class _ActiveNoise:
    """Shared by every driver: stationary variance D_A/τ and correlation function."""

    @property
    def variance(self) -> float:
        return self.d_active / self.tau

    def autocorrelation(self, lag):
        """(D_A/τ) e^{−|u|/τ} per coordinate."""
        return self.variance * jnp.exp(-jnp.abs(lag) / self.tau)


class _Swimmer(_ActiveNoise):
    """η = v0 e with a random unit direction e: D_A = v0² τ / d; uniform stationary start."""

    @property
    def d_active(self) -> float:
        return self.speed**2 * self.tau / self.dim

    def init(self, key, shape, dtype):
        return self.speed * _uniform_directions(key, shape, dtype)


@dataclasses.dataclass(frozen=True)
class OUDriver(_ActiveNoise):
    """Active Ornstein–Uhlenbeck noise: τ dη = −η ds + √(2D_A) dW, stationary N(0, D_A/τ).

    Exact step: η ← η e^{−h/τ} + √(D_A/τ (1 − e^{−2h/τ})) ξ.
    """

    tau: float
    d_active: float

    def __post_init__(self):
        check_positive("tau", self.tau)
        check_positive("d_active", self.d_active)

    @classmethod
    def from_effective(cls, tau: float, d_active: float, dim: int | None = None) -> "OUDriver":
        return cls(tau, d_active)

    def decay(self, h: float) -> float:
        """e^{−h/τ}."""
        return math.exp(-h / self.tau)

    def init(self, key, shape, dtype):
        return math.sqrt(self.variance) * jax.random.normal(key, shape, dtype)

    def step(self, eta, h: float, key):
        e = self.decay(h)
        sd = math.sqrt(self.variance * -math.expm1(-2.0 * h / self.tau))
        return eta * e + sd * jax.random.normal(key, eta.shape, eta.dtype)

    #: Gaussian noise: no fourth-order term in the x-marginal equation.
    kappa = 0.0


@dataclasses.dataclass(frozen=True)
class RunAndTumbleDriver(_Swimmer):
    """Run-and-tumble self-propulsion η = v0 e: at rate α the direction e is redrawn uniformly
    on the sphere (in 1D: reversed at rate λ = α/2, which is the same law).

    Effective parameters (THEORY.md §3): τ = 1/α, D_A = v0² τ / d. Exact step: with
    probability 1 − e^{−αh} at least one tumble happened, and then e is uniform.
    """

    speed: float
    tumble_rate: float
    dim: int

    def __post_init__(self):
        check_positive("speed", self.speed)
        check_positive("tumble_rate", self.tumble_rate)

    @classmethod
    def from_effective(cls, tau: float, d_active: float, dim: int) -> "RunAndTumbleDriver":
        """v0 = √(d D_A/τ), α = 1/τ."""
        check_positive("tau", tau)
        check_positive("d_active", d_active)
        return cls(math.sqrt(dim * d_active / tau), 1.0 / tau, dim)

    @property
    def tau(self) -> float:
        return 1.0 / self.tumble_rate

    @property
    def kappa(self) -> float:
        """κ = (4 − d)/(d + 2) of the free x-marginal ∂_tP = D_A ΔP − κτD_A² Δ²P + O(τ²)
        (docs/drivers.md; 1D: κ = 1, the telegraph equation)."""
        return (4 - self.dim) / (self.dim + 2)

    def step(self, eta, h: float, key):
        k1, k2 = jax.random.split(key)
        tumble = jax.random.uniform(k1, (1,) + eta.shape[1:], eta.dtype) < -math.expm1(
            -self.tumble_rate * h
        )
        new = self.speed * _uniform_directions(k2, eta.shape, eta.dtype)
        return jnp.where(tumble, new, eta)


@dataclasses.dataclass(frozen=True)
class ActiveBrownianDriver(_Swimmer):
    """Active Brownian self-propulsion η = v0 e, e diffusing on the sphere with rotational
    diffusion D_r (d = 2 or 3).

    Effective parameters (THEORY.md §3): 2D τ = 1/D_r, D_A = v0²/(2D_r);
    3D τ = 1/(2D_r), D_A = v0²/(6D_r). Step: 2D exact (θ += √(2D_r h) ξ); 3D a
    rotation by the tangent part of a Gaussian rotation vector (weak error O(h²) per step).
    """

    speed: float
    rot_diffusion: float
    dim: int

    def __post_init__(self):
        check_positive("speed", self.speed)
        check_positive("rot_diffusion", self.rot_diffusion)
        if self.dim not in (2, 3):
            raise ActivegenError(f"the active Brownian driver needs d = 2 or 3, got d = {self.dim}")

    @classmethod
    def from_effective(cls, tau: float, d_active: float, dim: int) -> "ActiveBrownianDriver":
        """D_r = 1/((d−1)τ), v0 = √(d D_A/τ)."""
        check_positive("tau", tau)
        check_positive("d_active", d_active)
        return cls(math.sqrt(dim * d_active / tau), 1.0 / ((dim - 1) * tau), dim)

    @property
    def tau(self) -> float:
        return 1.0 / ((self.dim - 1) * self.rot_diffusion)

    @property
    def kappa(self) -> float:
        """κ of ∂_tP = D_A ΔP − κτD_A² Δ²P + O(τ²): 7/8 in 2D, 11/15 in 3D (docs/drivers.md)."""
        return 7 / 8 if self.dim == 2 else 11 / 15

    def step(self, eta, h: float, key):
        e = eta / self.speed
        sd = math.sqrt(2.0 * self.rot_diffusion * h)
        if self.dim == 2:
            dth = sd * jax.random.normal(key, eta.shape[1:], eta.dtype)
            c, s = jnp.cos(dth), jnp.sin(dth)
            e = jnp.stack([c * e[0] - s * e[1], s * e[0] + c * e[1]])
        else:
            # rotate e by the tangent part of ω ~ N(0, 2D_r h I): e cos|ω⊥| + ω̂⊥ sin|ω⊥|
            w = sd * jax.random.normal(key, eta.shape, eta.dtype)
            w = w - jnp.sum(w * e, 0, keepdims=True) * e
            r = jnp.linalg.norm(w, axis=0, keepdims=True)
            e = e * jnp.cos(r) + w * jnp.where(r > 0, jnp.sin(r) / jnp.where(r > 0, r, 1.0), 1.0)
            e = e / jnp.linalg.norm(e, axis=0, keepdims=True)
        return self.speed * e


DRIVERS = {"ou": OUDriver, "rtp": RunAndTumbleDriver, "abp": ActiveBrownianDriver}
