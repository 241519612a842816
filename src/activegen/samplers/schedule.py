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
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from .._linalg import dot0
from ..physics.energetics import Energetics
from ..errors import (
    ActivegenError,
    check_finite,
    check_nonnegative,
    check_positive,
    forward_hint,
)
from ..physics.forces import fox_form, jacobian_norm
from ..physics.processes import ActiveOU
from .api import sample
from .engine import StepGrid, Stepper, batched
from .registry import Method, Plan, register_method
from ..physics.stepping import (
    DT_MAX,
    STEPS_PER_TAU,
    active_update,
    ou_coefficients,
    ou_step,
    thermal_amplitude,
    thermal_kick,
)
from ..physics.stepping import default_dt as stepping_default_dt
from ..physics.targets import GaussianMixture

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


# -- the scheduled sampler (method `fox-schedule`) --------------------------------------
#: Grid rules of the scheduled sampler.
GRIDS = ("uniform", "adaptive")


def default_dt(schedule: ActivitySchedule, grid: str = "uniform") -> float:
    """Uniform grid: Δs = `stepping.default_dt`(τ_min). Adaptive grid: the cap DT_MAX on the
    local step min(DT_MAX, τ_r(s)/STEPS_PER_TAU)."""
    if grid == "adaptive":
        return DT_MAX
    return stepping_default_dt(schedule.tau_min)


def step_grid(schedule: ActivitySchedule, t_final: float, dt: float, grid: str = "uniform"):
    """Reverse times s_0 = 0 < … < s_K = T of the steps. uniform: K = ⌈T/dt⌉ equal steps;
    adaptive: local step ≈ min(dt, τ_r(s)/20), τ_r(s) = τ(T − s) (equidistributed in
    N(s) = ∫ ds/h(s); K = ⌈N(T)⌉)."""
    if grid == "uniform":
        k = math.ceil(t_final / dt - 1e-9)
        return np.linspace(0.0, t_final, k + 1)
    fine = np.linspace(0.0, t_final, 1 + math.ceil(t_final / min(dt, schedule.tau_min) * 20))
    rate = 1.0 / np.minimum(dt, schedule.tau_at(t_final - fine) / STEPS_PER_TAU)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(fine))])
    k = max(1, math.ceil(cum[-1] - 1e-9))
    s = np.interp(np.linspace(0.0, cum[-1], k + 1), cum, fine)
    s[0], s[-1] = 0.0, t_final
    return s


