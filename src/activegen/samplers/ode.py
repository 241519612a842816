"""`ode`: the probability-flow ODE dx/ds = βx + D_eff(T−s) S(x, T−s), exact for any τ,
adaptive Tsit5 (diffrax), one solve per block of particles (block j starts from
fold_in(key, j); vmapped over the engine's groups of lanes, `engine.lane_chunks`), so
chunked runs and block ranges give the same samples, bit for bit. The samples are the
solution at s = T always (saved apart from the trajectory's frames: a save spacing above T
keeps the start as the only frame, never as the samples)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .engine import batched, block_range, lane_chunks
from .registry import Method, Plan, register_method
from .validity import ODE_RTOL_MAX


def save_times(t_final: float, every: float) -> np.ndarray:
    """The trajectory's times: round(T/every) + 1 evenly spaced from 0 to T, or just 0
    when every > 2T (the samples, at T, are saved apart)."""
    return np.linspace(0.0, t_final, round(t_final / every) + 1)


def solve_flow(score, p, key, n, t_final, dtype, save_every_time, rtol, chunk_size=None,
               block=None, first_block=0, n_blocks=None):
    """(x (n, d), trajectory or None, times or None, max solver steps over blocks);
    block, first_block, n_blocks as in `engine.run` (only those blocks' particles)."""
    import diffrax

    b, per_chunk, j_first, j_end, n_here = block_range(n, chunk_size, block, first_block,
                                                       n_blocks)

    def field(s, x, args):
        t = t_final - s
        return p.beta * x + p.d_eff(t) * batched(score, "score", score.prepare(t, dtype), x)

    if save_every_time is None:
        saveat = diffrax.SaveAt(t1=True)
        ts = None
    else:
        ts = save_times(t_final, save_every_time)
        # the frames, then t1 (the samples) apart: ys[:-1] and ys[-1]
        saveat = diffrax.SaveAt(ts=jnp.asarray(ts, dtype), t1=True)

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

    # one compiled solve of a group of lanes (`engine.lane_chunks`: their number is set by n
    # and the block size alone), so a block's solution is the same bits in any chunk or
    # block range (a solve vmapped over a whole chunk is a program that depends on the
    # chunk's size, and XLA rounds it differently)
    _, _, chunks = lane_chunks(n, block, per_chunk, j_first, j_end)
    run = jax.jit(jax.vmap(solve))
    ys, steps = [], []
    for groups in chunks:
        # a chunk's groups dispatched together, waited for at its end (Ctrl-C between
        # chunks)
        out = [run(jnp.asarray(ids, jnp.int32)) for ids, _ in groups]
        for (y, st), (_, r) in zip(jax.block_until_ready(out), groups):
            # (lanes, frames, d, b) -> (frames, particles, d) of the real lanes
            ys.append(jnp.moveaxis(y[:r], 0, 1).swapaxes(-1, -2)
                      .reshape(y.shape[1], -1, y.shape[-2]))
            steps.extend(np.asarray(st)[:r].tolist())
    ys = jnp.concatenate(ys, 1)[:, :n_here]
    traj = None if ts is None else np.array(ys[:-1])
    if traj is not None and np.isclose(ts[-1], t_final):
        traj[-1] = np.asarray(ys[-1])  # the frame at T is the samples (not an interpolation)
    return ys[-1], traj, ts, max(steps)


def _build(req) -> Plan:
    from ..physics.stepping import default_dt

    rtol = req.options["ode_rtol"]
    dt = default_dt(req.process.tau) if req.dt is None else req.dt

    def solve(key, save_every, chunk_size, **blocks):
        every = None if save_every is None else save_every * dt
        x, traj, times, nfe = solve_flow(req.score, req.process, key, req.n, req.t_final,
                                         req.dtype, every, rtol, chunk_size, **blocks)
        return x, traj, times, dict(ode_steps=nfe, ode_rtol=rtol)

    def frames(save_every):
        return len(save_times(req.t_final, save_every * dt)) + 1

    notes = ()
    if rtol > ODE_RTOL_MAX:
        notes = (f"ode_rtol = {rtol:g} > {ODE_RTOL_MAX:g}: the adaptive solver's steps are "
                 "coarse and the samples biased",)
    return Plan(solve=solve, info=dict(driver="OUDriver", driver_correction=False),
                frames=frames, notes=notes)


register_method(Method(
    "ode", _build, options={"ode_rtol": 1e-5},
    summary="probability-flow ODE (diffrax Tsit5, adaptive); exact for every tau; needs S",
))
