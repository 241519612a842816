"""Files, shard directories and clusters (docs/robustness.md, docs/distributed.md): outputs
honour the umask, a failed or interrupted run into a shard directory leaves the earlier run
readable, non-finite samples, edited indexes and overwritten model weights are refused,
write errors and cluster failures are one line (exit 2), a scheduler without workers and
too many local workers are refused in bounded time. Cheap: one local cluster of one worker
for the module, runs of 200 particles (2 blocks) over T = 0.1."""

from __future__ import annotations

import errno
import json
import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from activegen import ActivegenError, files
from activegen.cli import main
from activegen.files import atomic_path, load_samples, save_samples, write_json
from activegen.samplers import Sampled
from activegen.physics.targets import default_target_1d

UMASK = 0o027  # files 0640, not mkstemp's 0600 nor the usual 0644


def _err(capsys):
    """The one error line (status lines of activegen's may precede it; nothing else)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("activegen: ") for line in err), err
    errors = [line for line in err if line.startswith("activegen: error: ")]
    assert len(errors) == 1 and err[-1] == errors[0], err
    return errors[0]


def _mode(p) -> int:
    return os.stat(p).st_mode & 0o777


def _snapshot(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def _target(tmp_path) -> str:
    p = tmp_path / "t.json"
    p.write_text(json.dumps(default_target_1d().to_dict()))
    return str(p)


@pytest.fixture
def umask():
    old = os.umask(UMASK)
    try:
        yield UMASK
    finally:
        os.umask(old)


# -- 1. file modes ------------------------------------------------------------------------
def test_atomic_writers_honour_the_umask(tmp_path, umask):
    import jax.numpy as jnp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from activegen.learning import checkpoint as learned

    want = 0o666 & ~umask
    files.write_text(tmp_path / "a.md", "x")
    write_json(tmp_path / "a.json", {"a": 1})
    res = Sampled(np.zeros((4, 1)), None, None, {"method": "x"})
    save_samples(tmp_path / "s.npz", res, seed=3)
    fig = plt.figure()
    files.save_figure(fig, tmp_path / "f.png")
    plt.close(fig)
    with atomic_path(tmp_path / "p.npz") as tmp:
        np.savez(tmp, a=np.zeros(2))
    learned.save_checkpoint(tmp_path / "m", {"w": jnp.ones(2)}, {"m": jnp.zeros(2)},
                            {"step": 1}, np.zeros((2, 1)), [(1, 0.5)])
    written = [tmp_path / n for n in ("a.md", "a.json", "s.npz", "f.png", "p.npz")]
    written += sorted((tmp_path / "m").iterdir())
    assert {p.name: oct(_mode(p)) for p in written} == {p.name: oct(want) for p in written}
    os.umask(0o022)
    write_json(tmp_path / "a.json", {"a": 2})
    assert _mode(tmp_path / "a.json") == 0o644


# -- 3. silent wrong results -----------------------------------------------------------------
def _samples_file(path, x, target=True):
    kw = {"target": json.dumps(default_target_1d().to_dict())} if target else {}
    np.savez(path, samples=x, info=json.dumps({"method": "fox", "n": len(x)}), **kw)
    return str(path)


def test_non_finite_samples_are_refused_by_evaluate_and_plot(tmp_path, capsys):
    x = np.linspace(-1, 1, 50)[:, None]
    x[[3, 7]] = np.nan
    x[9] = np.inf
    f = _samples_file(tmp_path / "nan.npz", x)
    assert main(["evaluate", "--input", f]) == 2
    assert "holds 3 non-finite samples (NaN or inf) of 50" in _err(capsys)
    assert main(["plot", "samples", "--input", f, "--out", str(tmp_path / "p.png")]) == 2
    assert "3 non-finite samples" in _err(capsys)
    assert not (tmp_path / "p.png").exists()
    with pytest.raises(ActivegenError, match="3 non-finite"):  # a subsample is no way round
        load_samples(f, subsample=5)


def _shard_dir(d: Path, n=500, b=100, per=2, nan_at=None):
    """A shard directory as `sample(..., shards=)` writes it (without a cluster)."""
    d.mkdir()
    nb = -(-n // b)
    shards = []
    for j0 in range(0, nb, per):
        c = min(per, nb - j0)
        k = min(n, b * (j0 + c)) - b * j0
        x = np.arange(b * j0, b * j0 + k, dtype=float)[:, None]
        if nan_at is not None and j0 == 0:
            x[nan_at] = np.nan
        name = f"shard-abc-{j0:06d}-{j0 + c:06d}.npz"
        np.savez(d / name, samples=x, info="{}")
        shards.append({"file": name, "first_block": j0, "n_blocks": c, "n": k})
    index = {"format": files.SHARDS_FORMAT, "n": n, "d": 1, "block_size": b,
             "shards": shards, "info": {"method": "fox", "n": n},
             "target": json.dumps(default_target_1d().to_dict())}
    (d / "index.json").write_text(json.dumps(index))
    return index


def _edit(d, index, **change):
    (d / "index.json").write_text(json.dumps({**index, **change}))


def test_shard_index_must_cover_the_blocks_once(tmp_path, capsys):
    d = tmp_path / "sh"
    index = _shard_dir(d)
    x, _, _ = load_samples(d)
    np.testing.assert_array_equal(x[:, 0], np.arange(500))
    s = index["shards"]
    cases = {
        "dropped": dict(shards=s[:1] + s[2:]),
        "twice": dict(shards=s[:2] + s[1:]),
        "last dropped": dict(shards=s[:-1]),
        "wrong n": dict(n=400),
        "wrong block size": dict(block_size=50),
        "count": dict(shards=[{**s[0], "n": 150}] + s[1:]),
        "type": dict(n="500"),
        "bool": dict(block_size=True),
        "shards type": dict(shards={"a": 1}),
        "shard keys": dict(shards=[{"file": s[0]["file"]}] + s[1:]),
        "escape": dict(shards=[{**s[0], "file": "../x.npz"}] + s[1:]),
        "info": dict(info=[1]),
    }
    for what, change in cases.items():
        _edit(d, index, **change)
        with pytest.raises(ActivegenError, match="is not a valid shard index") as e:
            load_samples(d)
        assert "\n" not in str(e.value), what
    _edit(d, index, shards=s[:1] + s[2:])  # as the CLI sees it: one line, exit 2
    assert main(["evaluate", "--input", str(d)]) == 2
    assert "must cover blocks [0, 5) in order, once each" in _err(capsys)
    for text in ("{", "[]", '{"n": 500}', "\xff"):
        (d / "index.json").write_bytes(text.encode("latin-1"))
        with pytest.raises(ActivegenError, match="shard index"):
            load_samples(d)
    (d / "index.json").unlink()
    with pytest.raises(ActivegenError, match="holds no index.json"):
        load_samples(d)


def test_missing_truncated_and_non_finite_shards(tmp_path, capsys):
    d = tmp_path / "sh"
    index = _shard_dir(d)
    first = d / index["shards"][0]["file"]
    data = first.read_bytes()
    first.write_bytes(data[: len(data) // 2])  # truncated
    assert main(["evaluate", "--input", str(d)]) == 2
    assert first.name in _err(capsys)
    first.write_bytes(data)
    np.savez(first, samples=np.zeros((200, 2)))  # wrong d
    with pytest.raises(ActivegenError, match=r"shape \(200, 2\)"):
        load_samples(d)
    first.unlink()
    with pytest.raises(ActivegenError, match="is missing"):
        load_samples(d)
    index = _shard_dir(tmp_path / "nan", nan_at=[0, 5])
    for sub in (None, 10):  # counted in every shard, drawn from or not
        with pytest.raises(ActivegenError, match="holds 2 non-finite samples .* of 500"):
            load_samples(tmp_path / "nan", subsample=sub)


def test_model_checksum_refuses_overwritten_weights(tmp_path, capsys):
    import jax.numpy as jnp

    from activegen.learning import checkpoint as learned

    d = tmp_path / "m"
    cfg = {"kind": "energy", "process": {"beta": 1.0, "d_thermal": 0.0, "d_active": 1.0,
                                         "tau": 0.1},
           "data": {"source": "x", "n": 2, "d": 1}, "standardizer": {}, "step": 1}
    learned.save_checkpoint(d, {"w": jnp.ones(3)}, {"m": jnp.zeros(3)}, cfg, np.zeros((2, 1)))
    stored = json.loads((d / "config.json").read_text())
    assert stored["checksum"].startswith("sha256:") and "checksum" not in cfg
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        learned.read_config(d)  # verified, no warning
    weights = (d / "model.eqx").read_bytes()
    learned.save_checkpoint(tmp_path / "m2", {"w": 2 * jnp.ones(3)}, {"m": jnp.zeros(3)},
                            cfg, np.zeros((2, 1)))
    (d / "model.eqx").write_bytes((tmp_path / "m2" / "model.eqx").read_bytes())  # overwritten
    with pytest.raises(ActivegenError, match="does not match its checksum"):
        learned.read_config(d)
    assert main(["sample", "--model", str(d), "--method", "fox", "--out",
                 str(tmp_path / "s.npz")]) == 2
    assert "does not match its checksum" in _err(capsys)
    (d / "model.eqx").write_bytes(weights)
    (d / "config.json").write_text(json.dumps({**stored, "step": 2}))  # config edited
    with pytest.raises(ActivegenError, match="does not match its checksum"):
        learned.read_config(d)
    stored.pop("checksum")  # a model written before the checksum: loads, with a notice
    (d / "config.json").write_text(json.dumps(stored))
    with pytest.warns(UserWarning, match="carries no checksum"):
        learned.read_config(d)


# -- 4. write errors ---------------------------------------------------------------------------
def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_is_one_line_and_keeps_the_old_files(tmp_path, monkeypatch, capsys):
    import equinox as eqx
    import jax.numpy as jnp

    from activegen.learning import checkpoint as learned

    res = Sampled(np.ones((4, 1)), None, None, {"method": "x"})
    out = tmp_path / "s.npz"
    save_samples(out, res)
    before = out.read_bytes()

    def half_then_full(path, **kw):  # writes part of the file, then the disk is full
        Path(path).write_bytes(b"PK" + b"\0" * 100)
        _enospc()

    monkeypatch.setattr(files.np, "savez", half_then_full)
    with pytest.raises(ActivegenError, match="cannot write .*s.npz: No space left on device"):
        save_samples(out, res._replace(samples=np.zeros((4, 1))))
    assert out.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["s.npz"]
    monkeypatch.undo()
    # a checkpoint: the previous one is kept
    m = tmp_path / "m"
    learned.save_checkpoint(m, {"w": jnp.ones(2)}, {"m": jnp.zeros(2)}, {"step": 1},
                            np.zeros((2, 1)), [(1, 0.5)])
    kept = _snapshot(m)
    monkeypatch.setattr(eqx, "tree_serialise_leaves", _enospc)
    with pytest.raises(ActivegenError, match="No space left on device .*previous checkpoint"):
        learned.save_checkpoint(m, {"w": jnp.zeros(2)}, {"m": jnp.zeros(2)}, {"step": 2},
                                None, [(2, 0.4)])
    assert _snapshot(m) == kept
    monkeypatch.undo()
    # through the CLI: a figure on a full disk
    import matplotlib.figure

    f = _samples_file(tmp_path / "in.npz", np.linspace(-1, 1, 20)[:, None])
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", _enospc)
    assert main(["plot", "samples", "--input", f, "--no-metrics", "--out",
                 str(tmp_path / "p.png")]) == 2
    assert "cannot write" in _err(capsys) and not (tmp_path / "p.png").exists()


# -- 5. refused before any work: worker counts, schedulers without workers ---------------------
def test_too_many_workers_and_bad_worker_timeout(tmp_path, capsys, monkeypatch):
    from activegen.cluster import client as dist

    cores = dist.available_cores()
    t = _target(tmp_path)
    args = ["sample", "--target", t, "--method", "fox", "--tau", "0.1", "--no-progress",
            "--out", str(tmp_path / "x.npz")]
    t0 = time.time()
    assert main(args + ["--workers", str(cores + 1)]) == 2
    assert f"--workers must be between 1 and {cores}" in _err(capsys)
    assert time.time() - t0 < 10 and not (tmp_path / "x.npz").exists()
    monkeypatch.setenv("ACTIVEGEN_WORKER_TIMEOUT", "soon")
    with pytest.raises(ActivegenError, match="ACTIVEGEN_WORKER_TIMEOUT"):
        dist.worker_timeout()


def test_scheduler_without_workers_fails_in_bounded_time(tmp_path, capsys, monkeypatch):
    from distributed import LocalCluster

    monkeypatch.setenv("ACTIVEGEN_WORKER_TIMEOUT", "1")
    args = ["sample", "--target", _target(tmp_path), "--method", "fox", "--tau", "0.1",
            "--no-progress", "--out", str(tmp_path / "x.npz")]
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as empty:
        t0 = time.time()
        assert main(args + ["--scheduler", empty.scheduler_address]) == 2
        assert time.time() - t0 < 15
    assert "has no workers (waited 1 s" in _err(capsys)
    assert not (tmp_path / "x.npz").exists()


# -- on a local cluster: shard directories --------------------------------------------------
@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One local worker (spawned under UMASK) with a fresh compilation cache."""
    import jax

    from activegen.cluster.client import connect

    pytest.importorskip("distributed")
    old = (jax.config.jax_compilation_cache_dir,
           jax.config.jax_persistent_cache_min_compile_time_secs)
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    mask = os.umask(UMASK)
    try:
        with connect(workers=1) as c:
            yield c
    finally:
        os.umask(mask)
        jax.config.update("jax_compilation_cache_dir", old[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])


