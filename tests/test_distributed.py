"""Ensembles and sweeps on a Dask cluster (docs/distributed.md): a local cluster of two
worker processes gives the samples of the one-process run, writes shards, survives a killed
worker; bad cluster options fail with one line. Kept small: blocks of 100 particles, short
runs (T = 0.2), one cluster for the module."""

from __future__ import annotations

import functools
import json
import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest

from activegen import ActiveOU, sample
from activegen.cli import main
from activegen.errors import ActivegenError, FirstOrderWarning
from activegen.files import load_samples
from activegen.physics.targets import default_target_1d

pytest.importorskip("distributed")

KW = dict(seed=5, t_final=0.2, block_size=100)
PROC = ActiveOU(1.0, 0.0, 1.0, 0.1)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A local cluster of 2 workers sharing a fresh persistent compilation cache (the
    workers compile each program once for the module; a replaced worker reads it)."""
    import jax

    from activegen.cluster.client import connect

    old = (jax.config.jax_compilation_cache_dir,
           jax.config.jax_persistent_cache_min_compile_time_secs)
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    try:
        with connect(workers=2) as c:
            yield c
    finally:
        jax.config.update("jax_compilation_cache_dir", old[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])


@functools.lru_cache
def _local(method, n, save_every=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FirstOrderWarning)
        return sample(default_target_1d(), method, PROC, n, save_every=save_every, **KW)


def _on(client, method, n, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FirstOrderWarning)
        return sample(default_target_1d(), method, PROC, n, client=client, task_blocks=1,
                      **KW, **kw)


@pytest.mark.parametrize("method", ["fox", "fox-sc"])
def test_cluster_samples_equal_one_process(client, method):
    """3 blocks as 3 tasks on 2 workers: the gathered samples and trajectory are those of
    the one-process run, bit for bit (fox-sc's fit is per block)."""
    one = _local(method, 300, 50)
    dist = _on(client, method, 300, save_every=50)
    assert dist.info["tasks"] == 3 and dist.info["workers"] == 2
    np.testing.assert_array_equal(dist.samples, one.samples)
    np.testing.assert_array_equal(dist.trajectory, one.trajectory)
    np.testing.assert_allclose(dist.info["tau_grad_force"], one.info["tau_grad_force"],
                               rtol=1e-6)


def test_fox_sc_full_block_on_a_one_core_worker(client):
    """fox-sc fits over a full block (16 384 particles, 2D) on a worker pinned to one core:
    the samples of this process (all its cores), bit for bit. Its sums over the block were
    an Eigen dot, which splits a long contraction over the threads it has (this failed
    then; 50 000 particles to T = 1 were 1.2e-4 apart, docs/distributed.md)."""
    from activegen.samplers.engine import BLOCK
    from activegen.physics.targets import default_target_2d

    kw = dict(seed=5, t_final=0.2, warn=False)
    proc = ActiveOU(1.0, 0.0, 1.0, 0.05)
    one = sample(default_target_2d(), "fox-sc", proc, BLOCK, **kw)
    dist = sample(default_target_2d(), "fox-sc", proc, BLOCK, client=client, **kw)
    assert dist.samples.tobytes() == one.samples.tobytes()


def test_cli_scheduler_shards_equal_one_process(client, tmp_path, monkeypatch, capsys):
    """`activegen sample --scheduler ADDRESS --out DIR/` (the cluster above; `--workers 2`
    starts the same kind for one command) against the one-process `--out x.npz`, then
    `evaluate` reads the shard directory."""
    import jax

    monkeypatch.setenv("ACTIVEGEN_CACHE_DIR", jax.config.jax_compilation_cache_dir)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(default_target_1d().to_dict()))
    args = ["sample", "--target", str(path), "--method", "fox", "--tau", "0.1", "--t-final",
            "0.2", "--n", "300", "--seed", "5", "--block-size", "100", "--save-every", "50",
            "--no-progress"]
    assert main(args + ["--scheduler", client.scheduler.address,
                        "--out", str(tmp_path / "sh") + "/"]) == 0
    assert main(args + ["--out", str(tmp_path / "one.npz")]) == 0
    np.testing.assert_array_equal(load_samples(tmp_path / "sh")[0],
                                  load_samples(tmp_path / "one.npz")[0])
    capsys.readouterr()
    assert main(["evaluate", "--input", str(tmp_path / "sh"), "--subsample", "100"]) == 0
    assert "fox: 100 samples of 300" in capsys.readouterr().out