def scheduled_stepper(score, p: ScheduledActiveOU, t_final: float, s_grid, dtype) -> Stepper:
    """The active particle with τ_r(s) = τ(T − s) constant on each step of s_grid (at its
    midpoint) and the force F = βx + (D̄ + βD_2) S + D_2 D̄ ∇(∇·S + ½|S|²) (`forces.fox_form`)
    with the reverse noise's memory D_1, D_2 (`reverse_memory`); the carry's "tjf" is the
    largest ensemble mean of (D_2/D_1)·‖βI + D̄∇S‖."""
    sch = p.schedule
    h = np.diff(s_grid)
    tau_steps = sch.tau_at(t_final - (s_grid[:-1] + 0.5 * h))  # τ_r at each step's midpoint
    w0 = p.d_active / float(sch.tau_at(t_final))
    _, d1, d2 = reverse_memory(p.d_active, tau_steps, s_grid, w0)
    t_eff = np.where(d1 > 0, d2 / np.where(d1 > 0, d1, 1.0), 0.0)  # memory time D_2/D_1
    decay, sd = ou_coefficients(h, tau_steps, p.d_active / tau_steps)
    tab = {
        "t": t_final - s_grid[:-1],
        "decay": decay,
        "sd": sd,
        "thermal": thermal_amplitude(p.d_thermal, h),
        "d_bar": (p.d_thermal + d1 + p.d_eff(t_final - s_grid))[:-1],  # D_T + D_1 + D_eff
        "d2": d2[:-1],
        "t_eff": t_eff[:-1],
    }
    tab = {k: jnp.asarray(v, dtype) for k, v in tab.items()}
    beta, d_t = p.beta, p.d_thermal
    last = len(h) - 1

    def init(key, n):
        k1, k2 = jax.random.split(key)
        x = score.sample_marginal(k1, n, t_final, dtype).T  # the engine's (d, n) layout
        eta = math.sqrt(w0) * jax.random.normal(k2, x.shape, dtype)
        return {"x": x, "eta": eta, "tjf": jnp.zeros((), dtype)}

    def step(c, i, s, hi, key):
        g = {k: v[jnp.minimum(i, last)] for k, v in tab.items()}
        x, eta = c["x"], c["eta"]
        dv = batched(score, "derivs", score.prepare(g["t"], dtype), x)
        db = g["d_bar"]
        f = fox_form(beta, db, g["d2"], x, dv)
        jn = jacobian_norm(beta, db, dv.hessian)
        k1, k2 = jax.random.split(key)
        eta_new = ou_step(eta, g["decay"], g["sd"], k2)
        x_new = active_update(x, f, eta, eta_new, hi)  # the trapezoid mean of η (docs/schedule.md §5)
        if d_t > 0:
            x_new = thermal_kick(x_new, g["thermal"], k1)
        tjf = jnp.fmax(c["tjf"], g["t_eff"] * jnp.mean(jn))
        return {"x": x_new, "eta": eta_new, "tjf": tjf}

    return Stepper(init, step)


def scheduled_potential(score, p: ScheduledActiveOU, t_final: float, s_grid, dtype):
    """u(i, s, x, carry) -> U(x, s_i) = −½β|x|² − (D̄ + βD_2) log p − D_2 D̄ (∇·S + ½|S|²) at
    the grid time s_i (the potential of `scheduled_stepper`'s force, D_1, D_2 of the
    reverse noise at s_i), i = 0 … K."""
    sch = p.schedule
    h = np.diff(s_grid)
    tau_steps = sch.tau_at(t_final - (s_grid[:-1] + 0.5 * h))
    _, d1, d2 = reverse_memory(p.d_active, tau_steps, s_grid,
                               p.d_active / float(sch.tau_at(t_final)))
    tab = {"t": t_final - s_grid, "d_bar": p.d_thermal + d1 + p.d_eff(t_final - s_grid),
           "d2": d2}
    tab = {k: jnp.asarray(v, dtype) for k, v in tab.items()}
    beta = p.beta

    def u(i, s, x, carry):
        g = {k: v[i] for k, v in tab.items()}
        dv = batched(score, "derivs", score.prepare(g["t"], dtype), x)
        db, d2i = g["d_bar"], g["d2"]
        return (-0.5 * beta * dot0(x, x) - (db + beta * d2i) * dv.log_p
                - d2i * db * (dv.div + 0.5 * dot0(dv.score, dv.score)))

    return u


def _energetics(req, plan) -> Energetics:
    """fox-schedule's potential on its grid; its position update moves x by ½(η + η′) h,
    as every active method's."""
    from ..physics.scores import MixtureScore

    score = MixtureScore(req.target, plan.process, closed_form=req.closed_form)
    return Energetics(scheduled_potential(score, plan.process, req.t_final, plan.grid.s,
                                          req.dtype), eta_mean="trapezoid")


