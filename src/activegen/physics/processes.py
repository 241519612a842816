"""Forward (noising) process: an active Ornstein–Uhlenbeck particle in a harmonic trap.

THEORY.md §1::

    dx = −β x dt + η dt + √(2 D_T) dW
    τ dη = −η dt + √(2 D_A) dW'          η(0) ~ N(0, D_A/τ)

Given x(0) = y the law is Gaussian, x(t) | y ~ N(y e^{−βt}, v(t) I), with the
exact moments implemented here. τ = 0 is the passive (white-noise) limit with
D = D_T + D_A.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import check_finite, check_nonnegative, check_positive, forward_hint
from .stepping import ou_coefficients, ou_step, thermal_amplitude, thermal_kick


def _exprel(z):
    """(e^z − 1)/z, continuous through z = 0."""
    small = jnp.abs(z) < 1e-6
    zs = jnp.where(small, 1.0, z)
    return jnp.where(small, 1.0 + z / 2.0 + z * z / 6.0, jnp.expm1(zs) / zs)


@dataclasses.dataclass(frozen=True)
class ActiveOU:
    """Parameters of the forward process (all Python floats: a static, hashable value).

    beta: trap stiffness β > 0; d_thermal: D_T ≥ 0; d_active: D_A > 0;
    tau: persistence time τ ≥ 0 (0 = passive white-noise limit).
    """

    beta: float = 1.0
    d_thermal: float = 0.0
    d_active: float = 1.0
    tau: float = 0.1

    def __post_init__(self):
        check_positive("beta", self.beta)
        check_nonnegative("d_thermal", self.d_thermal)
        check_positive("d_active", self.d_active)
        check_nonnegative("tau", self.tau)

    # -- derived constants -------------------------------------------------
    @property
    def diffusivity(self) -> float:
        """D = D_T + D_A, the white-noise limit's diffusivity."""
        return self.d_thermal + self.d_active

    @property
    def rate(self) -> float:
        """a = β + 1/τ (∞ at τ = 0)."""
        return math.inf if self.tau == 0 else self.beta + 1.0 / self.tau

    @property
    def eta_variance(self) -> float:
        """Stationary Var(η_i) = D_A/τ."""
        if self.tau == 0:
            raise ValueError("tau: the active noise has no finite variance at tau = 0")
        return self.d_active / self.tau

    @property
    def stationary_variance(self) -> float:
        """lim v(t) = D_T/β + D_A/(β(1+βτ))."""
        b = self.beta
        return self.d_thermal / b + self.d_active / (b * (1.0 + b * self.tau))

    def passive(self) -> "ActiveOU":
        """The same process with τ = 0."""
        return dataclasses.replace(self, tau=0.0)

    # -- exact moments -----------------------------------------------------
    def mean_scale(self, t):
        """E[x(t) | y] = y e^{−βt}: returns e^{−βt}."""
        return jnp.exp(-self.beta * jnp.asarray(t))

    def cross_cov(self, t):
        """c(t) = Cov(x_i, η_i) = D_A/(1+βτ) (1 − e^{−a t}); c = D_A at τ = 0 (t > 0)."""
        t = jnp.asarray(t)
        if self.tau == 0:
            return jnp.where(t > 0, self.d_active, 0.0) + 0.0 * t
        return self.d_active / (1.0 + self.beta * self.tau) * (-jnp.expm1(-self.rate * t))

    def d_eff(self, t):
        """D_eff(t) = D_T + c(t): the x-marginal obeys ∂_t p = β∇·(xp) + D_eff Δp exactly."""
        return self.d_thermal + self.cross_cov(t)

    def d_bar(self, t):
        """D̄(t) = D_T + D_A + D_eff(t) (THEORY.md §2, effective potential)."""
        return self.d_thermal + self.d_active + self.d_eff(t)

    def variance(self, t):
        """v(t) = Var(x_i(t) | y), closed form of dv/dt = −2βv + 2D_eff(t), v(0) = 0.

        v = D_T(1−e^{−2βt})/β + 2D_A/(1+βτ) [ (1−e^{−2βt})/(2β) − (e^{−at} − e^{−2βt})/(2β−a) ],
        with (e^{−at} − e^{−2βt})/(2β−a) = t e^{−2βt} exprel((2β−a)t), continuous at 2β = a.
        """
        t = jnp.asarray(t)
        b = self.beta
        one_m = -jnp.expm1(-2.0 * b * t)
        v_white = one_m / b
        if self.tau == 0:
            return self.diffusivity * v_white
        a = self.rate
        cross = t * jnp.exp(-2.0 * b * t) * _exprel((2.0 * b - a) * t)
        v_act = 2.0 * self.d_active / (1.0 + b * self.tau) * (one_m / (2.0 * b) - cross)
        return self.d_thermal * v_white + v_act

    def conditional_variance(self, t):
        """u(t) = v − c²/(D_A/τ): Var(x_i | y, η) (used by the joint law); v at τ = 0."""
        if self.tau == 0:
            return self.variance(t)
        c = self.cross_cov(t)
        return jnp.maximum(self.variance(t) - c * c / self.eta_variance, 0.0)

    # -- general routes, for verification -----------------------------------
    def lyapunov_covariance(self, t: float) -> np.ndarray:
        """Σ(t) of (x_i, η_i) given y from dΣ/dt = AΣ + ΣAᵀ + Q, Σ(0) = diag(0, D_A/τ).

        A = [[−β, 1], [0, −1/τ]], Q = diag(2D_T, 2D_A/τ²); integrated numerically
        (scipy, tight tolerances): an independent route to v(t) and c(t).
        """
        from scipy.integrate import solve_ivp

        if self.tau == 0:
            raise ValueError("tau: the Lyapunov route needs tau > 0")
        A = np.array([[-self.beta, 1.0], [0.0, -1.0 / self.tau]])
        Q = np.diag([2 * self.d_thermal, 2 * self.d_active / self.tau**2])
        S0 = np.diag([0.0, self.d_active / self.tau])

        def rhs(_, y):
            S = y.reshape(2, 2)
            return (A @ S + S @ A.T + Q).ravel()

        sol = solve_ivp(rhs, (0.0, t), S0.ravel(), method="Radau", rtol=1e-10, atol=1e-12)
        return sol.y[:, -1].reshape(2, 2)

    def simulate(self, key, x0, t_final: float, dt: float):
        """Brute-force forward simulation (exact OU step for η, Euler for x); for tests.

        x0: (N, d) initial positions. Returns (x(t_final), η(t_final)).
        """
        x0 = jnp.asarray(x0)
        check_positive("dt", dt)
        n_steps = max(1, int(round(t_final / dt)))
        h = t_final / n_steps
        k0, kscan = jax.random.split(key)
        if self.tau > 0:
            eta0 = jnp.sqrt(self.eta_variance) * jax.random.normal(k0, x0.shape, x0.dtype)
            decay, eta_sd = ou_coefficients(h, self.tau, self.eta_variance)
            kick = thermal_amplitude(self.d_thermal, h)
        else:
            eta0 = jnp.zeros_like(x0)
            kick = thermal_amplitude(self.diffusivity, h)

        def step(carry, k):
            x, eta = carry
            k1, k2 = jax.random.split(k)
            if self.tau > 0:
                x = thermal_kick(x + (-self.beta * x + eta) * h, kick, k1)
                eta = ou_step(eta, decay, eta_sd, k2)
            else:
                x = thermal_kick(x - self.beta * x * h, kick, k1)
            return (x, eta), None

        (x, eta), _ = jax.lax.scan(step, (x0, eta0), jax.random.split(kscan, n_steps))
        if not np.all(np.isfinite(np.asarray(x))):
            check_finite("forward simulation", x, forward_hint(x0, self.beta, h))
        return x, eta
