"""Ensembles on a Dask cluster: contiguous ranges of blocks as tasks (docs/distributed.md).

An ensemble is a stack of blocks with their own random streams (`engine`: block j draws from
fold_in(key, j)), so blocks [j0, j1) can run anywhere. `sample(..., client=...)` validates
and builds the plan here (errors and warnings stay on the client), then ships the sampling
inputs (target, method, process, options: picklable) with each task; a worker rebuilds the
plan and runs `sample(..., blocks=(j0, j1 − j0))`; the client gathers the parts in block
order, which are the samples of the one-process run. With `shards` the workers write one
samples file per task (written atomically, named by the run's token and its block range: a
task rerun after a fault rewrites the same file) and the client writes the index last, which
switches the directory to the new run; only then are the shards of an earlier run removed,
so a failed or interrupted run leaves the earlier one readable (`files.read_shard_index`
validates an index on reading).

The workers' set-up (JAX settings, core shares) is `cluster.workers`.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from pathlib import Path

import numpy as np

from .. import files
from ..cluster.workers import RETRIES, cluster_failure, configure_worker, jax_settings, setup_client
from ..errors import ActivegenError
from .engine import blocks as block_layout
from .validity import warn_coarse_step, warn_first_order

#: The shard directory's index (written last: a directory without it holds no finished run).
INDEX = "index.json"  # = files.INDEX


def pack_key(key):
    """A PRNG key as plain numpy (typed keys: their implementation's name and data)."""
    import jax

    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return ("typed", str(jax.random.key_impl(key)), np.asarray(jax.random.key_data(key)))
    return ("raw", None, np.asarray(key))


def unpack_key(packed):
    import jax

    kind, impl, data = packed
    if kind == "typed":
        return jax.random.wrap_key_data(data, impl=impl)
    return data


def task_ranges(nb: int, per_task: int) -> list[tuple[int, int]]:
    """Contiguous (first block, number of blocks) of ≤ per_task blocks covering [0, nb)."""
    return [(j0, min(per_task, nb - j0)) for j0 in range(0, nb, per_task)]


def shard_name(first: int, count: int, token: str | None = None) -> str:
    """The shard file of blocks [first, first + count) of the run `token`."""
    run = f"{token}-" if token else ""
    return f"shard-{run}{first:06d}-{first + count:06d}.npz"


def run_task(sample_fn, job: dict, first: int, count: int, settings: dict, shard=None):
    """A task on a worker: blocks [first, first + count) of the job's run (module doc);
    with `shard` (a path) writes them there and returns the Sampled without arrays."""
    configure_worker(settings)
    job = dict(job)
    key = unpack_key(job.pop("key"))
    options = job.pop("options")
    meta = job.pop("meta", {})
    seed = job.pop("seed", None)
    res = sample_fn(**job, key=key, blocks=(first, count), progress=False, warn=False,
                    **options)
    if shard is None:
        return res
    files.save_samples(shard, res, seed=seed, **meta)
    return res._replace(samples=None, trajectory=None,
                        info={**res.info, "shard_n": int(res.samples.shape[0])})


def _method_ref(spec):
    """The method by name where workers have it registered (the built-in ones), else the
    Method itself (pickled with its build function)."""
    module = getattr(spec.build, "__module__", "") or ""
    return spec.name if module.startswith("activegen.") else spec


def _prepare_shards(path) -> Path:
    """The shard directory, absolute (workers resolve a relative path in their own working
    directory), created and writable; an earlier run there is left as it is until the new
    index replaces it (`_commit_shards`)."""
    out = Path(path).absolute()
    if out.exists() and not out.is_dir():
        raise ActivegenError(f"shards must be a directory, got the file {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ActivegenError(f"cannot create the shard directory {out}: "
                             f"{exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ActivegenError(f"the shard directory {out} is not writable")
    return out


def _drop(paths) -> None:
    for f in paths:
        try:
            Path(f).unlink(missing_ok=True)
        except OSError:
            pass


def _commit_shards(out: Path, index: dict, mine: list[str]) -> None:
    """Write the index atomically (the switch to the new run), then remove what the
    directory holds besides it and the new shards: an earlier run's shards and the
    leftovers of interrupted runs (shards and temporary files)."""
    try:
        with files.atomic_path(out / INDEX) as tmp:
            tmp.write_text(json.dumps(index, indent=2))
            files.release_pending(mine)  # from here a Ctrl-C keeps the new shards
    except BaseException:  # not switched (os.replace is the last step): the earlier run stays
        files.release_pending(mine)
        _drop(mine)
        raise
    keep = {s["file"] for s in index["shards"]}
    _drop(f for pat in ("shard-*.npz", ".shard-*.npz") for f in out.glob(pat)
          if f.name not in keep)


def _merge_info(parts, counts, n: int, wall_s: float, n_tasks: int, n_workers: int) -> dict:
    info = dict(parts[0].info)
    for k in ("compile_s", "run_s"):
        if k in info:
            info[k] = float(sum(p.info.get(k, 0.0) for p in parts))
    if "ode_steps" in info:
        info["ode_steps"] = max(p.info["ode_steps"] for p in parts)
    if "tau_grad_force" in info:
        info["tau_grad_force"] = float(
            sum(p.info["tau_grad_force"] * c for p, c in zip(parts, counts)) / n)
    info.pop("shard_n", None)
    info.update(n=n, wall_s=wall_s, tasks=n_tasks, workers=n_workers)
    return info


def sample_on_cluster(client, sample_fn, job: dict, spec, plan, req, *, progress: bool,
                      warn: bool, task_blocks=None, retries: int = RETRIES, shards=None,
                      seed=None):
    """`sample(..., client=...)` (module doc): job holds `sample`'s arguments, spec, plan
    and req the client's validated request and built plan."""
    if client is None:
        raise ActivegenError("shards need a Dask client (client=, or --workers / --scheduler)")
    from distributed import as_completed

    t0 = time.perf_counter()
    if warn and plan.tau_steps is not None and plan.grid is not None:
        warn_coarse_step(plan.grid.steps if not plan.grid.uniform else plan.grid.h,
                         plan.tau_steps, stacklevel=4)
    b, nb, _ = block_layout(req.n, None, job["block_size"])
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    per = int(task_blocks) if task_blocks else max(1, math.ceil(nb / (2 * n_workers)))
    if per < 1:
        raise ActivegenError(f"task_blocks must be >= 1, got {task_blocks}")
    ranges = task_ranges(nb, per)
    counts = [min(req.n, b * (j0 + c)) - b * j0 for j0, c in ranges]
    meta = {}
    if hasattr(req.target, "to_dict"):
        meta["target"] = json.dumps(req.target.to_dict())
    packed = {**job, "method": _method_ref(spec), "key": pack_key(job["key"]), "meta": meta,
              "seed": files.seed_entry(seed)}
    setup_client(client)
    settings = jax_settings()
    out = None if shards is None else _prepare_shards(shards)
    token = uuid.uuid4().hex[:8]
    names = [shard_name(j0, c, token) for j0, c in ranges]
    mine = [] if out is None else [str(out / f) for f in names]
    files.track_pending(mine)  # removed on Ctrl-C (`files.discard_pending`) until committed
    futures = []
    try:
        futures = [
            client.submit(run_task, sample_fn, packed, j0, c, settings,
                          None if out is None else str(out / f),
                          key=f"activegen-{spec.name}-{token}-{j0}", retries=retries)
            for (j0, c), f in zip(ranges, names)
        ]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            steps = plan.grid.n_steps if plan.grid is not None else 1
            bar = tqdm(total=steps * nb, desc=spec.name, leave=False,
                       unit="block-step" if plan.grid is not None else "block")
            size = {f.key: c * steps for f, (_, c) in zip(futures, ranges)}
            for f in as_completed(futures):
                bar.update(size[f.key])
            bar.close()
        parts = client.gather(futures)
        info = _merge_info(parts, counts, req.n, time.perf_counter() - t0, len(ranges),
                           n_workers)
        tjf = info.get("tau_grad_force")
        if warn and spec.first_order and tjf is not None:
            warn_first_order(tjf, diagnostic=plan.diagnostic, remedy=plan.remedy,
                             stacklevel=4)
    except BaseException as exc:  # a failed or interrupted run: drop its shards
        if futures:
            try:
                client.cancel(futures)
            except Exception:  # noqa: BLE001 - the cluster may be gone
                pass
        files.release_pending(mine)
        _drop(mine)
        lost = cluster_failure(exc, out)
        if lost is not None:
            raise lost from exc
        raise
    sampled = type(parts[0])
    if out is not None:
        index = {"format": "activegen-shards/1", "n": req.n, "d": req.dim, "block_size": b,
                 "seed": files.seed_entry(seed),
                 "shards": [{"file": f, "first_block": j0, "n_blocks": c, "n": k}
                            for (j0, c), k, f in zip(ranges, counts, names)],
                 "info": info, **meta}
        _commit_shards(out, index, mine)
        info = {**info, "shards": str(out / INDEX)}
        return sampled(None, None, None, info)
    x = np.concatenate([p.samples for p in parts])
    traj = None
    if parts[0].trajectory is not None:
        traj = np.concatenate([np.asarray(p.trajectory) for p in parts], 1)
    return sampled(x, traj, parts[0].times, info)