def _scheduled_process(target, process, opts, t_final: float) -> ScheduledActiveOU:
    tau_min, t_ramp, eps = opts["tau_min"], opts["t_ramp"], opts["eps"]
    if isinstance(process, ActiveOU):
        if process.tau == 0:
            raise ActivegenError("tau must be > 0 for an activity schedule")
        auto = ActivitySchedule.auto(process.tau, target.min_std, process.diffusivity, eps,
                                     tau_min)
        t_ramp = auto.t_ramp if t_ramp is None else t_ramp
        return ScheduledActiveOU.from_process(process, auto.tau_min, t_ramp, t_max=t_final)
    if isinstance(process, ScheduledActiveOU):
        if tau_min is not None or t_ramp is not None:
            raise ActivegenError("tau_min and t_ramp are given by the ScheduledActiveOU already")
        if t_final > process.t_max * (1 + 1e-12):
            raise ActivegenError(
                f"t_final must be <= the process's t_max = {process.t_max:g}, got {t_final!r}"
            )
        return process
    raise ActivegenError(
        f"process must be an ActiveOU or a ScheduledActiveOU, got {type(process).__name__}"
    )


def _build(req) -> Plan:
    """fox-schedule's plan: the scheduled process (automatic or from the options), its
    step grid and stepper."""
    from ..physics.scores import MixtureScore

    if not isinstance(req.target, GaussianMixture):
        raise ActivegenError(
            f"target must be a GaussianMixture (analytic score), got {type(req.target).__name__}"
        )
    grid = req.options["grid"]
    if grid not in GRIDS:
        raise ActivegenError(f"grid must be one of {', '.join(GRIDS)}; got {grid!r}")
    process = _scheduled_process(req.target, req.process, req.options, req.t_final)
    sch = process.schedule
    dt = default_dt(sch, grid) if req.dt is None else req.dt
    s_grid = step_grid(sch, req.t_final, dt, grid)
    score = MixtureScore(req.target, process, closed_form=req.closed_form)
    stepper = scheduled_stepper(score, process, req.t_final, s_grid, req.dtype)
    return Plan(
        stepper, StepGrid(s_grid), process=process,
        info=dict(tau_min=sch.tau_min, t_ramp=sch.t_ramp, grid=grid),
        tau_steps=sch.tau_at(req.t_final - s_grid[:-1]),
        diagnostic="the memory time D_2/D_1 of the scheduled noise",
        remedy="lower tau_min or lengthen t_ramp",
    )


FOX_SCHEDULE = register_method(Method(
    "fox-schedule", _build, energetics=_energetics, carries_eta=True, first_order=True, analytic_only=True,
    validity_map=True, options={"tau_min": None, "t_ramp": None, "eps": AUTO_EPS,
                                "grid": "adaptive"},
    summary="fox with the persistence time lowered toward the end of generation "
            "(activity schedule; analytic mixtures, OU driver)",
))


def sample_scheduled(target: GaussianMixture, process, n: int, key=None, *,
                     tau_min: float | None = None, t_ramp: float | None = None,
                     eps: float = AUTO_EPS, grid: str = "adaptive", **kw):
    """`sample(target, "fox-schedule", process, n, key, tau_min=…, t_ramp=…, eps=…,
    grid=…, **kw)`: n samples of a Gaussian-mixture target with a real active particle
    whose persistence time follows an activity schedule (module doc, docs/schedule.md).

    process: a ScheduledActiveOU (its table must reach t_final), or an ActiveOU whose τ is
    the top of the schedule, lowered to `tau_min` toward the end of generation with ramp
    time `t_ramp`; either left None comes from `ActivitySchedule.auto(τ, σ_min, D, eps)`
    (σ_min = target.min_std): τ_min = min(τ, eps σ_min²/(2D)), t_r = (τ − τ_min)/eps.
    grid: "adaptive" (default: local step min(dt, τ_r(s)/20), dt default 0.002) or
    "uniform" (step dt, default min(τ_min/20, 0.002) everywhere: the same accuracy for 4-5×
    the steps). info holds n_steps, dt_min, dt_max and the validity diagnostic
    tau_grad_force (largest ensemble mean of (D_2/D_1)·‖βI + D̄∇S‖).
    """
    return sample(target, FOX_SCHEDULE, process, n, key, tau_min=tau_min, t_ramp=t_ramp,
                  eps=eps, grid=grid, **kw)
