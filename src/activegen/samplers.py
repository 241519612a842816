"""Generative (reverse) samplers of THEORY.md §2, run in reverse time s = T − t.

One engine (`_run_scan`: jit + lax.scan over fixed steps, run in chunks for a progress bar
and strided trajectories) drives every stochastic method; a method is an initial law and
a step built from a force and a driver:

  passive  dx = [βx + 2D_eff S] ds + √(2D_eff) dW̄           reverse SDE of the exact x-marginal
                                                             equation ∂_t p = β∇·(xp) + D_eff Δp
                                                             (τ = 0: the standard model, D = D_T + D_A)
  ode      dx/ds = βx + D_eff S                              probability flow, diffrax (adaptive)
  exact    dx = [βx − η + 2D_T ∇_x log p(x,η)] ds + √(2D_T) dW̄
           dη = [η/τ + (2D_A/τ²) ∇_η log p(x,η)] ds + (√(2D_A)/τ) dW̄'    joint start
  fox      dx = F_F ds + η ds + √(2D_T) dW̄,  η an active driver          (effective potential V_F)
  ucn      the same with F_U;   naive: the same with F_0.
  fox-schedule  F_F with a persistence time lowered toward the end of generation
           (`schedule.sample_scheduled`, automatic schedule; docs/schedule.md)
  fox-sc   the same with F_SC = βx + (D_eff + D_T)S − m̂: V_F's features with coefficients
           refitted at every step so that m̂ ≈ E[η | x] (forces module doc; `refined` names it)

The active methods step x with the trapezoid mean of η over the step,
x ← x + [F(x, η) + ½(η + η')] h: for a force independent of η this only moves the end
point by ½h(η_end − η_start); for fox-sc, whose m̂ is fitted to the η before the step, it
cancels the O(h/τ) excess spread of the discrete steps (docs/beyond_first_order.md).

Inside the engine an ensemble is stored particles last, x and η of shape (d, N) per block
(docs/performance.md: XLA CPU vectorises the fused force loops over particles only in this
layout); samples, trajectories and user fields are (N, d) at the boundaries.

S is evaluated at forward time t = T − s. For `exact`, writing ∇_η log p = −ητ/D_A + r,
the η equation is τ dη = −η ds + (2D_A/τ) r ds + √(2D_A) dW̄', stepped with the exact OU
update plus the exponential-integrator term (1 − e^{−h/τ})(2D_A/τ) r.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._xla import unrolled_threefry
from .drivers import OUDriver
from .errors import (
    ActivegenError,
    FirstOrderWarning,
    check_count,
    check_finite,
    check_positive,
)
from .forces import (
    FORCES,
    fit_projection,
    force_driver_correction,
    force_jacobian_norm,
    force_projected,
    projection_features,
    saturate,
)
from .processes import ActiveOU
from .scores import MixtureScore
from .targets import GaussianMixture

METHODS = ("passive", "ode", "exact", "fox", "ucn", "naive", "fox-sc", "refined", "fox-schedule")
#: The methods in which an external force acts on a particle driven by a self-propulsion.
ACTIVE_METHODS = ("fox", "ucn", "naive", "fox-sc", "refined")
#: `refined`: the most accurate force that needs no velocity score (docs/beyond_first_order.md).
REFINED = "fox-sc"
#: fox-sc needs at least this many particles per fitted coefficient.
FIT_MIN_PER_COEF = 20

#: τ·‖∇F‖ (ensemble mean, largest over the run) above which the first-order
#: expansion is flagged as unreliable. Calibrated by `activegen experiment validity-map`
#: (docs/results.md): on the 1D mixtures σ = (s, 1.5s), s = 0.3–0.8, τ = 0.025–0.2, fox is
#: worse than naive in every cell above 0.6 and better in every cell below 0.28; 0.3 is
#: the conservative end of that gap (the first cell where fox exceeds 3× the exact
#: sampler's error, still no worse than naive, sits at 0.24).
VALIDITY_THRESHOLD = 0.3


class Sampled(NamedTuple):
    """Result of a sampler run. samples: (N, d); trajectory: (frames, N, d) or None with
    reverse times `times` (s); info: the run's parameters and diagnostics."""

    samples: np.ndarray
    trajectory: np.ndarray | None
    times: np.ndarray | None
    info: dict