def test_shards_relative_out_modes_seed_and_an_interrupted_rerun(client, tmp_path,
                                                                 monkeypatch, capsys):
    """`sample --scheduler ADDRESS --out rel/` from another working directory than the
    worker's, then a rerun into it interrupted after its shards were written: the earlier
    run stays whole and readable."""
    import jax

    assert not logging.getLogger("distributed.nanny").isEnabledFor(logging.WARNING)
    monkeypatch.setenv("ACTIVEGEN_CACHE_DIR", jax.config.jax_compilation_cache_dir)
    monkeypatch.chdir(tmp_path)
    args = ["sample", "--target", _target(tmp_path), "--method", "fox", "--tau", "0.1",
            "--t-final", "0.1", "--n", "200", "--block-size", "100", "--task-blocks", "2",
            "--no-progress", "--scheduler", client.scheduler.address, "--out", "rel/"]
    assert main(args + ["--seed", "7"]) == 0
    capsys.readouterr()
    out = tmp_path / "rel"
    index = json.loads((out / "index.json").read_text())
    assert index["seed"] == 7 and index["info"]["n"] == 200
    with np.load(out / index["shards"][0]["file"]) as z:
        assert int(z["seed"]) == 7
    assert {p.name: _mode(p) for p in out.iterdir()} == {
        p.name: 0o666 & ~UMASK for p in out.iterdir()}
    earlier, x7 = _snapshot(out), load_samples(out)[0]
    assert x7.shape == (200, 1)

    real = type(client).gather

    def gather_then_interrupt(self, futures, *a, **k):
        real(self, futures, *a, **k)  # the new shards are written, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(type(client), "gather", gather_then_interrupt)
    assert main(args + ["--seed", "7"]) == 130  # the same program: read from the cache
    assert "interrupted" in capsys.readouterr().err
    monkeypatch.undo()
    assert _snapshot(out) == earlier and files._PENDING == set()
    np.testing.assert_array_equal(load_samples(out)[0], x7)


