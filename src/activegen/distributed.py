"""Dask clusters for the CLI and the experiments (docs/distributed.md).

`connect(workers=N)` starts a local cluster of N worker processes (one thread each, each
pinned to its share of the cores, XLA's Eigen thread pool off) for one command;
`connect(scheduler=ADDRESS)` joins an existing Dask scheduler (`dask scheduler` /
`dask worker`, dask-jobqueue) and fails within `timeout` seconds when it cannot be
reached (default CONNECT_TIMEOUT). `map_cells` runs an experiment's cells as tasks and returns their results in
order. The ensemble itself is distributed by `sample(..., client=...)`
(`samplers/cluster.py`).
"""

from __future__ import annotations

import contextlib
import os

from .errors import ActivegenError, check_count
from .samplers.cluster import RETRIES, SHARE_ENV, setup_client

#: Seconds to wait for a scheduler before giving up.
CONNECT_TIMEOUT = 5.0


def worker_env(n_workers: int) -> dict:
    """Environment of a local cluster's worker processes: one intra-op thread pool per
    worker sized to its cores (affinity: `samplers.cluster`), no nested BLAS threads."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    per = max(1, (cores or 1) // n_workers)
    flags = os.environ.get("XLA_FLAGS", "")
    if per == 1 and "xla_cpu_multi_thread_eigen" not in flags:
        flags = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
    env = {SHARE_ENV: str(n_workers), "XLA_FLAGS": flags}
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[v] = str(per)
    return env


@contextlib.contextmanager
def connect(workers: int | None = None, scheduler: str | None = None,
            timeout: float | None = None):
    """A `dask.distributed.Client` for one command (closed after it): a local cluster of
    `workers` processes, or the scheduler at `scheduler`; neither: yields None."""
    if workers is not None and scheduler is not None:
        raise ActivegenError("give --workers or --scheduler, not both")
    if workers is None and scheduler is None:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - a dependency
        raise ActivegenError("a Dask cluster needs the 'distributed' package") from None
    if workers is not None:
        n = check_count("--workers", workers)
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          dashboard_address=":0", env=worker_env(n)) as cluster, \
                Client(cluster) as client:
            setup_client(client)
            yield client
        return
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    try:
        client = Client(scheduler, timeout=f"{timeout}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ActivegenError(
            f"cannot reach the Dask scheduler at {scheduler!r} within {timeout:g} s "
            f"({type(exc).__name__})") from None
    with client:
        setup_client(client)
        yield client


def map_cells(client, fn, cells, *, retries: int = RETRIES, name: str = "cell"):
    """[fn(*cell) for cell in cells] as tasks on `client`, in order (rerun on faults)."""
    import uuid

    setup_client(client)
    token = uuid.uuid4().hex[:8]
    futures = [client.submit(fn, *c, key=f"activegen-{name}-{token}-{i}", retries=retries)
               for i, c in enumerate(cells)]
    return client.gather(futures)