class _Method(NamedTuple):
    init: Callable  # key, n -> carry (dict with "x")
    step: Callable  # carry, s, h, key -> carry


def default_dt(tau: float) -> float:
    """Δs = min(τ/20, 0.002) (0.002 at τ = 0): Δs ≤ τ/10 with margin."""
    return 0.002 if tau == 0 else min(tau / 20.0, 0.002)


def _batched(score, name: str, state, *xs):
    """score.<name>_batch(state, *xs) where the model has it (closed forms written for a
    whole ensemble), else vmap of the per-point score.<name> over the particle axis (last:
    xs of shape (d, N))."""
    fn = getattr(score, name + "_batch", None)
    if fn is not None:
        return fn(state, *xs)
    return jax.vmap(getattr(score, name), in_axes=(None,) + (-1,) * len(xs), out_axes=-1)(
        state, *xs
    )


def _derivs(score, state, xs, order: int = 2):
    """The score derivatives at xs (d, N) for a force of that `order` (`forces.Force`):
    a model whose `derivs_batch` takes `order` (learned models) computes only what is
    needed; any other gets `_batched(score, "derivs", ...)`, the full set."""
    fn = getattr(score, "derivs_batch", None)
    if fn is not None and getattr(score, "derivs_orders", False):
        return fn(state, xs, order=order)
    return _batched(score, "derivs", state, xs)


def _passive(score, p: ActiveOU, t_final: float, dtype) -> _Method:
    """The carry holds the step's noise ξ, drawn one step ahead: then the draw is not fused
    into the score's loop (XLA emitted that fusion, inverse-erf and reductions together,
    as scalar code: 2.5× slower; docs/performance.md)."""

    def init(key, n):
        k1, k2 = jax.random.split(key)
        x = score.sample_marginal(k1, n, t_final, dtype).T
        return {"x": x, "xi": jax.random.normal(k2, x.shape, dtype)}

    def step(c, s, h, key):
        t = t_final - s
        x = c["x"]
        sc = _batched(score, "score", score.prepare(t, dtype), x)
        de = p.d_eff(t)
        return {"x": x + (p.beta * x + 2.0 * de * sc) * h + jnp.sqrt(2.0 * de * h) * c["xi"],
                "xi": jax.random.normal(key, x.shape, dtype)}

    return _Method(init, step)


def _exact(score, p: ActiveOU, t_final: float, dtype) -> _Method:
    if p.tau == 0:
        raise ActivegenError("tau must be > 0 for method 'exact' (use 'passive' at tau = 0)")
    drv = OUDriver(p.tau, p.d_active)

    def init(key, n):
        x, eta = score.sample_joint(key, n, t_final, dtype)
        return {"x": x.T, "eta": eta.T}

    def step(c, s, h, key):
        t = t_final - s
        x, eta = c["x"], c["eta"]
        js = score.prepare_joint(t, dtype)
        sx, seta = _batched(score, "joint_score", js, x, eta)
        r = seta + eta / drv.variance
        k1, k2 = jax.random.split(key)
        x_new = x + (p.beta * x - eta + 2.0 * p.d_thermal * sx) * h
        if p.d_thermal > 0:
            x_new = x_new + math.sqrt(2.0 * p.d_thermal * h) * jax.random.normal(k1, x.shape, dtype)
        kick = -math.expm1(-h / p.tau) * 2.0 * p.d_active / p.tau
        return {"x": x_new, "eta": drv.step(eta, h, k2) + kick * r}

    return _Method(init, step)