def test_shard_directory_cannot_be_created_or_written(client, tmp_path, monkeypatch,
                                                      capsys):
    from activegen.samplers import cluster

    args = ["sample", "--target", _target(tmp_path), "--method", "fox", "--tau", "0.1",
            "--n", "200", "--no-progress", "--scheduler", client.scheduler.address]

    def denied(self, *a, **k):  # as root, permissions would not stop it
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(cluster.Path, "mkdir", denied)
    assert main(args + ["--out", str(tmp_path / "ro" / "sub") + "/"]) == 2
    assert "cannot create the shard directory" in _err(capsys)
    monkeypatch.undo()
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    assert main(args + ["--out", str(tmp_path) + "/"]) == 2
    assert "not writable" in _err(capsys)


def test_lost_cluster_and_full_disk_at_the_index_keep_the_earlier_run(tmp_path, monkeypatch):
    """The failure paths of a shard run without running one: the scheduler lost while
    gathering is one line; an index that cannot be written drops the new shards and keeps
    the earlier run (`cluster._commit_shards`)."""
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    from activegen.cluster.workers import cluster_failure
    from activegen.samplers import cluster

    out = tmp_path / "sh"
    index = _shard_dir(out)
    worker = type("W", (), {"address": "tcp://w"})()
    for exc in (CommClosedError("in <TCP>: Stream is closed"), KilledWorker("task", worker, 3),
                TimeoutError()):
        msg = str(cluster_failure(exc, out))
        assert msg.startswith(f"the Dask cluster failed during the run ({type(exc).__name__}")
        assert "nothing written" in msg and "\n" not in msg
    assert cluster_failure(ZeroDivisionError(), out) is None
    earlier = _snapshot(out)
    mine = [str(out / f"shard-new-{j:06d}-{j + 1:06d}.npz") for j in range(5)]
    for f in mine:
        Path(f).write_bytes(b"new")
    new = {**index, "shards": [{**s, "file": Path(f).name} for s, f in
                               zip(index["shards"], mine)]}
    real_write = Path.write_text

    def index_disk_full(self, *a, **k):
        if self.name.startswith(".index."):
            _enospc()
        return real_write(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", index_disk_full)
    with pytest.raises(ActivegenError, match="cannot write .*index.json: No space left"):
        cluster._commit_shards(out, new, mine)
    monkeypatch.undo()
    assert _snapshot(out) == earlier
    mine = mine[:3]
    for f in mine:
        Path(f).write_bytes(b"new")
    (out / ".shard-old-000000-000001.abc.npz").write_bytes(b"partial")  # a killed write
    new["shards"] = [{**s, "file": Path(f).name} for s, f in zip(index["shards"], mine)]
    cluster._commit_shards(out, new, mine)  # the switch: then the earlier run's files go
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["index.json"] + [Path(f).name for f in mine])