def test_killed_worker_is_replaced(client, tmp_path):
    """Shards written by the workers, one of which is killed while it runs a task: its
    task reruns on the other or on the replacement; the samples read back (all, or a
    subsample) are identical and every shard is there once, none partial."""
    one = _local("fox", 300, 50)
    out, box = tmp_path / "sh", {}
    th = threading.Thread(target=lambda: box.setdefault("res", _on(client, "fox", 300,
                                                                   save_every=50, shards=out)))
    pids = client.run(os.getpid)  # {address: pid} of our local cluster's worker processes
    th.start()
    t0, busy = time.time(), []
    while not busy and time.time() - t0 < 60:
        busy = [a for a, keys in client.processing().items()
                if any("activegen-fox" in str(k) for k in keys)]
        time.sleep(0.02)
    assert busy
    os.kill(pids[busy[0]], signal.SIGKILL)
    th.join(120)
    assert not th.is_alive() and box["res"].samples is None
    token = json.loads((out / "index.json").read_text())["shards"][0]["file"].split("-")[1]
    assert sorted(p.name for p in out.iterdir()) == ["index.json"] + [
        f"shard-{token}-{j:06d}-{j + 1:06d}.npz" for j in range(3)]  # no temporary, no duplicate
    x, target, info = load_samples(out)
    np.testing.assert_array_equal(x, one.samples)
    assert target is not None and info["n"] == 300 and info["tasks"] == 3
    sub, _, _ = load_samples(out, subsample=40, seed=1)
    assert sub.shape == (40, 1) and np.isin(sub[:, 0], one.samples[:, 0]).all()


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ACTIVEGEN_SLOW"), reason="set ACTIVEGEN_SLOW=1 (~50 s)")
def test_tau_sweep_cells_as_tasks(client):
    """An experiment's cells as tasks: the rows of the local run."""
    from activegen.studies.tau_sweep import tau_sweep

    kw = dict(taus=[0.1], methods=["naive"], n=300, t_final=0.2, seed=[0, 1])
    here = tau_sweep(default_target_1d(), **kw)
    there = tau_sweep(default_target_1d(), **kw, client=client)
    assert len(there["rows"]) == 2
    for a, b in zip(here["rows"], there["rows"]):
        assert (a["method"], a["tau"], a["seed"]) == (b["method"], b["tau"], b["seed"])
        for k in ("metrics", "floor"):  # numpy's float64 rounding may differ in a worker
            np.testing.assert_allclose(list(a[k].values()), list(b[k].values()), rtol=1e-12)


def test_bad_cluster_options(capsys, monkeypatch, tmp_path):
    """--workers 0 is refused; an unreachable scheduler fails within seconds, one line."""
    import activegen.cluster.client as dist

    args = ["sample", "--target", str(tmp_path / "t.json"), "--method", "fox", "--tau",
            "0.1", "--out", str(tmp_path / "x.npz")]
    (tmp_path / "t.json").write_text(json.dumps(default_target_1d().to_dict()))
    assert main(args + ["--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
    monkeypatch.setattr(dist, "CONNECT_TIMEOUT", 1.0)
    t0 = time.time()
    assert main(args + ["--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert time.time() - t0 < 15
    assert len(err) == 1 and "cannot reach the Dask scheduler" in err[0], err
    with pytest.raises(ActivegenError, match="need a Dask client"):
        sample(default_target_1d(), "fox", PROC, 100, shards=tmp_path / "s", **KW)
