"""The fixed-step engine: one jit + lax.scan over an explicit step grid.

A method is a *stepper*, a pair of pure functions (as an optax transformation is):

    init(key, n) -> carry          a dict with "x" of shape (d, n) (particles last), and
                                   optionally "tjf" (the validity diagnostic's running max)
    step(carry, i, s, h, key) -> carry    step i from reverse time s to s + h

The engine knows nothing of physics. It stacks the ensemble in blocks of ≤ BLOCK particles
(init and step vmapped over blocks; block j at step i draws from fold_in(fold_in(k_run, i),
j), so a run cut into chunks of whole blocks gives the same samples), runs a chunk of blocks
at a time (memory O(chunk)), and within a chunk jit-compiled runs of save_every·m steps
(a lax.scan over frames of a lax.scan over steps; steps past the end are masked), which
give the strided trajectory and the progress bar.
"""

from __future__ import annotations

import math
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._xla import unrolled_threefry
from ..errors import ActivegenError

#: Particles are generated in blocks of this many, each with its own random streams.
BLOCK = 16384


class Stepper(NamedTuple):
    """init(key, n) -> carry; step(carry, i, s, h, key) -> carry (module doc)."""

    init: Callable
    step: Callable


class StepGrid:
    """Reverse times 0 = s_0 < s_1 < … < s_K = T of the steps.

    Uniform grids pass s = i·h and the Python float h to the stepper (constants XLA folds);
    other grids read s_i and h_i = s_{i+1} − s_i from tables."""

    def __init__(self, s):
        s = np.asarray(s, np.float64)
        if s.ndim != 1 or len(s) < 2 or np.any(np.diff(s) <= 0) or s[0] != 0.0:
            raise ActivegenError("a step grid must start at 0 and increase")
        self.s = s
        self.uniform = False

    @classmethod
    def uniform_steps(cls, t_final: float, n_steps: int) -> StepGrid:
        g = cls.__new__(cls)
        g.h = t_final / n_steps
        g.s = np.arange(n_steps + 1) * g.h
        g.uniform = True
        return g

    @classmethod
    def from_dt(cls, t_final: float, dt: float) -> StepGrid:
        """K = ⌈T/dt⌉ equal steps of T/K."""
        return cls.uniform_steps(t_final, math.ceil(t_final / dt - 1e-9))

    @property
    def n_steps(self) -> int:
        return len(self.s) - 1

    @property
    def t_final(self) -> float:
        return float(self.s[-1])

    @property
    def steps(self) -> np.ndarray:
        return np.diff(self.s)

    def point(self, i, dtype):
        """(s_i, h_i) for the traced step index i."""
        if self.uniform:
            return i * self.h, self.h
        k = jnp.minimum(i, self.n_steps - 1)
        return (jnp.asarray(self.s[:-1], dtype)[k], jnp.asarray(self.steps, dtype)[k])


def batched(score, name: str, state, *xs):
    """score.<name>_batch(state, *xs) where the model has it (closed forms written for a
    whole ensemble), else vmap of the per-point score.<name> over the particle axis (last:
    xs of shape (d, N))."""
    fn = getattr(score, name + "_batch", None)
    if fn is not None:
        return fn(state, *xs)
    return jax.vmap(getattr(score, name), in_axes=(None,) + (-1,) * len(xs), out_axes=-1)(
        state, *xs
    )