def _score_field(force, score, p: ActiveOU, dtype, kappa: float, order: int = 2):
    """field(t, x, η) -> (F, ‖∇F_0‖) for a force of `forces` built from a score model; with
    κ ≠ 0 plus the driver's fourth-order correction (saturated). order: what the force
    needs (`forces.Force.order`)."""

    def field(t, x, eta):
        dv = _derivs(score, score.prepare(t, dtype), x, 2 if kappa else order)
        f = force(p, t, x, dv)  # the forces take (d, N) ensembles as they are
        if kappa:
            f = f + saturate(force_driver_correction(p, kappa, t, x, dv), f)
        return f, force_jacobian_norm(p, t, dv)

    return field


def _projected_field(score, p: ActiveOU, dtype, swimmer: bool):
    """field(t, x, η) -> (F_SC, ‖∇F_0‖) for fox-sc: θ fitted to the (x, η) of the particles
    it is called with (one block: blocks stay independent, so chunking changes nothing);
    `swimmer` adds the non-Gaussian driver's feature."""

    def field(t, x, eta):
        dv = _derivs(score, score.prepare(t, dtype), x, 2)
        theta = fit_projection(projection_features(x, dv, swimmer), eta)
        return force_projected(p, t, x, dv, theta), force_jacobian_norm(p, t, dv)

    return field


def _active(field, init_x, p: ActiveOU, t_final: float, dtype, driver) -> _Method:
    """dx = [F(x, T−s) + η] ds + √(2D_T) dW̄: x driven by an external force field
    `field(t, x, η) -> (F, ‖∇F‖ or None)` (η only for fox-sc's fit) and the active noise η
    of `driver`, stepped with η's trapezoid mean (module doc); init_x(key, n) draws the start
    (n, d); x and η are carried particles last, (d, n)."""
    if p.tau == 0:
        raise ActivegenError("tau must be > 0 for an active driver (use 'passive' at tau = 0)")

    def init(key, n):
        k1, k2 = jax.random.split(key)
        x = init_x(k1, n).T
        return {"x": x, "eta": driver.init(k2, x.shape, dtype), "tjf": jnp.zeros((), dtype)}

    def step(c, s, h, key):
        x, eta = c["x"], c["eta"]
        f, jn = field(t_final - s, x, eta)
        k1, k2 = jax.random.split(key)
        eta_new = driver.step(eta, h, k2)
        x_new = x + (f + 0.5 * (eta + eta_new)) * h
        if p.d_thermal > 0:
            x_new = x_new + math.sqrt(2.0 * p.d_thermal * h) * jax.random.normal(k1, x.shape, dtype)
        tjf = c["tjf"] if jn is None else jnp.fmax(c["tjf"], p.tau * jnp.mean(jn))
        return {"x": x_new, "eta": eta_new, "tjf": tjf}

    return _Method(init, step)


#: Particles are generated in blocks of this many: block j's random streams are
#: fold_in(key, j), so a run split into chunks of whole blocks gives the same samples.
BLOCK = 16384


