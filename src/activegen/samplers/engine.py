"""The fixed-step engine: jit-compiled loops over an explicit step grid.

A method is a *stepper*, a pair of pure functions (as an optax transformation is):

    init(key, n) -> carry          a dict with "x" of shape (d, n) (particles last), and
                                   optionally "tjf" (the validity diagnostic's running max)
                                   and "extras", a dict of per-particle (n,) arrays that
                                   the run returns beside x (e.g. energetics accumulators)
    step(carry, i, s, h, key) -> carry    step i from reverse time s to s + h

The engine knows nothing of physics. It cuts the ensemble into blocks of ≤ BLOCK particles
(block j at step i draws from fold_in(fold_in(k_run, i), j)) and advances them in groups of
LANES blocks, init and step vmapped over a group's lanes (`programs`). A run is two compiled
programs: init, and a *segment* that runs `count` times `every` steps from step `start`
(a fori_loop of fori_loops; the three are arguments, x after each run of `every` steps kept
as a trajectory frame). A chunk of groups is held at a time (memory O(chunk)). The compiled
programs (lanes, block size, frames per call) are set by n, the block size, the grid and
save_every alone (`lane_chunks`), never by the chunks or the block range being run: XLA
compiles a program vmapped over a different number of blocks differently (its rounding
differs in the last bits), so this is what makes a block's particles the same bits in any
chunk, block range or cluster task (docs/distributed.md).

Segments are sized by measured time (`SegmentClock`): the first is one step, each next one
aims at SEGMENT_S = 0.25 s of the measured step time (at most GROWTH times the last), more
only where the measured overhead of a call (dispatch and the host's wait, ~0.01–0.5 ms on
the CPU) would take over OVERHEAD_SHARE = 1 % of it. The engine waits for each segment
before starting the next: Ctrl-C (KeyboardInterrupt) takes effect between two, within about
SEGMENT_S (docs/robustness.md), and a run of any length pays ≈ the overhead over 0.25 s
(< 1 %) for it; since the sizes are arguments of one program, they never change the
samples. The progress bar counts time steps of the whole ensemble (n_steps in all) and says
"compiling" until the programs are built. `check_size`
refuses, before any work, a run whose steps or memory exceed the limits.
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
#: Seconds a compiled segment aims at (`SegmentClock`): Ctrl-C is honoured between
#: segments, so within about this (at most 4× it where the overhead asks for longer ones).
SEGMENT_S = 0.25
#: Largest share of a segment's time its fixed cost (dispatch and the host's wait) may take.
OVERHEAD_SHARE = 0.01
#: A segment is at most this many times the steps of the one before (the first: one step).
GROWTH = 8
#: Bytes of trajectory one compiled segment holds (frames of one group of lanes).
FRAME_BYTES = 2**25
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

    x: np.ndarray
    frames: np.ndarray | None
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


def frames_per_call(n_frames: int, work: int, d: int, itemsize: int) -> int:
    """Frames a compiled segment can hold (its static buffer): at most FRAME_BYTES of
    trajectory for one group of lanes (work: its particles), at least one."""
    return max(1, min(n_frames, FRAME_BYTES // max(1, work * d * itemsize)))


class SegmentClock:
    """Sizes the segments by measured time (module doc): `overhead` is the measured cost of
    a call that runs no step (dispatch and the host waiting for it); a segment aims at
    `target` = max(SEGMENT_S, overhead/OVERHEAD_SHARE) capped at 4·SEGMENT_S (Ctrl-C) seconds,
    starting at one step and growing at most GROWTH-fold per segment as the measured step
    time allows. The sizes never change the samples: every segment runs the same compiled
    program, its step count an argument."""

    def __init__(self, overhead: float):
        self.overhead = overhead
        self.target = min(4 * SEGMENT_S, max(SEGMENT_S, overhead / OVERHEAD_SHARE))
        self.steps = 1
        self.step_s = None

    def record(self, steps: int, seconds: float) -> None:
        """A segment of `steps` steps of one group took `seconds` (dispatch and wait)."""
        if steps <= 0:
            return
        per = max(seconds, 1e-9) / steps  # the overhead included: errs on shorter segments
        # the slower of the last two (a quick segment after a slow one is not trusted)
        self.step_s = per if self.step_s is None else max(per, 0.5 * (per + self.step_s))
        want = max(1, int(self.target / self.step_s))
        self.steps = max(1, min(want, GROWTH * max(self.steps, steps)))


def next_segment(pos: int, n_steps: int, steps: int, save_every, n_buf: int):
    """(every, count, frames kept) of the segment from step pos: about `steps` steps
    (`SegmentClock.steps`), in `count` runs of `every` steps. Without a trajectory
    (save_every None) one run; with one, whole frames of save_every steps (≤ n_buf per
    call, all kept) from a frame boundary, else a piece of a frame, kept (1) only if it ends
    the frame, so that frames stay at the multiples of save_every."""
    steps = max(1, min(steps, n_steps - pos))
    if save_every is None:
        return steps, 1, 0
    whole = min(steps // save_every, n_buf, (n_steps - pos) // save_every)
    if pos % save_every == 0 and whole > 0:
        return save_every, whole, whole
    every = min(steps, save_every - pos % save_every, n_steps - pos)
    return every, 1, int((pos + every) % save_every == 0)


def measure_overhead(call, repeat: int = 3) -> float:
    """The smallest wall time of `call()` (a compiled segment of no step) and its wait."""
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        best = min(best, time.perf_counter() - t0)
    return best


def programs(stepper: Stepper, grid: StepGrid, key, n: int, b: int, lanes: int, dtype,
             save_every=None):
    """(init, segment, n_buf): the two compiled programs of a run of n particles in blocks of
    b, `lanes` blocks side by side. init(block_ids, key) -> carry of those blocks;
    segment(carry, key, start, every, count) -> (carry, frames): `count` runs of `every`
    steps from step `start` (the three are arguments: one program for every segment size),
    x after each in a buffer of n_buf frames (None without save_every). Block j at step i
    draws from fold_in(fold_in(k_run, i), j), k_init, k_run = split(key)."""
    keep = save_every is not None
    n_steps = grid.n_steps
    v_init = jax.vmap(lambda k: stepper.init(k, b))
    v_step = jax.vmap(stepper.step, in_axes=(0, None, None, None, 0))

    def one_step(i, c):
        j, kr = c["block"], c["key"]
        keys = jax.vmap(lambda jj: jax.random.fold_in(jax.random.fold_in(kr, i), jj))(j)
        old = {k: v for k, v in c.items() if k not in ("block", "key")}
        s, h = grid.point(i, dtype)
        return {**v_step(old, i, s, h, keys), "block": j, "key": kr}

    def segment(c, key, start, every, count, n_buf):
        """`count` runs of `every` steps from step `start` (all three traced: one program
        for every segment size), x after each kept in a buffer of n_buf frames."""
        kr = jax.random.split(key)[1]

        def frame(f, cb):
            c, buf = cb
            i0 = start + f * every
            c = jax.lax.fori_loop(i0, i0 + every, one_step, c)
            return c, (buf if buf is None else buf.at[f].set(c["x"]))

        buf = jnp.zeros((n_buf,) + c["x"].shape, c["x"].dtype) if n_buf else None
        c, buf = jax.lax.fori_loop(0, count, frame, ({**c, "key": kr}, buf))
        return {k: v for k, v in c.items() if k != "key"}, buf

    @jax.jit
    def init(block_ids, key):
        ki = jax.random.split(key)[0]
        c = v_init(jax.vmap(lambda jj: jax.random.fold_in(ki, jj))(block_ids))
        return {**c, "block": block_ids}

    i32 = np.int32
    with unrolled_threefry():
        lowered = init.lower(jax.ShapeDtypeStruct((lanes,), i32), key)
        x_info = lowered.out_info["x"]
        n_buf = frames_per_call(n_steps // save_every, lanes * b, x_info.shape[-2],
                                jnp.dtype(x_info.dtype).itemsize) if keep else 0
        compiled = jax.jit(segment, static_argnums=5).lower(
            lowered.out_info, key, i32(0), i32(0), i32(0), n_buf).compile()
        return lowered.compile(), compiled, n_buf


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
    lanes, _, chunks = lane_chunks(n, block, per_chunk, j_first, j_end)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        # counts time steps of the whole ensemble (n_steps in all); a chunked run advances
        # it by the chunk's share of the ensemble
        bar = tqdm(total=n_steps, desc=f"{desc} (compiling)" if desc else "compiling",
                   unit="step", leave=False)
    xs, all_frames, tjf, extras = [], [], [], []
    t0 = time.perf_counter()
    init_c, compiled, n_buf = programs(stepper, grid, key, n, b, lanes, dtype, save_every)
    i32 = np.int32  # host scalars and ids: no eager JAX op (each compiles a program)
    compile_s = time.perf_counter() - t0
    if bar is not None:
        bar.set_description(desc + (f" ({n_here} particles)" if desc else f"{n_here} particles"))

    def call(c, start, every, count):
        return compiled(c, key, i32(start), i32(every), i32(count))

    clock = None
    block_steps = 0  # steps done × blocks that did them
    for groups in chunks:
        # a chunk: its groups' carries held together, advanced segment by segment
        carries = [init_c(np.asarray(ids, i32), key) for ids, _ in groups]
        if clock is None:
            clock = SegmentClock(measure_overhead(lambda: call(carries[0], 0, 0, 1)[0]["x"]))
        frames = [[np.asarray(c["x"])[None]] for c in carries]
        pos = 0
        while pos < n_steps:
            every, count, kept = next_segment(pos, n_steps, clock.steps,
                                              save_every if keep else None, n_buf)
            spent = 0.0
            for k, (_, r) in enumerate(groups):
                t1 = time.perf_counter()
                carries[k], fx = call(carries[k], pos, every, count)
                jax.block_until_ready(carries[k]["x"])  # one at a time: Ctrl-C between them
                spent += time.perf_counter() - t1
                if kept:  # to the host now: the device buffer holds n_buf frames
                    frames[k].append(np.asarray(fx)[:kept])
                if bar is not None:
                    block_steps += every * count * r
                    bar.update(block_steps // nb - bar.n)
            clock.record(every * count, spent / len(groups))
            pos += every * count
        # the real lanes, in block order, on the host (numpy: no eager JAX op to compile):
        # x (r, d, B), frames (F, r, d, B), tjf (r,), extras (r, B)
        for (_, r), c, f in zip(groups, carries, frames):
            xs.append(np.asarray(c["x"])[:r])
            if keep:
                all_frames.append(np.concatenate(f)[:, :r])
            if "tjf" in c:
                tjf.append(np.asarray(c["tjf"])[:r])
            if "extras" in c:
                extras.append({k: np.asarray(v)[:r] for k, v in c["extras"].items()})
    if bar is not None:
        bar.close()
    d = xs[0].shape[-2]
    # carries are particles last, (lanes, d, B): back to (particles, d)
    x = np.concatenate([np.swapaxes(a, -1, -2).reshape(-1, d) for a in xs])[:n_here]
    frames = times = None
    if keep:
        frames = np.concatenate(
            [np.swapaxes(f, -1, -2).reshape(f.shape[0], -1, d) for f in all_frames], 1
        )[:, :n_here]
        times = grid.s[np.arange(n_steps // save_every + 1) * save_every]
    tjf_mean = None
    if tjf:
        w = np.clip(n - b * np.arange(j_first, j_end), 0, b)
        tjf_mean = float(np.sum(np.concatenate(tjf) * w) / n_here)
    # extras are (blocks, B) per group: flattened in particle order like x
    ex = {k: np.concatenate([e[k].reshape(-1) for e in extras])[:n_here]
          for k in (extras[0] if extras else {})}
    return Run(x, frames, times, tjf_mean, compile_s, time.perf_counter() - t0 - compile_s,
               ex)
