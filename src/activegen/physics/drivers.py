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

from ..errors import ActivegenError, check_positive
from .processes import ActiveOU
from .stepping import ou_coefficients, ou_integral_coefficients, ou_integral_step, ou_step


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

    def __post_init__(self):
        check_positive("speed", self.speed)
        check_positive(self.rate_name, getattr(self, self.rate_name))

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

    def init(self, key, shape, dtype):
        return math.sqrt(self.variance) * jax.random.normal(key, shape, dtype)

    def step(self, eta, h: float, key):
        return ou_step(eta, *ou_coefficients(h, self.tau, self.variance), key)

    def step_integral(self, eta, h: float, key):
        """(η_h, ∫_0^h η ds) drawn jointly and exactly (`stepping.ou_integral_coefficients`);
        η_h is the `step` of the same key."""
        return ou_integral_step(eta, ou_integral_coefficients(h, self.tau, self.variance), key)

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

    #: the constructor's rate parameter (`driver_and_process`)
    rate_name = "tumble_rate"

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

    rate_name = "rot_diffusion"

    def __post_init__(self):
        super().__post_init__()
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


#: The drivers by name (CLI --driver); `register_driver` adds one.
DRIVERS: dict[str, type] = {}


def register_driver(name: str, cls, *, replace: bool = False):
    """Make a self-propulsion available by name (Python API and CLI `--driver NAME`).

    cls must provide `from_effective(tau, d_active, dim)` and the `interfaces.Driver`
    methods (init, step, tau, d_active, kappa); a swimmer whose law is set by a speed and a
    rate also gives the class attribute `rate_name` (its constructor then takes
    (speed, rate, dim))."""
    if not isinstance(name, str) or not name:
        raise ActivegenError(f"a driver name must be a non-empty string, got {name!r}")
    if name in DRIVERS and not replace:
        raise ActivegenError(f"driver name {name!r} is taken")
    missing = [a for a in ("from_effective", "init", "step") if not hasattr(cls, a)]
    if missing:
        raise ActivegenError(f"driver {name!r} lacks {', '.join(missing)}")
    DRIVERS[name] = cls
    return cls


register_driver("ou", OUDriver)
register_driver("rtp", RunAndTumbleDriver)
register_driver("abp", ActiveBrownianDriver)


def driver_and_process(kind: str, dim: int, *, tau=None, d_active=None, beta: float = 1.0,
                       d_thermal: float = 0.0, speed=None, rates: dict | None = None,
                       spell=lambda name: name):
    """The driver `kind` and the matched forward ActiveOU.

    Either τ (and D_A, default 1) is given and a swimmer's speed and rate follow
    (`from_effective`), or `speed` and the swimmer's rate (rates[cls.rate_name]) are
    given and (τ, D_A) follow; both at once must agree. Returns (None, process) for the OU
    driver (the samplers' default) and at τ = 0. `spell` names a parameter in messages
    (the CLI passes its flag spelling)."""
    if kind not in DRIVERS:
        raise ActivegenError(f"{spell('driver')} must be one of {', '.join(DRIVERS)}; got {kind!r}")
    cls = DRIVERS[kind]
    rate_name = getattr(cls, "rate_name", None)
    given = {k: v for k, v in dict(rates or {}, speed=speed).items() if v is not None}
    allowed = {"speed", rate_name} if rate_name else set()
    extra = sorted(set(given) - allowed)
    if extra:
        raise ActivegenError(
            f"{', '.join(spell(k) for k in extra)} cannot be used with {spell('driver')} {kind}")
    if given and set(given) != allowed:
        need = " and ".join(spell(k) for k in sorted(allowed))
        raise ActivegenError(
            f"{spell('driver')} {kind}: give both {need}, or neither (then {spell('tau')})")
    if given:
        drv = cls(given["speed"], given[rate_name], dim)
        for name, val, eff in (("tau", tau, drv.tau), ("d_active", d_active, drv.d_active)):
            if val is not None and not math.isclose(val, eff, rel_tol=1e-6):
                raise ActivegenError(
                    f"{spell(name)} {val:g} contradicts the driver's effective value {eff:g} "
                    f"(from {spell('speed')} and the rate); give one or the other"
                )
        return drv, ActiveOU(beta=beta, d_thermal=d_thermal, d_active=drv.d_active,
                             tau=drv.tau)
    if tau is None:
        raise ActivegenError(
            f"{spell('tau')} is required (or, with a swimmer driver, {spell('speed')} and the rate)")
    proc = ActiveOU(beta=beta, d_thermal=d_thermal,
                    d_active=1.0 if d_active is None else d_active, tau=tau)
    if cls is OUDriver or proc.tau == 0:
        return None, proc
    return cls.from_effective(proc.tau, proc.d_active, dim), proc
