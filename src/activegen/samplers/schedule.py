"""The activity-schedule sampler, method `fox-schedule` (docs/schedule.md): fox with a real
active particle whose persistence time τ_r(s) = τ(T − s) falls toward the end of generation,
and the force

    F = βx + (D̄ + βD_2) S + D_2 D̄ ∇(∇·S + ½|S|²),   D̄(s) = D_T + D_1(s) + D_eff(T − s),

with the reverse noise's memory D_1, D_2 (`physics.activity_schedule.reverse_memory`). The
schedule τ(t) and the forward process with it (`ActivitySchedule`, `ScheduledActiveOU`) are
`physics.activity_schedule`; the step grid is uniform or adaptive (min(0.002, τ_r(s)/20)).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .._linalg import dot0
from ..errors import ActivegenError
from ..physics.activity_schedule import (
    AUTO_EPS,
    ActivitySchedule,
    ScheduledActiveOU,
    reverse_memory,
)
from ..physics.energetics import Energetics
from ..physics.forces import fox_form, jacobian_norm
from ..physics.processes import ActiveOU
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
from .api import sample
from .engine import StepGrid, Stepper, batched
from .registry import Method, Plan, register_method

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
