"""The one entry point: `sample(target, method, process, n, …, **options)`.

`sample` resolves the method in the registry, validates the request once, lets the method
build its plan (a stepper on a step grid, or its own solver), runs it on the engine and
returns a `Sampled`. It never dispatches on a method's name: what differs between methods
is in their `Method` description. `sample_field` runs an active particle in a given force
field (no score: the replay of an exported protocol).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..physics.drivers import OUDriver
from ..errors import (
    ActivegenError,
    check_count,
    check_finite,
    check_key,
    check_nonnegative,
    check_positive,
    check_process,
    seed_key,
)
from ..physics.energetics import finish, with_energetics
from ..physics.scores import as_score_model
from ..physics.stepping import default_dt
from . import engine
from .registry import Method, Plan, Request, get_method, method_names
from .endgame import default_t_min
from .schemes import ENERGETICS_SCHEME, default_scheme
from .validity import (
    CoarseStepWarning,
    diffusion_step_limit,
    nonfinite_hint,
    trap_step_limit,
    warn_coarse_step,
    warn_euler_bias,
    warn_first_order,
)


class Sampled(NamedTuple):
    """Result of a sampler run. samples: (N, d); trajectory: (frames, N, d) or None with
    reverse times `times` (s); info: the run's parameters and diagnostics."""

    samples: np.ndarray
    trajectory: np.ndarray | None
    times: np.ndarray | None
    info: dict


def run_info(method: str, n: int, d, process, t_final: float, dtype, **extra) -> dict:
    """The parameters every sampler records in `Sampled.info` (d None: not known)."""
    return dict(method=method, n=n, d=d, beta=process.beta, tau=process.tau,
                d_active=process.d_active, d_thermal=process.d_thermal, t_final=t_final,
                dtype=str(jnp.dtype(dtype)), **extra)


def check_run(n, t_final, dt, key, seed, save_every, chunk_size):
    """Validated (n, t_final, dt, key, save_every, chunk_size) shared by every entry point.

    key: a JAX PRNG key (an int is refused: pass it as seed=); seed: any integer with
    |seed| < 2**256, each its own stream (`errors.seed_key`); a key and a seed together
    are refused."""
    n = check_count("n", n)
    t_final = check_positive("t_final", t_final)
    if key is None:
        if seed is None:
            raise ActivegenError("give a PRNG key or an integer seed")
        key = seed_key(seed)
    else:
        key = check_key(key)
        if seed is not None:
            raise ActivegenError("give a PRNG key or a seed, not both")
    if dt is not None:
        dt = check_positive("dt", dt)
        if dt > t_final:
            raise ActivegenError(f"dt must be <= t_final ({t_final}), got {dt}")
    if save_every is not None:
        save_every = check_count("save_every", save_every)
    if chunk_size is not None:
        chunk_size = check_count("chunk_size", chunk_size)
    return n, t_final, dt, key, save_every, chunk_size


def check_driver(driver, process, dim: int):
    """A driver matches the process (effective τ, D_A) and the target's dimension."""
    if not (math.isclose(driver.tau, process.tau, rel_tol=1e-9)
            and math.isclose(driver.d_active, process.d_active, rel_tol=1e-9)):
        raise ActivegenError(
            f"the driver's effective tau = {driver.tau:g}, D_A = {driver.d_active:g} must "
            f"equal the process's tau = {process.tau:g}, D_A = {process.d_active:g}"
        )
    if getattr(driver, "dim", dim) != dim:
        raise ActivegenError(
            f"the driver is {driver.dim}-dimensional but the target has d = {dim}"
        )


def default_driver(process):
    """OUDriver(τ, D_A) of the process (None at τ = 0)."""
    return OUDriver(process.tau, process.d_active) if process.tau > 0 else None


def _options(spec: Method, options: dict) -> dict:
    bad = sorted(set(options) - set(spec.options))
    if bad:
        valid = ", ".join(spec.options) or "none"
        raise ActivegenError(
            f"method {spec.name!r} takes no option {', '.join(map(repr, bad))} "
            f"(its options: {valid})"
        )
    return {**spec.options, **options}


