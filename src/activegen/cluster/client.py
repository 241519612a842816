"""Dask clusters for the CLI and the experiments (docs/distributed.md).

`connect(workers=N)` starts a local cluster of N worker processes (one thread each, each
pinned to its share of the cores, XLA's Eigen thread pool off; N at most the cores this
process may use) for one command; `connect(scheduler=ADDRESS)` joins an existing Dask
scheduler (`dask scheduler` / `dask worker`, dask-jobqueue), fails within `timeout`
seconds when it cannot be reached (default CONNECT_TIMEOUT) and within
`worker_timeout()` seconds when it has no worker. Distributed's own log lines are kept
off stderr (its shutdown chatter; the failures it reports reach the caller as exceptions,
`cluster.workers.cluster_failure` turns those into one line). `map_cells` runs an experiment's cells as
tasks and returns their results in order. The ensemble itself is distributed by
`sample(..., client=...)` (`samplers/cluster.py`); the workers' set-up is `cluster.workers`.
"""

from __future__ import annotations

import contextlib
import logging
import os

from ..errors import ActivegenError, check_count
from .workers import RETRIES, SHARE_ENV, cluster_failure, setup_client

#: Seconds to wait for a scheduler before giving up.
CONNECT_TIMEOUT = 5.0
#: Seconds to wait for a scheduler's first worker (ACTIVEGEN_WORKER_TIMEOUT overrides).
WORKER_TIMEOUT = 30.0
#: The loggers kept quiet while a cluster is in use (and closed).
QUIET_LOGGERS = ("distributed", "tornado", "asyncio", "bokeh")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def check_workers(workers) -> int:
    """A local cluster's worker count: 1 ≤ N ≤ the available cores (more processes than
    cores only contend: 64 workers on 2 cores did not finish a 5-second run in 240 s)."""
    n = check_count("--workers", workers)
    cores = available_cores()
    if n > cores:
        raise ActivegenError(f"--workers must be between 1 and {cores} (the cores this "
                             f"process may use), got {n}")
    return n


def worker_timeout() -> float:
    """Seconds to wait for a scheduler's first worker: ACTIVEGEN_WORKER_TIMEOUT or
    WORKER_TIMEOUT."""
    env = os.environ.get("ACTIVEGEN_WORKER_TIMEOUT")
    if not env:
        return WORKER_TIMEOUT
    try:
        t = float(env)
    except ValueError:
        t = -1.0
    if not t > 0 or t == float("inf"):
        raise ActivegenError(f"ACTIVEGEN_WORKER_TIMEOUT must be a number of seconds > 0, "
                             f"got {env!r}")
    return t


@contextlib.contextmanager
def quiet_logs(level: int = logging.CRITICAL):
    """Raise the level of distributed's (and its event loop's) loggers for the block
    (those Dask's configuration gives a level of their own too, e.g. distributed.client)."""
    names = set(QUIET_LOGGERS) | {
        name for name, lg in logging.root.manager.loggerDict.items()
        if isinstance(lg, logging.Logger) and name.split(".")[0] in QUIET_LOGGERS}
    loggers = [logging.getLogger(name) for name in sorted(names)]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, old):
            lg.setLevel(lv)


def worker_env(n_workers: int) -> dict:
    """Environment of a local cluster's worker processes: one intra-op thread pool per
    worker sized to its cores (affinity: `cluster.workers`), no nested BLAS threads."""
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
        n = check_workers(workers)
        with quiet_logs(), LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                env=worker_env(n), silence_logs=logging.CRITICAL) as cluster, \
                Client(cluster) as client, _lost_cluster_is_one_line():
            setup_client(client)
            yield client
        return
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    wait = worker_timeout()
    with quiet_logs():
        try:
            client = Client(scheduler, timeout=f"{timeout}s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ActivegenError(
                f"cannot reach the Dask scheduler at {scheduler!r} within {timeout:g} s "
                f"({type(exc).__name__})") from None
        with client:
            try:
                client.wait_for_workers(1, timeout=wait)
            except TimeoutError:
                raise ActivegenError(
                    f"the Dask scheduler at {scheduler!r} has no workers (waited {wait:g} s; "
                    "ACTIVEGEN_WORKER_TIMEOUT sets the wait): start some with `dask worker "
                    f"{scheduler}`") from None
            except OSError as exc:
                raise cluster_failure(exc) from None
            with _lost_cluster_is_one_line(any_oserror=True):
                setup_client(client)
            with _lost_cluster_is_one_line():
                yield client


@contextlib.contextmanager
def _lost_cluster_is_one_line(any_oserror: bool = False):
    """The cluster failing under the block (the scheduler killed, a connection closed, a
    task's workers all lost) as one ActivegenError line; any_oserror: every OSError is the
    cluster's (a block that only talks to it)."""
    try:
        yield
    except Exception as exc:
        lost = cluster_failure(exc, any_oserror=any_oserror)
        if lost is None:
            raise
        raise lost from exc


def map_cells(client, fn, cells, *, retries: int = RETRIES, name: str = "cell"):
    """[fn(*cell) for cell in cells] as tasks on `client`, in order (rerun on faults)."""
    import uuid

    setup_client(client)
    token = uuid.uuid4().hex[:8]
    futures = [client.submit(fn, *c, key=f"activegen-{name}-{token}-{i}", retries=retries)
               for i, c in enumerate(cells)]
    return client.gather(futures)
