"""A sample does not depend on how its ensemble is partitioned (docs/distributed.md): for
every method in the registry, one seed and block size give the same bytes (samples and
trajectory) for any chunk_size and any cut of the blocks into ranges (`blocks=`, what a
cluster task runs), the pieces put back in block order.

Kept cheap: 3 blocks of ≤ 50 particles, T = 0.3, two partitions per method and a
fresh persistent compilation cache for the module: the pieces run the one-piece run's
compiled programs (that is the point), so they read them from the cache (ode's diffrax
solve is not cacheable: compiled each run, hence its single piece)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activegen import ActiveOU, sample
from activegen.samplers import get_method, method_names
from activegen.samplers.engine import blocks as block_layout
from activegen.physics.targets import default_target_1d

N, BLOCK = 130, 50
B, NB, _ = block_layout(N, None, BLOCK)  # 3 blocks of 44 particles (the last: 42)
KW = dict(seed=11, t_final=0.3, block_size=BLOCK, warn=False)
PROC = ActiveOU(1.0, 0.05, 1.0, 0.1)
#: every registered method once ("refined" is an alias of fox-sc)
METHODS = method_names(aliases=False)


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    import jax

    old = (jax.config.jax_compilation_cache_dir,
           jax.config.jax_persistent_cache_min_compile_time_secs)
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    try:
        yield
    finally:
        jax.config.update("jax_compilation_cache_dir", old[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])


def _run(method, **kw):
    # ode: no trajectory (its frames come from the same solve; it compiles slowly)
    return sample(default_target_1d(), method, PROC, N, **KW, **kw,
                  save_every=None if method == "ode" else 5)


@functools.lru_cache
def _one_piece(method):
    return _run(method)


@st.composite
def partitions(draw):
    """Two or more contiguous block ranges covering [0, NB), each run in chunks of k blocks
    (None: one chunk). The simplest, [(0, 1, 1), (1, 2, 1)], moves block 1 from the second
    lane of the one-piece run's group (0, 1) to the first of (1, 2), block 2 from a group
    of its own to the second lane, and runs block 0 alone."""
    cuts = sorted(draw(st.sets(st.integers(1, NB - 1), min_size=1)))
    bounds = [0, *cuts, NB]
    return [(j0, j1 - j0, draw(st.sampled_from([1, None, 2])))
            for j0, j1 in zip(bounds, bounds[1:])]


def _check(method, parts):
    """Each piece is its blocks' slice of the one-piece run, bytes and dtype; pieces that
    cover the ensemble are the one-piece run put together."""
    one = _one_piece(method)
    pieces = []
    for j0, count, k in parts:
        res = _run(method, blocks=(j0, count), chunk_size=None if k is None else k * B)
        lo, hi = j0 * B, min(N, (j0 + count) * B)
        assert res.samples.dtype == one.samples.dtype
        assert res.samples.tobytes() == one.samples[lo:hi].tobytes(), (j0, count, k)
        if one.trajectory is not None:
            assert res.trajectory.tobytes() == one.trajectory[:, lo:hi].tobytes(), (j0, k)
        pieces.append(res)
    if sum(c for _, c, _ in parts) == NB:
        x = np.concatenate([p.samples for p in pieces])
        assert x.shape == one.samples.shape and x.tobytes() == one.samples.tobytes()
        if one.trajectory is not None:
            traj = np.concatenate([p.trajectory for p in pieces], 1)
            assert traj.shape == one.trajectory.shape
            assert traj.tobytes() == one.trajectory.tobytes()


@pytest.mark.parametrize("method", [m for m in METHODS if m != "ode"])
@settings(max_examples=2, deadline=None)  # the simplest partition and one drawn
@given(parts=partitions())
def test_any_partition_gives_the_same_bytes(method, parts):
    _check(method, parts)


def test_ode_block_range_gives_the_same_bytes():
    """ode solves each block with an adaptive step of its own (diffrax, vmapped over the
    engine's lanes; not cacheable, so one piece only): blocks 1 and 2 in one chunk of a
    block (one group of two lanes), against the one-piece run (groups (0, 1) and (2, 2))."""
    _check("ode", [(1, 2, 1)])


def test_every_registered_method_is_covered():
    assert {get_method(m).name for m in method_names()} == set(METHODS)
    assert get_method("refined").name == "fox-sc" and "fox-sc" in METHODS