def execute(spec: Method, plan: Plan, req: Request, key, *, save_every, progress, chunk_size,
            warn: bool, desc: str, d, blocks: dict | None = None) -> Sampled:
    """Run a built plan and assemble the `Sampled` (info, warnings, finiteness). blocks:
    `engine.run`'s block, first_block, n_blocks (default the whole ensemble)."""
    blocks = blocks or {}
    t0 = time.perf_counter()
    proc = plan.process or req.process
    info = run_info(spec.name if desc is None else desc, req.n, d, proc, req.t_final,
                    req.dtype, **plan.info)
    if plan.solve is not None:
        n_frames = plan.frames(save_every) if plan.frames and save_every else 0
        engine.check_size(req.n, d, 0, n_frames,
                          req.dtype, chunk_size)
        if warn:
            for msg in plan.notes:
                warnings.warn(msg, CoarseStepWarning, stacklevel=4)
        x, traj, times, extra = plan.solve(key, save_every, chunk_size, **blocks)
        info.update(extra)
    else:
        n_frames = 0 if save_every is None else plan.grid.n_steps // save_every + 1
        engine.check_size(req.n, d, plan.grid.n_steps, n_frames, req.dtype, chunk_size)
        if warn:
            h = plan.grid.steps if not plan.grid.uniform else plan.grid.h
            target = req.target
            min_std = getattr(target, "min_std", None)
            diff = getattr(proc, "diffusivity", None)
            if not warn_coarse_step(h, plan.tau_steps, stacklevel=4, beta=proc.beta,
                                    diffusivity=diff, min_std=min_std):
                warn_euler_bias(h, proc.beta, getattr(target, "means", None), min_std,
                                stacklevel=4)
        r = engine.run(plan.stepper, plan.grid, key, req.n, dtype=req.dtype,
                       save_every=save_every, progress=progress, desc=desc or spec.name,
                       chunk_size=chunk_size, **blocks)
        x, traj, times = r.x, r.frames, r.times
        if r.extras:
            end = plan.log_density_end(x) if plan.log_density_end is not None else None
            info.update(finish(r.extras, end))
        steps = plan.grid.steps
        info.update(dt=plan.grid.h if plan.grid.uniform else float(steps.max()),
                    n_steps=plan.grid.n_steps, compile_s=r.compile_s, run_s=r.run_s)
        if not plan.grid.uniform:
            info.update(dt_min=float(steps.min()), dt_max=float(steps.max()))
        if r.tjf is not None:
            info["tau_grad_force"] = r.tjf
            if warn and spec.first_order:
                warn_first_order(r.tjf, diagnostic=plan.diagnostic, remedy=plan.remedy,
                                 stacklevel=4)
    x = np.asarray(jax.block_until_ready(x))
    info["wall_s"] = time.perf_counter() - t0
    if not np.all(np.isfinite(x)):
        check_finite(f"sampler '{desc or spec.name}'", x, _nonfinite_hint(spec, plan, req, info))
    return Sampled(x, traj, times, info)


def _nonfinite_hint(spec: Method, plan: Plan, req: Request, info: dict) -> str:
    """`validity.nonfinite_hint` for a run that produced non-finite samples."""
    proc = plan.process or req.process
    grid = plan.grid if plan.solve is None else None
    steps = None if grid is None else (grid.h if grid.uniform else grid.steps)
    return nonfinite_hint(steps=steps, tau_steps=plan.tau_steps, beta=proc.beta,
                          diffusivity=getattr(proc, "diffusivity", None),
                          min_std=getattr(req.target, "min_std", None),
                          first_order=spec.first_order,
                          tau_grad_force=info.get("tau_grad_force"),
                          learned=hasattr(req.target, "standardizer"))


def check_target_range(target, dtype) -> None:
    """Refuse, before the run, a Gaussian-mixture target whose squared scale (|mean| + sd)²
    exceeds the dtype's range: its covariances and the score's squares overflow there."""
    means, covs = getattr(target, "means", None), getattr(target, "covs", None)
    if means is None or covs is None:
        return
    sd = np.sqrt(np.max(np.abs(np.diagonal(np.asarray(covs, float), axis1=-2, axis2=-1))))
    scale = float(np.max(np.abs(np.asarray(means, float)))) + float(sd)
    top = float(jnp.finfo(dtype).max)
    if scale > math.sqrt(top):
        raise ActivegenError(
            f"the target's scale (|mean| + sd up to {scale:.3g}) is beyond "
            f"{jnp.dtype(dtype).name}'s range once squared (~{top:.2g}: |x| <= "
            f"{math.sqrt(top):.2g}): rescale the target"
            + (", or compute in float64 (--x64)" if jnp.dtype(dtype).itemsize < 8 else ""))


def _check_t_min(t_min, t_final: float, energetics: bool) -> float:
    """0 ≤ t_min < t_final; the end game moves particles by a jump that the energetics do
    not count."""
    t_min = check_nonnegative("t_min", t_min) if t_min else 0.0
    if t_min >= t_final:
        raise ActivegenError(f"t_min must lie in [0, t_final = {t_final:g}), got {t_min:g}")
    if t_min > 0 and energetics:
        raise ActivegenError("energetics=True counts the work of a potential acting over "
                             "time; the end game's denoising jump (t_min > 0) is none")
    return t_min