def blocks(n: int, chunk_size: int | None, block: int | None = None):
    """(block size B, number of blocks, blocks per chunk): B ≤ block (default BLOCK),
    nB − n < nb."""
    nb = -(-n // (block or BLOCK))
    b = -(-n // nb)
    per_chunk = nb if chunk_size is None else max(1, min(nb, chunk_size // b))
    return b, nb, per_chunk


class Run(NamedTuple):
    """x (n, d); frames (F, n, d) or None with their reverse times; the block-weighted mean
    of the carries' "tjf" (None if the stepper keeps none); compile and run seconds."""

    x: jax.Array
    frames: jax.Array | None
    times: np.ndarray | None
    tjf: float | None
    compile_s: float
    run_s: float


def block_range(n: int, chunk_size, block, first_block: int, n_blocks):
    """(B, blocks per chunk, j0, j1, particles in blocks [j0, j1)) of the ensemble of n
    particles cut into blocks of ≤ block (default BLOCK): a range of whole blocks, with the
    keys and the block size of the whole run (a cluster task runs one)."""
    b, nb, per_chunk = blocks(n, chunk_size, block)
    j1 = nb if n_blocks is None else first_block + n_blocks
    if not 0 <= first_block < j1 <= nb:
        raise ActivegenError(f"block range [{first_block}, {j1}) is not within [0, {nb})")
    return b, min(per_chunk, j1 - first_block), first_block, j1, min(n, b * j1) - b * first_block


def run(stepper: Stepper, grid: StepGrid, key, n: int, *, dtype, save_every=None,
        progress: bool = False, desc: str = "", chunk_size: int | None = None,
        block: int | None = None, first_block: int = 0, n_blocks: int | None = None) -> Run:
    """Integrate n particles over `grid` with `stepper` (module doc). block: the block size
    (default BLOCK); first_block, n_blocks: run only blocks [first_block, first_block +
    n_blocks) of the n-particle run (default all): x holds their particles."""
    keep = save_every is not None
    n_steps = grid.n_steps
    save_every = save_every or n_steps
    b, per_chunk, j_first, j_end, n_here = block_range(n, chunk_size, block, first_block,
                                                       n_blocks)
    nb = j_end - j_first
    k_init, k_run = jax.random.split(key)
    n_runs = min(50, n_steps) if progress else 1
    frames_per_run = max(1, math.ceil(n_steps / (save_every * n_runs)))
    run_len = frames_per_run * save_every
    masked = n_steps % run_len != 0
    v_init = jax.vmap(lambda k: stepper.init(k, b))
    v_step = jax.vmap(stepper.step, in_axes=(0, None, None, None, 0))

    def one_step(c, i):
        j = c["block"]
        keys = jax.vmap(lambda jj: jax.random.fold_in(jax.random.fold_in(k_run, i), jj))(j)
        old = {k: v for k, v in c.items() if k != "block"}
        s, h = grid.point(i, dtype)
        new = v_step(old, i, s, h, keys)
        if masked:
            new = jax.tree.map(lambda a, o: jnp.where(i < n_steps, a, o), new, old)
        return {**new, "block": j}, None

    def one_frame(c, i0):
        c, _ = jax.lax.scan(one_step, c, i0 + jnp.arange(save_every))
        return c, c["x"]

    @jax.jit
    def run_frames(c, start):
        starts = start + save_every * jnp.arange(frames_per_run)
        return jax.lax.scan(one_frame, c, starts)

    @jax.jit
    def init(block_ids):
        c = v_init(jax.vmap(lambda jj: jax.random.fold_in(k_init, jj))(block_ids))
        return {**c, "block": block_ids}

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps * nb, desc=desc, unit="block-step", leave=False)
    xs, all_frames, tjf = [], [], []
    t0 = time.perf_counter()
    with unrolled_threefry():
        init_c = init.lower(jnp.arange(per_chunk)).compile()
        compiled = run_frames.lower(init_c(jnp.arange(per_chunk)), jnp.int32(0)).compile()
    compile_s = time.perf_counter() - t0
    for j0 in range(j_first, j_end, per_chunk):
        ids = jnp.arange(j0, j0 + per_chunk)  # the last chunk may run past j_end: dropped
        carry = init_c(ids)
        frames = [carry["x"][None]]
        for start in range(0, n_steps, run_len):
            carry, fx = compiled(carry, jnp.int32(start))
            if keep:
                frames.append(fx)
            if bar is not None:
                jax.block_until_ready(carry["x"])
                bar.update(min(run_len, n_steps - start) * min(per_chunk, j_end - j0))
        xs.append(carry["x"])
        if keep:
            all_frames.append(jnp.concatenate(frames, 0))
        if "tjf" in carry:
            tjf.append(carry["tjf"])
    if bar is not None:
        bar.close()
    d = xs[0].shape[-2]
    # carries are particles last, (blocks, d, B): back to (particles, d)
    x = jnp.concatenate([jnp.swapaxes(a, -1, -2).reshape(-1, d) for a in xs])[:n_here]
    x = jax.block_until_ready(x)
    frames = times = None
    if keep:
        frames = jnp.concatenate(
            [jnp.swapaxes(f, -1, -2).reshape(f.shape[0], -1, d) for f in all_frames], 1
        )[:, :n_here]
        n_frames = min(n_steps // save_every, frames.shape[0] - 1)
        frames = np.asarray(frames[: n_frames + 1])
        times = grid.s[np.arange(n_frames + 1) * save_every]
    tjf_mean = None
    if tjf:
        w = np.clip(n - b * np.arange(j_first, j_end), 0, b)
        tjf_mean = float(np.sum(np.concatenate([np.asarray(t) for t in tjf])[:nb] * w)
                         / n_here)
    return Run(x, frames, times, tjf_mean, compile_s, time.perf_counter() - t0 - compile_s)
