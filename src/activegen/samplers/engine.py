"""The fixed-step engine: one jit + lax.scan over an explicit step grid.

A method is a *stepper*, a pair of pure functions (as an optax transformation is):

    init(key, n) -> carry          a dict with "x" of shape (d, n) (particles last), and
                                   optionally "tjf" (the validity diagnostic's running max)
                                   and "extras", a dict of per-particle (n,) arrays that
                                   the run returns beside x (e.g. energetics accumulators)
    step(carry, i, s, h, key) -> carry    step i from reverse time s to s + h

The engine knows nothing of physics. It cuts the ensemble into blocks of ≤ BLOCK particles
(block j at step i draws from fold_in(fold_in(k_run, i), j)) and advances them in groups of
LANES blocks, init and step vmapped over a group's lanes, with jit-compiled runs of
save_every·m steps (a lax.scan over frames of a lax.scan over steps; steps past the end are
masked), which give the strided trajectory and the progress bar (it counts time steps of the
whole ensemble, n_steps in all, and says "compiling" until the program is built). A chunk of
groups is held at a time (memory O(chunk)). The compiled programs (lanes, segment lengths)
are set by n, the block size, the grid and save_every alone (`lane_chunks`,
`segment_layout`), never by the chunks or the block range being run: XLA compiles a program
vmapped over a different number of blocks differently (its rounding differs in the last
bits), so this is what makes a block's particles the same bits in any chunk, block range or
cluster task (docs/distributed.md). The runs are short in wall time (at least
SEGMENTS of them over the run, and at most SEGMENT_WORK particle-steps each unless one
frame is longer), and the engine waits for each before starting the next: Ctrl-C
(KeyboardInterrupt) takes effect between two runs, within about a second
(docs/robustness.md). `check_size` refuses, before any work, a run whose steps or memory
exceed the limits.
"""

from __future__ import annotations

import math
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._xla import unrolled_threefry
from ..errors import ActivegenError, check_steps, memory_limit

#: Particles are generated in blocks of this many, each with its own random streams.
BLOCK = 16384
#: A run is cut into at least this many compiled segments (fewer only with fewer steps) …
SEGMENTS = 50
#: … of at most this many particle-steps each (~ a second or less), unless a saved frame
#: spans more: Ctrl-C is honoured between segments.
SEGMENT_WORK = 2**26
#: Blocks advanced side by side by one compiled program (vmapped lanes; `lane_chunks`).
#: One lane alone ran 2–3× slower than a vmapped chunk on two cores (XLA splits each
#: small fused loop over its threads), two lanes as fast.
LANES = 2
#: Bytes of working state per particle coordinate and carried array, a generous estimate
#: (x, η, the pre-drawn noise, the score's intermediates) used by `check_size`.
STATE_FACTOR = 16


def run_bytes(n: int, d: int, n_frames: int, itemsize: int, chunk_size: int | None) -> int:
    """An estimate of the bytes a run holds: the working state of one chunk, the frames
    (on the device and copied to the host) and the samples (kept per chunk, concatenated,
    copied). A chunk holds at least one group of min(LANES, blocks) blocks (`lane_chunks`)."""
    b, nb, per_chunk = blocks(n, chunk_size)
    state = b * max(per_chunk, min(LANES, nb)) * d * itemsize * STATE_FACTOR
    out = n * d * itemsize * 3
    frames = n_frames * n * d * itemsize * 2
    return state + out + frames


def check_size(n: int, d: int, n_steps: int, n_frames: int, dtype, chunk_size=None,
               dt=None):
    """Refuse a run over MAX_STEPS steps or over `memory_limit()` bytes (the message names
    the sizes and, where chunking would make it fit, a --chunk-size that does)."""
    check_steps(n_steps, dt)
    d = d or 1
    item = jnp.dtype(dtype).itemsize
    need, limit = run_bytes(n, d, n_frames, item, chunk_size), memory_limit()
    if need <= limit:
        return need
    what = (f"the run needs about {need / 1e9:.3g} GB (n = {n}, d = {d}, "
            f"{n_frames} trajectory frames) > the limit {limit / 1e9:.3g} GB")
    fixed = run_bytes(n, d, n_frames, item, BLOCK) - BLOCK * d * item * STATE_FACTOR
    per = d * item * STATE_FACTOR
    fit = (limit - fixed) // per // BLOCK * BLOCK
    if fit >= BLOCK and (chunk_size is None or fit < chunk_size):
        raise ActivegenError(f"{what}: run it in chunks, e.g. --chunk-size {int(fit)} "
                             "(chunk_size=; same samples)")
    hint = "a larger --save-every or fewer particles" if n_frames > 1 else "fewer particles"
    raise ActivegenError(f"{what}: use {hint} (ACTIVEGEN_MAX_MEMORY raises the limit)")


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
        check_steps(n_steps, t_final / n_steps)
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