def _blocks(n: int, chunk_size: int | None):
    """(block size B, number of blocks, blocks per chunk): B ≤ BLOCK, nB − n < nb."""
    nb = -(-n // BLOCK)
    b = -(-n // nb)
    per_chunk = nb if chunk_size is None else max(1, min(nb, chunk_size // b))
    return b, nb, per_chunk


def _run_scan(method: _Method, key, n, t_final, n_steps, save_every, progress, desc,
              chunk_size=None, timing=None):
    """Fixed-step integration: steps i = 0..n_steps−1 at s_i = i·h, h = T/n_steps.

    The ensemble is a stack of blocks of B particles (the method's init and step are
    vmapped over blocks; a block's x is (d, B), particles last; block j at step i uses the
    key fold_in(fold_in(k_run, i), j)), run in particle chunks of whole blocks (`chunk_size`: memory O(chunk)) and, within a chunk,
    in jit-compiled runs of `save_every`·m steps (lax.scan over frames of a lax.scan over
    steps; steps past n_steps are masked). Results depend on neither chunking.
    Returns (x (n, d), frames (F, n, d) or None, per-block carries' `tjf` weighted mean).
    """
    keep = save_every is not None
    timing = {} if timing is None else timing
    save_every = save_every or n_steps
    h = t_final / n_steps
    b, nb, per_chunk = _blocks(n, chunk_size)
    k_init, k_run = jax.random.split(key)
    n_runs = min(50, n_steps) if progress else 1
    frames_per_run = max(1, math.ceil(n_steps / (save_every * n_runs)))
    run_len = frames_per_run * save_every
    masked = n_steps % run_len != 0
    v_init = jax.vmap(lambda k: method.init(k, b))
    v_step = jax.vmap(method.step, in_axes=(0, None, None, 0))

    def one_step(c, i):
        j = c["block"]
        keys = jax.vmap(lambda jj: jax.random.fold_in(jax.random.fold_in(k_run, i), jj))(j)
        old = {k: v for k, v in c.items() if k != "block"}
        new = v_step(old, i * h, h, keys)
        if masked:
            new = jax.tree.map(lambda a, o: jnp.where(i < n_steps, a, o), new, old)
        return {**new, "block": j}, None

    def one_frame(c, i0):
        c, _ = jax.lax.scan(one_step, c, i0 + jnp.arange(save_every))
        return c, c["x"]

    @jax.jit
    def run(c, start):
        starts = start + save_every * jnp.arange(frames_per_run)
        return jax.lax.scan(one_frame, c, starts)

    @jax.jit
    def init(blocks):
        c = v_init(jax.vmap(lambda jj: jax.random.fold_in(k_init, jj))(blocks))
        return {**c, "block": blocks}

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps * nb, desc=desc, unit="block-step", leave=False)
    xs, all_frames, tjf = [], [], []
    t0 = time.perf_counter()
    with unrolled_threefry():
        init_c = init.lower(jnp.arange(per_chunk)).compile()
        compiled = run.lower(init_c(jnp.arange(per_chunk)), jnp.int32(0)).compile()
    timing["compile_s"] = time.perf_counter() - t0
    for j0 in range(0, nb, per_chunk):
        blocks = jnp.arange(j0, j0 + per_chunk)  # the last chunk may run past nb: dropped
        carry = init_c(blocks)
        frames = [carry["x"][None]]
        for start in range(0, n_steps, run_len):
            carry, fx = compiled(carry, jnp.int32(start))
            if keep:
                frames.append(fx)
            if bar is not None:
                jax.block_until_ready(carry["x"])
                bar.update(min(run_len, n_steps - start) * min(per_chunk, nb - j0))
        xs.append(carry["x"])
        if keep:
            all_frames.append(jnp.concatenate(frames, 0))
        if "tjf" in carry:
            tjf.append(carry["tjf"])
    if bar is not None:
        bar.close()
    d = xs[0].shape[-2]
    # carries are particles last, (blocks, d, B): back to (particles, d)
    x = jnp.concatenate([jnp.swapaxes(a, -1, -2).reshape(-1, d) for a in xs])[:n]
    frames = None
    if keep:
        frames = jnp.concatenate(
            [jnp.swapaxes(f, -1, -2).reshape(f.shape[0], -1, d) for f in all_frames], 1
        )[:, :n]
    tjf_mean = None
    if tjf:
        w = np.clip(n - b * np.arange(nb), 0, b)
        tjf_mean = float(np.sum(np.concatenate([np.asarray(t) for t in tjf])[:nb] * w) / n)
    return x, frames, tjf_mean


def _run_ode(score, p: ActiveOU, key, n, t_final, dtype, save_every_time, rtol,
             chunk_size=None):
    """Probability-flow ODE dx/ds = βx + D_eff(T−s) S(x, T−s), adaptive Tsit5 (diffrax),
    one solve per block of particles (vmapped; block j starts from fold_in(key, j)), so
    chunked runs give the same samples."""
    import diffrax

    b, nb, per_chunk = _blocks(n, chunk_size)

    def field(s, x, args):
        t = t_final - s
        return p.beta * x + p.d_eff(t) * _batched(score, "score", score.prepare(t, dtype), x)

    if save_every_time is None:
        saveat = diffrax.SaveAt(t1=True)
        ts = None
    else:
        ts = np.linspace(0.0, t_final, round(t_final / save_every_time) + 1)
        saveat = diffrax.SaveAt(ts=jnp.asarray(ts, dtype))

    def solve(j):
        y0 = score.sample_marginal(jax.random.fold_in(key, j), b, t_final, dtype).T  # (d, b)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            diffrax.Tsit5(),
            t0=0.0,
            t1=t_final,
            dt0=min(0.01, t_final / 100),
            y0=y0,
            saveat=saveat,
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=rtol),
            max_steps=100_000,
        )
        return sol.ys, sol.stats["num_steps"]

    run = jax.jit(jax.vmap(solve))
    ys, steps = [], []
    for j0 in range(0, nb, per_chunk):
        y, st = run(jnp.arange(j0, j0 + per_chunk))
        # (blocks, frames, d, b) -> (frames, particles, d)
        ys.append(jnp.moveaxis(y, 0, 1).swapaxes(-1, -2).reshape(y.shape[1], -1, y.shape[-2]))
        steps.append(np.asarray(st))
    ys = jnp.concatenate(ys, 1)[:, :n]
    return ys[-1], (ys if ts is not None else None), ts, int(np.max(np.concatenate(steps)[:nb]))


def _as_score(model, process: ActiveOU, closed_form: bool):
    """A GaussianMixture becomes its analytic MixtureScore; a score model (anything with
    `prepare`, `derivs`, `score`, `sample_marginal`, e.g. a learned one) is used as it is."""
    if isinstance(model, GaussianMixture):
        return MixtureScore(model, process, closed_form=closed_form)
    missing = [a for a in ("dim", "prepare", "derivs", "score", "sample_marginal")
               if not hasattr(model, a)]
    if missing:
        raise ActivegenError(
            f"target must be a GaussianMixture or a score model; {type(model).__name__} "
            f"lacks {', '.join(missing)}"
        )
    check = getattr(model, "check_process", None)
    if check is not None:
        check(process)
    return model


def _check_run(process: ActiveOU, n, t_final, dt, key, seed, save_every, chunk_size,
               active: bool):
    """Validated (n, t_final, dt, key, save_every, chunk_size) shared by every entry point."""
    n = check_count("n", n)
    t_final = check_positive("t_final", t_final)
    if key is None:
        if seed is None:
            raise ActivegenError("give a PRNG key or an integer seed")
        key = jax.random.key(int(seed))
    dt = default_dt(process.tau) if dt is None else check_positive("dt", dt)
    if dt > t_final:
        raise ActivegenError(f"dt must be <= t_final ({t_final}), got {dt}")
    if process.tau > 0 and dt > process.tau / 10 and active:
        warnings.warn(
            f"dt = {dt} exceeds tau/10 = {process.tau / 10}: the active noise is under-resolved",
            stacklevel=3,
        )
    if save_every is not None:
        save_every = check_count("save_every", save_every)
    if chunk_size is not None:
        chunk_size = check_count("chunk_size", chunk_size)
    return n, t_final, dt, key, save_every, chunk_size


def _check_driver(driver, process: ActiveOU, dim: int):
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


def _integrate(m: _Method, key, n, t_final, dt, save_every, progress, desc, info, warn,
               chunk_size=None):
    """Run a fixed-step method; fill info (dt, n_steps, tau_grad_force) and warn when the
    first-order validity scale is exceeded. Returns (x, trajectory, times)."""
    n_steps = math.ceil(t_final / dt - 1e-9)
    timing = {}
    t0 = time.perf_counter()
    x, frames, tjf = _run_scan(m, key, n, t_final, n_steps, save_every, progress, desc,
                               chunk_size, timing)
    x = jax.block_until_ready(x)
    info.update(dt=t_final / n_steps, n_steps=n_steps, compile_s=timing["compile_s"],
                run_s=time.perf_counter() - t0 - timing["compile_s"])
    traj = times = None
    if save_every is not None:
        n_frames = min(n_steps // save_every, frames.shape[0] - 1)
        traj = np.asarray(frames[: n_frames + 1])
        times = np.arange(n_frames + 1) * save_every * (t_final / n_steps)
    if tjf is not None:
        info["tau_grad_force"] = tjf
        if warn and tjf > VALIDITY_THRESHOLD:
            warnings.warn(
                f"tau*|grad F| reached {tjf:.2f} (> {VALIDITY_THRESHOLD}): the first-order "
                "effective potential is unreliable here (modes too narrow for this "
                "persistence time: tau*D/sigma^2 not small; past this value fox did worse "
                "than the zeroth-order force 'naive' in calibration); lower tau, or use "
                "method 'refined' (fox-sc: no velocity score) or 'exact'",
                FirstOrderWarning,
                stacklevel=3,
            )
    return x, traj, times


def run_info(method: str, n: int, d, process, t_final: float, dtype, **extra) -> dict:
    """The parameters every sampler records in `Sampled.info` (d None: not known)."""
    return dict(method=method, n=n, d=d, beta=process.beta, tau=process.tau,
                d_active=process.d_active, d_thermal=process.d_thermal, t_final=t_final,
                dtype=str(jnp.dtype(dtype)), **extra)


def _finish(x, traj, times, info, t0, what):
    x = np.asarray(jax.block_until_ready(x))
    info["wall_s"] = time.perf_counter() - t0
    check_finite(what, x)
    return Sampled(x, traj, times, info)


def sample(
    target,
    method: str,
    process: ActiveOU,
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
    ode_rtol: float = 1e-5,
    chunk_size: int | None = None,
    warn: bool = True,
) -> Sampled:
    """Generate n samples of `target` with a reverse sampler (see module doc).

    target: a GaussianMixture (analytic score) or a score model (`scores` interface plus
    `sample_marginal(key, n, t, dtype)`, e.g. a learned model). process: the forward
    ActiveOU. Give a PRNG `key` or an integer `seed`. dt defaults to `default_dt(τ)`; the
    step actually used is T/ceil(T/dt). save_every: keep x every that many steps (strided
    trajectory). driver: self-propulsion for fox/ucn/naive (default: OUDriver(τ, D_A)).
    With driver_correction (default) `fox` adds the driver's non-Gaussian correction
    (`forces.force_driver_correction`; zero for the OU driver). chunk_size: run the
    ensemble in chunks of about that many particles (memory O(chunk_size)); the samples
    are the same as in one run (blocks of ≤ BLOCK particles carry their own random streams).
    """
    if method not in METHODS:
        raise ActivegenError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "refined":
        method = REFINED
    if method == "fox-schedule":
        if driver is not None and not isinstance(driver, OUDriver):
            raise ActivegenError(
                f"method 'fox-schedule' runs with the OU driver only, not {type(driver).__name__}"
            )
        from .schedule import sample_scheduled

        return sample_scheduled(target, process, n, key, seed=seed, t_final=t_final, dt=dt,
                                save_every=save_every, closed_form=closed_form, dtype=dtype,
                                progress=progress, chunk_size=chunk_size, warn=warn)
    n, t_final, dt, key, save_every, chunk_size = _check_run(
        process, n, t_final, dt, key, seed, save_every, chunk_size,
        active=warn and method not in ("ode", "passive"),
    )
    score = _as_score(target, process, closed_form)
    if driver is not None:
        if method not in ACTIVE_METHODS:
            raise ActivegenError(
                f"a driver applies to methods {', '.join(ACTIVE_METHODS)}, not to {method!r}"
            )
        _check_driver(driver, process, score.dim)
    if method == "exact" and not hasattr(score, "joint_score"):
        raise ActivegenError(
            f"method 'exact' needs a joint score on (x, eta); {type(score).__name__} has none"
        )
    dtype = dtype or jnp.result_type(float)
    info = run_info(
        method, n, score.dim, process, t_final, dtype,
        driver=type(driver).__name__ if driver is not None else "OUDriver",
        driver_correction=bool(driver_correction and method == "fox"
                               and getattr(driver, "kappa", 0.0) != 0.0),
    )
    t0 = time.perf_counter()
    if method == "ode":
        every = None if save_every is None else save_every * dt
        x, traj, times, nfe = _run_ode(score, process, key, n, t_final, dtype, every, ode_rtol,
                                       chunk_size)
        info.update(ode_steps=nfe, ode_rtol=ode_rtol)
        return _finish(x, traj, times, info, t0, f"sampler '{method}'")
    if method == "passive":
        m = _passive(score, process, t_final, dtype)
    elif method == "exact":
        m = _exact(score, process, t_final, dtype)
    else:
        drv = driver or (OUDriver(process.tau, process.d_active) if process.tau > 0 else None)
        if method == "fox-sc":
            n_min = FIT_MIN_PER_COEF * (score.dim + 5)
            if n < n_min:
                raise ActivegenError(
                    f"n must be >= {n_min} for method 'fox-sc' (it fits {score.dim + 4}–"
                    f"{score.dim + 5} coefficients to the ensemble at every step); got {n}"
                )
            field = _projected_field(score, process, dtype, getattr(drv, "kappa", 0.0) != 0.0)
        else:
            kappa = getattr(drv, "kappa", 0.0) if driver_correction and method == "fox" else 0.0
            field = _score_field(FORCES[method].force, score, process, dtype, kappa,
                                 FORCES[method].order)
        init_x = lambda k, m_: score.sample_marginal(k, m_, t_final, dtype)  # noqa: E731
        m = _active(field, init_x, process, t_final, dtype, drv)
    # fox-sc does not rest on the small-τ expansion: its τ‖∇F‖ is reported, not warned on
    x, traj, times = _integrate(m, key, n, t_final, dt, save_every, progress, method, info,
                                warn and method != "fox-sc", chunk_size)
    return _finish(x, traj, times, info, t0, f"sampler '{method}'")


def sample_field(
    field,
    init_x,
    process: ActiveOU,
    n: int,
    key=None,
    *,
    seed: int | None = None,
    t_final: float = 6.0,
    dt: float | None = None,
    save_every: int | None = None,
    driver=None,
    dim: int | None = None,
    dtype=None,
    progress: bool = False,
    warn: bool = True,
    chunk_size: int | None = None,
    desc: str = "field",
) -> Sampled:
    """Active particles in a given external force field, no score involved:
    dx = [F(x, T−s) + η] ds + √(2D_T) dW̄.

    field(t, x) -> (F (N, d), ‖∇F‖ (N,) or None) at forward time t = T − s (jax-traceable);
    init_x(key, n) -> (n, d) start. driver defaults to OUDriver(τ, D_A). Used to replay an
    exported protocol (a force tabulated on a grid).
    """
    n, t_final, dt, key, save_every, chunk_size = _check_run(
        process, n, t_final, dt, key, seed, save_every, chunk_size, active=warn
    )
    drv = driver or (OUDriver(process.tau, process.d_active) if process.tau > 0 else None)
    if dim is not None:
        _check_driver(drv, process, dim)
    dtype = dtype or jnp.result_type(float)
    info = run_info(desc, n, dim, process, t_final, dtype, driver=type(drv).__name__)
    t0 = time.perf_counter()

    def engine_field(t, x, eta):  # the engine carries x as (d, N); `field` takes (N, d)
        f, jn = field(t, x.T)
        return f.T, jn

    m = _active(engine_field, init_x, process, t_final, dtype, drv)
    x, traj, times = _integrate(m, key, n, t_final, dt, save_every, progress, desc, info, warn,
                                chunk_size)
    return _finish(x, traj, times, info, t0, f"sampler '{desc}'")
