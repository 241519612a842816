"""The workers of a Dask cluster: each gets the client's JAX settings (x64, the persistent
compilation cache) and, on a local cluster (ACTIVEGEN_WORKER_SHARE = number of workers on the
machine), its share of the cores (CPU affinity, so that XLA sizes its thread pool to it), by a
worker plugin that `setup_client` registers; `cluster_failure` turns a cluster failing under a
run into one line (docs/distributed.md)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ActivegenError

#: Reruns of a failed task (a lost worker's tasks are rescheduled by Dask in any case).
RETRIES = 3

#: Environment variable of a local cluster's workers: how many share this machine's cores.
SHARE_ENV = "ACTIVEGEN_WORKER_SHARE"

_CONFIGURED: dict = {}


def jax_settings() -> dict:
    """The client's JAX settings that workers copy (x64, compilation cache)."""
    import jax

    return {"x64": bool(jax.config.jax_enable_x64),
            "cache_dir": jax.config.jax_compilation_cache_dir,
            "cache_min_s": jax.config.jax_persistent_cache_min_compile_time_secs}


def _pin_cores(worker_name) -> list[int] | None:
    """This process's share of the cores on a local cluster of ACTIVEGEN_WORKER_SHARE
    workers (worker names 0 … N−1): CPU affinity of every thread it has."""
    share = os.environ.get(SHARE_ENV)
    if not share or not hasattr(os, "sched_setaffinity"):
        return None
    try:
        i, n = int(worker_name), int(share)
    except (TypeError, ValueError):
        return None
    cores = sorted(os.sched_getaffinity(0))
    k = max(1, len(cores) // n)
    start = (i * k) % len(cores)
    mine = cores[start:start + k]
    try:
        for tid in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(tid), mine)
    except OSError:
        return None
    return mine


def configure_worker(settings: dict, worker_name=None) -> dict:
    """Apply the client's JAX settings in this (worker) process; the core share once,
    before JAX starts its backend (idempotent)."""
    import jax

    if settings.get("x64") is not None and jax.config.jax_enable_x64 != settings["x64"]:
        jax.config.update("jax_enable_x64", settings["x64"])
    if not _CONFIGURED:
        _CONFIGURED["cores"] = _pin_cores(worker_name)
        path = settings.get("cache_dir")
        if path:
            try:
                Path(path).mkdir(parents=True, exist_ok=True)
                jax.config.update("jax_compilation_cache_dir", path)
                jax.config.update("jax_persistent_cache_min_compile_time_secs",
                                  settings.get("cache_min_s", 0.5))
            except OSError:
                pass  # not writable on this machine: compile without the cache
        _CONFIGURED["cache_dir"] = path
    return dict(_CONFIGURED)


def _plugin_class():
    from distributed import WorkerPlugin

    class WorkerSetup(WorkerPlugin):
        """Runs `configure_worker` in every worker, including those that replace lost ones."""

        name = "activegen-setup"

        def __init__(self, settings):
            self.settings = settings

        def setup(self, worker):
            configure_worker(self.settings, worker.name)

    return WorkerSetup


def setup_client(client) -> None:
    """Register the worker setup (the client's JAX settings) on `client`'s workers."""
    client.register_plugin(_plugin_class()(jax_settings()), name="activegen-setup")


def cluster_failure(exc, out=None, any_oserror: bool = True) -> ActivegenError | None:
    """One line for a cluster that failed under the run (the scheduler gone, a worker
    lost for good, a connection closed), or None for another exception. any_oserror:
    count every OSError as the cluster's (where only the cluster is being talked to), not
    only distributed's CommClosedError."""
    from concurrent.futures import CancelledError

    try:
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker
    except ImportError:  # pragma: no cover - a dependency
        CommClosedError = KilledWorker = CancelledError
    if not isinstance(exc, (OSError if any_oserror else CommClosedError, CancelledError,
                            KilledWorker)):
        return None
    try:
        text = (str(exc).strip().splitlines() or [""])[0][:200]
    except Exception:  # noqa: BLE001 - an exception whose text cannot be made
        text = ""
    kept = (f"; {out} keeps what it held before" if out is not None else "")
    return ActivegenError(f"the Dask cluster failed during the run ({type(exc).__name__}"
                          + (f": {text}" if text else "") + f"); nothing written{kept}")