def score_log_density(score, t_final: float, dtype):
    """log_density(s, x) -> log p(x, T − s) (N,) of a score model at x (d, N)."""

    def log_density(s, x):
        t = t_final - s
        return batched(score, "derivs", score.prepare(t, dtype), x).log_p

    return log_density


def derivs_at(score, state, xs, order: int = 2):
    """The score derivatives at xs (d, N) for a force needing up to `order` (`forces.Force`):
    a model whose `derivs_batch` takes `order` (`derivs_orders = True`, e.g. a learned one)
    computes only that; any other gives the full set (`batched(score, "derivs", …)`)."""
    fn = getattr(score, "derivs_batch", None)
    if fn is not None and getattr(score, "derivs_orders", False):
        return fn(state, xs, order=order)
    return batched(score, "derivs", state, xs)


def blocks(n: int, chunk_size: int | None, block: int | None = None):
    """(block size B, number of blocks, blocks per chunk): B ≤ block (default BLOCK),
    nB − n < nb."""
    nb = -(-n // (block or BLOCK))
    b = -(-n // nb)
    per_chunk = nb if chunk_size is None else max(1, min(nb, chunk_size // b))
    return b, nb, per_chunk


class Run(NamedTuple):
    """x (n, d); frames (F, n, d) or None with their reverse times; the block-weighted mean
    of the carries' "tjf" (None if the stepper keeps none); compile and run seconds;
    extras: the carries' "extras" as (n,) arrays, gathered like x ({} if none)."""

    x: jax.Array
    frames: jax.Array | None
    times: np.ndarray | None
    tjf: float | None
    compile_s: float
    run_s: float
    extras: dict = {}


def block_range(n: int, chunk_size, block, first_block: int, n_blocks):
    """(B, blocks per chunk, j0, j1, particles in blocks [j0, j1)) of the ensemble of n
    particles cut into blocks of ≤ block (default BLOCK): a range of whole blocks, with the
    keys and the block size of the whole run (a cluster task runs one)."""
    b, nb, per_chunk = blocks(n, chunk_size, block)
    j1 = nb if n_blocks is None else first_block + n_blocks
    if not 0 <= first_block < j1 <= nb:
        raise ActivegenError(f"block range [{first_block}, {j1}) is not within [0, {nb})")
    return b, min(per_chunk, j1 - first_block), first_block, j1, min(n, b * j1) - b * first_block


def lane_chunks(n: int, block, per_chunk: int, j_first: int, j_end: int):
    """(lanes L, the whole run's number of groups, chunks) for blocks [j_first, j_end) of
    the n-particle run: L = min(LANES, the run's number of blocks), set by n and the block
    size alone; a chunk is per_chunk blocks rounded down to whole groups of L (at least
    one), a list of (the group's L block ids, how many of them are real): a group short of
    L blocks (at the end of a range or chunk) repeats its last block in its other lanes
    (computed, dropped)."""
    _, nb, _ = blocks(n, None, block)
    lanes = min(LANES, nb)
    size = max(1, per_chunk // lanes) * lanes
    chunks = []
    for c0 in range(j_first, j_end, size):
        groups = []
        for a in range(c0, min(c0 + size, j_end), lanes):
            ids = list(range(a, min(a + lanes, c0 + size, j_end)))
            groups.append((ids + ids[-1:] * (lanes - len(ids)), len(ids)))
        chunks.append(groups)
    return lanes, -(-nb // lanes), chunks


def segment_layout(n_steps: int, work: int, n_groups: int,
                   save_every=None) -> tuple[int, int]:
    """(steps per frame, frames per segment) of the compiled segment that advances one
    group of lanes (work: its particles): at least SEGMENTS segments over the n_groups
    groups of the whole run (fewer only with fewer steps), each of at most SEGMENT_WORK
    particle-steps unless one frame (save_every steps) is longer. Set by the run (n, block
    size, grid, save_every) alone, never by how it is cut into chunks or block ranges."""
    n_runs = max(-(-min(SEGMENTS, n_steps) // n_groups),
                 math.ceil(n_steps * work / SEGMENT_WORK))
    # without a trajectory a "frame" is one segment (its x is not kept)
    save_every = save_every or math.ceil(n_steps / n_runs)
    return save_every, max(1, math.ceil(n_steps / (save_every * n_runs)))


def run(stepper: Stepper, grid: StepGrid, key, n: int, *, dtype, save_every=None,
        progress: bool = False, desc: str = "", chunk_size: int | None = None,
        block: int | None = None, first_block: int = 0, n_blocks: int | None = None) -> Run:
    """Integrate n particles over `grid` with `stepper` (module doc). block: the block size
    (default BLOCK); first_block, n_blocks: run only blocks [first_block, first_block +
    n_blocks) of the n-particle run (default all): x holds their particles."""
    keep = save_every is not None
    n_steps = grid.n_steps
    b, per_chunk, j_first, j_end, n_here = block_range(n, chunk_size, block, first_block,
                                                       n_blocks)
    nb = j_end - j_first
    lanes, n_groups, chunks = lane_chunks(n, block, per_chunk, j_first, j_end)
    k_init, k_run = jax.random.split(key)
    save_every, frames_per_run = segment_layout(n_steps, lanes * b, n_groups, save_every)
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

        # counts time steps of the whole ensemble (n_steps in all); a chunked run advances
        # it by the chunk's share of the ensemble
        bar = tqdm(total=n_steps, desc=f"{desc} (compiling)" if desc else "compiling",
                   unit="step", leave=False)
    xs, all_frames, tjf, extras = [], [], [], []
    t0 = time.perf_counter()
    with unrolled_threefry():
        lowered = init.lower(jnp.zeros(lanes, jnp.int32))
        init_c = lowered.compile()
        compiled = run_frames.lower(lowered.out_info, jnp.int32(0)).compile()
    compile_s = time.perf_counter() - t0
    if bar is not None:
        bar.set_description(desc + (f" ({n_here} particles)" if desc else f"{n_here} particles"))
    block_steps = 0  # steps done × blocks that did them
    for groups in chunks:
        # a chunk: its groups' carries held together, advanced segment by segment
        carries = [init_c(jnp.asarray(ids, jnp.int32)) for ids, _ in groups]
        frames = [[c["x"][None]] for c in carries]
        for start in range(0, n_steps, run_len):
            for k, (_, r) in enumerate(groups):
                carries[k], fx = compiled(carries[k], jnp.int32(start))
                if keep:
                    frames[k].append(fx)
                jax.block_until_ready(carries[k]["x"])  # one at a time: Ctrl-C between them
                if bar is not None:
                    block_steps += min(run_len, n_steps - start) * r
                    bar.update(block_steps // nb - bar.n)
        # the real lanes, in block order: x (r, d, B), frames (F, r, d, B), tjf (r,),
        # extras (r, B)
        for (_, r), c, f in zip(groups, carries, frames):
            xs.append(c["x"][:r])
            if keep:
                all_frames.append(jnp.concatenate(f, 0)[:, :r])
            if "tjf" in c:
                tjf.append(c["tjf"][:r])
            if "extras" in c:
                extras.append({k: v[:r] for k, v in c["extras"].items()})
    if bar is not None:
        bar.close()
    d = xs[0].shape[-2]
    # carries are particles last, (lanes, d, B): back to (particles, d)
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
        tjf_mean = float(np.sum(np.concatenate([np.asarray(t) for t in tjf]) * w) / n_here)
    # extras are (blocks, B) per group: flattened in particle order like x
    ex = {k: np.concatenate([np.asarray(e[k]).reshape(-1) for e in extras])[:n_here]
          for k in (extras[0] if extras else {})}
    return Run(x, frames, times, tjf_mean, compile_s, time.perf_counter() - t0 - compile_s,
               ex)
