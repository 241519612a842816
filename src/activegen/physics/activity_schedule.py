"""Activity schedule: a persistence time that falls toward the end of generation.

The first-order effective potential (`fox`, THEORY.md §2) fails where τ‖∇F‖ is not small,
i.e. at the end of generation (forward time t → 0) when the modes are narrow. Here τ
depends on the forward time (docs/schedule.md),

    τ(t) = τ_min + (τ − τ_min)(1 − e^{−t/t_r})      (τ at large t, τ_min at t = 0),

D_A constant. Forward process (η(0) ~ N(0, D_A/τ(0))):

    τ(t) dη = −η dt + √(2D_A) dW,   dx = −βx dt + η dt + √(2D_T) dW.

Given x(0) = y, (x_i, η_i) is Gaussian with covariance Σ = [[v, c], [c, w]] from the
Lyapunov equation

    dv/dt = −2βv + 2c + 2D_T,   dc/dt = −(β + 1/τ)c + w,   dw/dt = −2w/τ + 2D_A/τ²,

v(0) = c(0) = 0, w(0) = D_A/τ(0); the x-marginal obeys ∂_t p = β∇·(xp) + D_eff Δp exactly
with D_eff = D_T + c(t), so the mixture score is unchanged given v(t) (`ScheduledActiveOU`
tabulates Σ and interpolates). Generation (s = T − t) uses a real active particle with
τ_r(s) = τ(T − s) and the force

    F = βx + (D̄ + βD_2) S + D_2 D̄ ∇(∇·S + ½|S|²),   D̄(s) = D_T + D_1(s) + D_eff(T − s),

where D_1(s) = ∫_0^s C(s,s')ds', D_2(s) = ∫_0^s C(s,s')(s−s')ds' of the reverse noise's
correlation C obey  dw/ds = −2w/τ_r + 2D_A/τ_r², dD_1/ds = w − D_1/τ_r,
dD_2/ds = D_1 − D_2/τ_r, w(0) = D_A/τ_r(0), D_1(0) = D_2(0) = 0 (`reverse_memory`).
Both linear systems are propagated exactly for τ piecewise constant over each grid step
(matrix exponential of the augmented system).

Defaults (measured in docs/schedule.md): `ActivitySchedule.auto` with budget eps = 0.1,
τ_min = min(τ, eps σ_min²/(2D)), t_r = (τ − τ_min)/eps; the adaptive step grid
min(0.002, τ_r(s)/20).

The sampler (method `fox-schedule`) is `samplers.schedule`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import (
    ActivegenError,
    check_finite,
    check_nonnegative,
    check_positive,
    forward_hint,
)
from .processes import ActiveOU
from .stepping import ou_coefficients, ou_step, thermal_amplitude, thermal_kick

#: Validity budget of `ActivitySchedule.auto`: the target value of τ(t)·‖∇F‖ near t = 0.
AUTO_EPS = 0.1
#: Forward-table resolution: grid steps per local time scale min(τ(t), t_r, 1/β).
TABLE_STEPS_PER_SCALE = 50


@dataclasses.dataclass(frozen=True)
class ActivitySchedule:
    """τ(t) = τ_min + (τ − τ_min)(1 − e^{−t/t_r}) in forward time t.

    tau: the persistence time at large t (τ > 0); tau_min: its value at t = 0
    (0 < τ_min ≤ τ; τ_min = τ is the constant schedule); t_ramp: the ramp time t_r > 0.
    """

    tau: float
    tau_min: float
    t_ramp: float

    def __post_init__(self):
        check_positive("tau", self.tau)
        check_positive("tau_min", self.tau_min)
        check_positive("t_ramp", self.t_ramp)
        if self.tau_min > self.tau:
            raise ActivegenError(
                f"tau_min must be in (0, tau] = (0, {self.tau:g}], got {self.tau_min!r}"
            )

    @classmethod
    def constant(cls, tau: float) -> ActivitySchedule:
        """τ(t) = τ for every t."""
        return cls(tau, tau, 1.0)

    @classmethod
    def auto(cls, tau: float, sigma_min: float, diffusivity: float, eps: float = AUTO_EPS,
             tau_min: float | None = None) -> ActivitySchedule:
        """The schedule that keeps τ(t)‖∇F‖ ≲ eps for a target whose narrowest mode has
        width sigma_min (D = D_T + D_A): near t = 0, ‖∇F‖ ≈ D̄/(σ² + v(t)) with D̄ ≈ 2D and
        v ≈ 2Dt, so τ(t) ≤ eps(σ² + 2Dt)/(2D) asks for
            τ_min = min(τ, eps σ_min²/(2D))   and a slope (τ − τ_min)/t_r ≤ eps,
        i.e. t_r = (τ − τ_min)/eps (docs/schedule.md). A given tau_min is kept. Where
        τ ≤ eps σ_min²/(2D) the schedule is constant (plain fox)."""
        check_positive("tau", tau)
        check_positive("sigma_min", sigma_min)
        check_positive("diffusivity", diffusivity)
        check_positive("eps", eps)
        if tau_min is None:
            tau_min = min(tau, eps * sigma_min**2 / (2.0 * diffusivity))
        t_ramp = (tau - tau_min) / eps
        return cls(tau, tau_min, t_ramp if t_ramp > 0 else 1.0)

    @property
    def is_constant(self) -> bool:
        return self.tau_min == self.tau

    def tau_at(self, t):
        """τ(t) (numpy for numpy/float input, jax for a jax array or tracer)."""
        xp = jnp if isinstance(t, jax.Array) else np
        return self.tau_min + (self.tau - self.tau_min) * -xp.expm1(-t / self.t_ramp)


def _chain(gens, y0):
    """States y_0..y_K of dy/dt = M_k y on K steps with constant generators (augmented
    systems: the last component of y is ≡ 1 and carries the forcing). gens: (K, m, m),
    each M_k already multiplied by its step length; y_{k+1} = exp(gens[k]) y_k exactly."""
    from scipy.linalg import expm

    props = expm(gens)
    ys = np.empty((len(props) + 1, len(y0)))
    y = ys[0] = np.asarray(y0, np.float64)
    for k, e in enumerate(props):
        y = ys[k + 1] = e @ y
    return ys


def forward_table(beta: float, d_thermal: float, d_active: float, schedule: ActivitySchedule,
                  t_max: float, steps_per_scale: int = TABLE_STEPS_PER_SCALE):
    """(t, v, c, w) on a grid of [0, t_max] with spacing min(τ(t), t_r, 1/β)/steps_per_scale,
    exact for τ constant on each grid step at its midpoint value."""
    ts = [0.0]
    while ts[-1] < t_max:
        t = ts[-1]
        scale = min(float(schedule.tau_at(t)), schedule.t_ramp, 1.0 / beta)
        ts.append(min(t_max, t + scale / steps_per_scale))
    ts = np.asarray(ts)
    h = np.diff(ts)
    tau = schedule.tau_at(0.5 * (ts[1:] + ts[:-1]))
    m = np.zeros((len(h), 4, 4))
    m[:, 0, 0] = -2.0 * beta
    m[:, 0, 1] = 2.0
    m[:, 0, 3] = 2.0 * d_thermal
    m[:, 1, 1] = -(beta + 1.0 / tau)
    m[:, 1, 2] = 1.0
    m[:, 2, 2] = -2.0 / tau
    m[:, 2, 3] = 2.0 * d_active / tau**2
    ys = _chain(m * h[:, None, None], [0.0, 0.0, d_active / schedule.tau_at(0.0), 1.0])
    return ts, ys[:, 0], ys[:, 1], ys[:, 2]


def reverse_memory(d_active: float, tau_steps, s_grid, w0: float | None = None):
    """(w, D_1, D_2) of the reverse active noise at the grid times s_grid (K+1,), with τ_r
    constant = tau_steps[k] on step k (the driver's own piecewise-constant τ):

        dw/ds = −2w/τ_r + 2D_A/τ_r²,  dD_1/ds = w − D_1/τ_r,  dD_2/ds = D_1 − D_2/τ_r,
        w(0) = w0 (default D_A/tau_steps[0]), D_1(0) = D_2(0) = 0,

    propagated exactly step by step. D_1 = ∫_0^s C(s,s')ds', D_2 = ∫_0^s C(s,s')(s−s')ds'.
    """
    tau = np.asarray(tau_steps, np.float64)
    h = np.diff(np.asarray(s_grid, np.float64))
    m = np.zeros((len(h), 4, 4))
    m[:, 0, 0] = -2.0 / tau
    m[:, 0, 3] = 2.0 * d_active / tau**2
    m[:, 1, 0] = 1.0
    m[:, 1, 1] = -1.0 / tau
    m[:, 2, 1] = 1.0
    m[:, 2, 2] = -1.0 / tau
    w0 = d_active / tau[0] if w0 is None else w0
    ys = _chain(m * h[:, None, None], [w0, 0.0, 0.0, 1.0])
    return ys[:, 0], ys[:, 1], ys[:, 2]


class ScheduledActiveOU:
    """The forward active OU process with persistence time τ(t) of an ActivitySchedule.

    Offers the interface MixtureScore / GaussianMixture use for the x-marginal
    (mean_scale, variance, cross_cov, d_eff, d_bar; beta, d_thermal, d_active, tau) from
    the Lyapunov solution tabulated on [0, t_max] (`forward_table`) and linearly
    interpolated (t is clamped to [0, t_max]). The joint law of (x, η) has Var(η) = w(t)
    (`eta_variance(t)`, a function of t here, not ActiveOU's constant), so the joint score
    of method 'exact' is not offered.
    """

    def __init__(self, beta: float = 1.0, d_thermal: float = 0.0, d_active: float = 1.0,
                 schedule: ActivitySchedule | None = None, t_max: float = 10.0):
        self.beta = check_positive("beta", beta)
        self.d_thermal = check_nonnegative("d_thermal", d_thermal)
        self.d_active = check_positive("d_active", d_active)
        if not isinstance(schedule, ActivitySchedule):
            raise ActivegenError("schedule must be an ActivitySchedule")
        self.schedule = schedule
        self.t_max = check_positive("t_max", t_max)
        self.table = forward_table(self.beta, self.d_thermal, self.d_active, schedule, self.t_max)

    @classmethod
    def from_process(cls, process: ActiveOU, tau_min: float, t_ramp: float,
                     t_max: float = 10.0) -> ScheduledActiveOU:
        """The ActiveOU `process` (τ at large t) with τ lowered to tau_min toward t = 0."""
        return cls(process.beta, process.d_thermal, process.d_active,
                   ActivitySchedule(process.tau, tau_min, t_ramp), t_max)

    def __repr__(self):
        return (f"ScheduledActiveOU(beta={self.beta}, d_thermal={self.d_thermal}, "
                f"d_active={self.d_active}, schedule={self.schedule}, t_max={self.t_max})")

    @property
    def tau(self) -> float:
        """τ at large t (the top of the schedule)."""
        return self.schedule.tau

    @property
    def diffusivity(self) -> float:
        return self.d_thermal + self.d_active

    def tau_at(self, t):
        return self.schedule.tau_at(t)

    def _interp(self, t, col: int):
        ts = self.table[0]
        vals = self.table[col]
        if isinstance(t, jax.Array):
            dt = t.dtype if jnp.issubdtype(t.dtype, jnp.floating) else jnp.result_type(float)
            return jnp.interp(t, jnp.asarray(ts, dt), jnp.asarray(vals, dt))
        return np.interp(t, ts, vals)

    def mean_scale(self, t):
        """e^{−βt}."""
        return jnp.exp(-self.beta * jnp.asarray(t))

    def variance(self, t):
        """v(t) = Var(x_i(t) | y)."""
        return self._interp(t, 1)

    def cross_cov(self, t):
        """c(t) = Cov(x_i, η_i | y)."""
        return self._interp(t, 2)

    def eta_variance(self, t):
        """w(t) = Var(η_i(t)) (= D_A/τ only for a constant schedule)."""
        return self._interp(t, 3)

    def conditional_variance(self, t):
        """v − c²/w: Var(x_i | y, η)."""
        c = self.cross_cov(t)
        return jnp.maximum(self.variance(t) - c * c / self.eta_variance(t), 0.0)

    def d_eff(self, t):
        """D_eff(t) = D_T + c(t): ∂_t p = β∇·(xp) + D_eff Δp."""
        return self.d_thermal + self.cross_cov(t)

    def d_bar(self, t):
        """D_T + D_A + D_eff(t) (ActiveOU's convention, a stationary reverse noise); the
        scheduled sampler uses D̄(s) = D_T + D_1(s) + D_eff(T − s) instead."""
        return self.d_thermal + self.d_active + self.d_eff(t)

    # -- verification routes ------------------------------------------------------
    def lyapunov_covariance(self, t: float) -> np.ndarray:
        """Σ(t) of (x_i, η_i) given y by scipy solve_ivp (Radau, tight tolerances) with the
        continuous τ(t): an independent route to the table."""
        from scipy.integrate import solve_ivp

        b, sch = self.beta, self.schedule
        Q0 = 2.0 * self.d_thermal

        def rhs(s, y):
            tau = float(sch.tau_at(s))
            A = np.array([[-b, 1.0], [0.0, -1.0 / tau]])
            S = y.reshape(2, 2)
            return (A @ S + S @ A.T + np.diag([Q0, 2.0 * self.d_active / tau**2])).ravel()

        S0 = np.diag([0.0, self.d_active / float(sch.tau_at(0.0))])
        sol = solve_ivp(rhs, (0.0, t), S0.ravel(), method="Radau", rtol=1e-10, atol=1e-12)
        return sol.y[:, -1].reshape(2, 2)

    def simulate(self, key, x0, t_final: float, dt: float):
        """Brute-force forward simulation (Euler for x, exact OU step for η with τ at each
        step's midpoint); for tests. x0: (N, d). Returns (x(t_final), η(t_final))."""
        x0 = jnp.asarray(x0)
        check_positive("dt", dt)
        n_steps = max(1, round(t_final / dt))
        h = t_final / n_steps
        tau = self.schedule.tau_at((np.arange(n_steps) + 0.5) * h)
        decay, sd = ou_coefficients(h, tau, self.d_active / tau)
        decay, sd = jnp.asarray(decay, x0.dtype), jnp.asarray(sd, x0.dtype)
        kick = thermal_amplitude(self.d_thermal, h)
        k0, kscan = jax.random.split(key)
        w0 = self.d_active / float(self.schedule.tau_at(0.0))
        eta0 = math.sqrt(w0) * jax.random.normal(k0, x0.shape, x0.dtype)

        def step(carry, inp):
            x, eta = carry
            k, e, s = inp
            k1, k2 = jax.random.split(k)
            x = x + (-self.beta * x + eta) * h
            if self.d_thermal > 0:
                x = thermal_kick(x, kick, k1)
            eta = ou_step(eta, e, s, k2)
            return (x, eta), None

        (x, eta), _ = jax.lax.scan(step, (x0, eta0),
                                   (jax.random.split(kscan, n_steps), decay, sd))
        if not np.all(np.isfinite(np.asarray(x))):
            check_finite("forward simulation", x, forward_hint(x0, self.beta, h))
        return x, eta