def build_plan(target, method, process, n: int, *, t_final: float = 6.0,
               dt: float | None = None, closed_form: bool = True, driver=None,
               driver_correction: bool = True, dtype=None, energetics: bool = False,
               t_min: float | None = None, **options) -> tuple[Method, Request, Plan]:
    """Validate a request and build its plan without running it: (Method, Request, Plan).
    `plan.stepper` is the method's (init, step) pair on one block of particles (d, N), as
    `sample` runs it (benchmarks read one step's cost from it). n, t_final, dt as checked
    by `check_run`; the other arguments as `sample`'s."""
    spec = get_method(method)
    if t_min is None:
        t_min = default_t_min(spec, target, energetics, t_final)
    if "scheme" in spec.options and "scheme" not in options:
        # a learned model stopped before t = 0 (the end game) is bounded like a mixture
        options = {**options, "scheme": default_scheme(
            spec.options["scheme"], energetics=energetics,
            bounded=getattr(target, "min_std", None) is not None or t_min > 0)}
    opts = _options(spec, options)
    check_process(process)
    if driver is not None and not spec.active:
        raise ActivegenError(
            f"a driver applies to methods {', '.join(method_names(where=lambda m: m.active))},"
            f" not to {spec.name!r}"
        )
    score = None if spec.analytic_only else as_score_model(target, process, closed_form)
    if driver is not None:
        check_driver(driver, process, score.dim)
    if spec.needs_joint and not hasattr(score, "joint_score"):
        raise ActivegenError(
            f"method {spec.name!r} needs a joint score on (x, eta); {type(score).__name__} "
            "has none"
        )
    if spec.min_n is not None and n < spec.min_n(target.dim):
        raise ActivegenError(
            f"n must be >= {spec.min_n(target.dim)} for method {spec.name!r}; got {n}"
        )
    if energetics and spec.energetics is None:
        raise ActivegenError(
            f"energetics needs a particle in a potential; method {spec.name!r} has none "
            f"(methods with energetics: {', '.join(method_names(where=has_energetics))})"
        )
    t_min = _check_t_min(t_min, t_final, energetics)
    check_target_range(target, dtype or jnp.result_type(float))
    req = Request(target, score, process, n, t_final, dt, dtype or jnp.result_type(float),
                  driver, bool(driver_correction), opts, closed_form, bool(energetics), spec,
                  t_min)
    plan = spec.build(req)
    # a method with its own integrator or grid (ode, fox-schedule) does not stop at t_min
    if t_min > 0 and (plan.solve is not None or plan.grid.t_final > t_final - t_min + 1e-9):
        raise ActivegenError(f"t_min applies to the methods stepped on a uniform grid, not to "
                             f"{spec.name!r}")
    return spec, req, plan


def sample(
    target,
    method,
    process,
    n: int,
    key=None,
    *,
    seed: int | None = None,
    t_final: float = 6.0,
    dt: float | None = None,
    save_every: int | None = None,
    closed_form: bool = True,
    driver=None,
    driver_correction: bool = True,
    dtype=None,
    progress: bool = False,
    chunk_size: int | None = None,
    warn: bool = True,
    energetics: bool = False,
    client=None,
    block_size: int | None = None,
    blocks: tuple[int, int] | None = None,
    task_blocks: int | None = None,
    retries: int = 3,
    shards=None,
    t_min: float | None = None,
    **options,
) -> Sampled:
    """Generate n samples of `target` with the reverse sampler `method` (a registered name
    or alias, `method_names()`; docs/architecture.md).

    target: a GaussianMixture (analytic score) or a score model (`interfaces.ScoreModel`,
    e.g. a learned one). process: the forward ActiveOU. Give a PRNG `key` or an integer
    `seed`. dt: the step (default the method's, `default_dt(τ)` for most); the step used is
    T/⌈T/dt⌉ on a uniform grid. save_every: keep x every that many steps (strided
    trajectory). driver: the self-propulsion of an active method (default OUDriver(τ, D_A)).
    driver_correction: `fox` adds the non-Gaussian driver's correction (zero for OU).
    chunk_size: run the ensemble in chunks of about that many particles (memory
    O(chunk_size)); the samples are those of one run. **options: the method's own options
    (e.g. fox-schedule's tau_min, t_ramp; ode's ode_rtol). energetics: add the per-particle
    stochastic energetics `work`, `active_work`, `heat`, `potential_change` (and, for
    `passive`, the entropy production) to info (`physics.energetics`; methods whose
    particle moves in a potential only).

    On a Dask cluster (docs/distributed.md): client, a `dask.distributed.Client`, runs
    contiguous ranges of `task_blocks` blocks as tasks (default about two per worker),
    rerun up to `retries` times, and gathers the samples of the one-process run; shards, a
    directory: the workers write one samples file per task there and an index.json
    (`files.load_samples` reads it), and the result's samples are None. block_size: the
    particles per block (default BLOCK; the samples depend on it); blocks = (first, count):
    run only those blocks of the n-particle ensemble (what a task runs).

    t_min: the diffusion-model end game (`samplers.endgame`): generation stops at forward
    time t_min > 0 and every sample takes one denoising step x̂ = (x + v S)/m with the score
    at t_min (info["t_min"], info["denoise_jump"]: the mean jump length). None: the
    default (`endgame.default_t_min`: 0, or for a first-order method on a learned model the
    time its own validity scan gives; such a run then also takes the second-order scheme).
    """
    n, t_final, dt, key, save_every, chunk_size = check_run(
        n, t_final, dt, key, seed, save_every, chunk_size)
    spec, req, plan = build_plan(target, method, process, n, t_final=t_final, dt=dt,
                                 closed_form=closed_form, driver=driver,
                                 driver_correction=driver_correction, dtype=dtype,
                                 energetics=energetics, t_min=t_min, **options)
    opts = req.options
    if energetics:
        if opts.get("scheme", ENERGETICS_SCHEME) != ENERGETICS_SCHEME:
            raise ActivegenError(f"energetics=True is implemented for scheme "
                                 f"{ENERGETICS_SCHEME!r} only; got scheme {opts['scheme']!r}")
        plan = add_energetics(plan, spec.energetics(req, plan))
    rng = {} if block_size is None else {"block": check_count("block_size", block_size)}
    if blocks is not None:
        rng.update(first_block=int(blocks[0]), n_blocks=check_count("blocks", blocks[1]))
    if client is not None or shards is not None:
        if energetics:
            raise ActivegenError("energetics=True runs in one process (not with client= "
                                 "or shards=)")
        from .cluster import sample_on_cluster

        job = dict(target=target, method=spec, process=process, n=n, key=key, t_final=t_final,
                   dt=dt, save_every=save_every, closed_form=closed_form, driver=driver,
                   driver_correction=driver_correction, dtype=req.dtype,
                   chunk_size=chunk_size, block_size=block_size, options=opts,
                   t_min=req.t_min)
        return sample_on_cluster(client, sample, job, spec, plan, req, progress=progress,
                                 warn=warn, task_blocks=task_blocks, retries=retries,
                                 shards=shards, seed=seed)
    res = execute(spec, plan, req, key, save_every=save_every, progress=progress,
                  chunk_size=chunk_size, warn=warn, desc=None, d=target.dim, blocks=rng)
    if req.t_min > 0:
        from .endgame import tweedie_denoise

        x, jump = tweedie_denoise(req.score, process, req.t_min, res.samples, req.dtype)
        check_finite(f"the denoising step of '{spec.name}'", x,
                     f"the score at t_min = {req.t_min:g} is not finite at these samples: "
                     "use a larger --t-min")
        res.info.update(t_min=req.t_min, denoise_jump=jump)
        res = res._replace(samples=x)
    route = getattr(req.score, "route", None)
    if route is not None and spec.first_order:
        res.info["route"] = route
    if isinstance(method, str) and method != spec.name:  # an alias: refined is fox-sc
        res.info["method_requested"] = method  # (plot samples titles the run with it)
    return res


def has_energetics(m: Method) -> bool:
    return m.energetics is not None


def add_energetics(plan: Plan, en) -> Plan:
    """The plan with its stepper accumulating the energetics `en` (an `Energetics`); with
    the passive entropy terms, log p(x_T, 0) of the final samples for Δs_sys."""
    import dataclasses

    end = None
    if en.log_density is not None:
        grid = plan.grid

        def end(x):  # x (n, d) -> log p(x, 0) at s = T
            return en.log_density(grid.t_final, jnp.asarray(x).T)
    return dataclasses.replace(plan, stepper=with_energetics(plan.stepper, en),
                               log_density_end=end)


def uniform_grid(req: Request) -> engine.StepGrid:
    """The request's step dt on a uniform grid of [0, T]; if none was asked for, the
    method's `Method.default_dt(req)` (or `default_dt(τ)` where it has none), capped by the
    limits the coarse-step warning checks (σ_min²/(2D) of the target, 0.1/β): a default
    step never warns as coarse."""
    default = getattr(req.method, "default_dt", None)
    if req.dt is not None:
        dt = req.dt
    else:
        dt = default(req) if default is not None else default_dt(req.process.tau)
        dt = min(dt, trap_step_limit(req.process.beta),
                 diffusion_step_limit(getattr(req.process, "diffusivity", None),
                                      getattr(req.target, "min_std", None)))
    return engine.StepGrid.from_dt(req.t_final - req.t_min, min(dt, req.t_final - req.t_min))
