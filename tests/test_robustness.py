"""Issue 19, nothing lost, nothing silently wrong (docs/robustness.md): hostile input is
refused in one line (exit 2) before any work, every output is written whole or not at all,
runs stop on Ctrl-C, seeds use all their bits. Each test is cheap (tiny runs)."""

from __future__ import annotations

import json
import os
import warnings
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from activegen import ActiveOU, ActivegenError, GaussianMixture, default_target_1d, sample
from activegen.cli import main
from activegen.errors import check_seed, memory_limit, seed_key
from activegen.files import atomic_path, save_samples
from activegen.lab.export import export_protocol
from activegen.lab.protocol import load_protocol, save_protocol
from activegen.samplers import Sampled, engine
from activegen.samplers.validity import CoarseStepWarning

PROC = ActiveOU(1.0, 0.0, 1.0, 0.1)
SPEC = {"weights": [0.5, 0.5], "means": [[-1.0], [1.0]], "stds": [0.5, 0.5]}


def _write(tmp_path, obj, name="t.json"):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return str(p)


def _err(capsys):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


# -- silent wrong samples -------------------------------------------------------------
def test_ode_save_grid_beyond_2T_is_the_start_alone():
    from activegen.samplers.ode import save_times

    assert list(save_times(0.5, 1000.0)) == [0.0]
    np.testing.assert_allclose(save_times(0.5, 0.25), [0.0, 0.25, 0.5])


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ACTIVEGEN_SLOW"), reason="set ACTIVEGEN_SLOW=1 (~20 s)")
def test_ode_save_every_beyond_2T_still_returns_the_samples_at_T():
    tg = default_target_1d()
    far = sample(tg, "ode", PROC, 64, seed=0, t_final=0.5, dt=0.01, save_every=100_000)
    assert far.trajectory.shape == (1, 64, 1) and list(far.times) == [0.0]
    start = far.trajectory[0]
    assert np.max(np.abs(far.samples - start)) > 0.05  # integrated to T, not the start


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ACTIVEGEN_SLOW"), reason="set ACTIVEGEN_SLOW=1 (~30 s)")
def test_ode_samples_the_same_whatever_the_save_grid():
    tg = default_target_1d()
    kw = dict(seed=0, t_final=0.5, dt=0.01)
    plain = sample(tg, "ode", PROC, 64, **kw)
    far = sample(tg, "ode", PROC, 64, save_every=100_000, **kw)
    np.testing.assert_array_equal(far.samples, plain.samples)
    every = sample(tg, "ode", PROC, 64, save_every=25, **kw)  # frames at 0, 0.25, 0.5
    np.testing.assert_allclose(every.times, [0.0, 0.25, 0.5])
    np.testing.assert_allclose(every.trajectory[-1], plain.samples, atol=1e-5)


def test_non_finite_in_data_units_writes_nothing(tmp_path):
    out = tmp_path / "s.npz"
    out.write_bytes(b"old")
    res = Sampled(np.ones((4, 2), np.float32), None, None, {"method": "x"})
    with pytest.raises(ActivegenError, match="non-finite"), np.errstate(over="ignore"):
        save_samples(out, res, seed=0, to_data=lambda a: a * np.float32(1e300))
    assert out.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def test_protocol_checksum_refuses_an_edited_file(tmp_path):
    tg = GaussianMixture.from_dict(SPEC)
    pr = export_protocol(tg, "naive", PROC, t_final=0.5, spacing=0.5, time_points=3)
    path, side = save_protocol(pr, tmp_path / "p.npz")
    assert load_protocol(path).meta["checksum"].startswith("sha256:")
    assert json.loads(side.read_text())["checksum"] == load_protocol(path).meta["checksum"]

    def rewrite(name, edit):
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        edit(arrays)
        np.savez(tmp_path / name, **arrays)
        return tmp_path / name

    def tau(a):
        m = json.loads(str(a["meta"]))
        m["tau"] = 0.2
        a["meta"] = json.dumps(m)

    def force(a):
        a["force"] = a["force"] * 1.01

    for name, edit in (("tau.npz", tau), ("force.npz", force)):
        with pytest.raises(ActivegenError, match="does not match its checksum"):
            load_protocol(rewrite(name, edit))
    no_sum = rewrite("nosum.npz", lambda a: a.__setitem__("meta", json.dumps(
        {k: v for k, v in json.loads(str(a["meta"])).items() if k != "checksum"})))
    with pytest.raises(ActivegenError, match="no checksum"):
        load_protocol(no_sum)


def test_protocol_metadata_of_the_wrong_type_or_without_source(tmp_path, capsys):
    tg = GaussianMixture.from_dict(SPEC)
    pr = export_protocol(tg, "naive", PROC, t_final=0.5, spacing=0.5, time_points=3)
    for key, value, msg in (("tau", "0.1", "'tau' must be a number"),
                            ("source", "a string", "'source' must be a JSON object"),
                            ("method", 3, "'method' must be a name")):
        bad = type(pr)(pr.lo, pr.spacing, pr.times, pr.potential, pr.force,
                       {**pr.meta, key: value})
        path, _ = save_protocol(bad, tmp_path / f"{key}.npz")
        with pytest.raises(ActivegenError, match=msg):
            load_protocol(path)
        assert main(["sample", "--protocol", str(path), "--out", str(tmp_path / "s.npz"),
                     "--no-progress"]) == 2
        assert msg in _err(capsys)
    meta = {k: v for k, v in pr.meta.items() if k != "source"}
    path, _ = save_protocol(type(pr)(pr.lo, pr.spacing, pr.times, pr.potential, pr.force,
                                     meta), tmp_path / "nosource.npz")
    assert load_protocol(path).meta["source"] == {"kind": "unknown"}


class _Stop(Exception):
    pass


def _no_run(*a, **k):  # the warnings come before the run: skip it
    raise _Stop


def test_coarse_step_warned_for_every_method_kind(monkeypatch):
    from activegen.samplers import ode

    tg = default_target_1d()
    monkeypatch.setattr(engine, "run", _no_run)
    with pytest.warns(CoarseStepWarning, match="sigma_min"), pytest.raises(_Stop):
        sample(tg, "passive", PROC.passive(), 32, seed=0, t_final=1.0, dt=0.5)
    with pytest.warns(CoarseStepWarning, match="0.1/beta"), pytest.raises(_Stop):
        sample(tg, "naive", ActiveOU(1.0, 0.0, 1.0, 5.0), 32, seed=0, t_final=1.0, dt=0.25)
    with pytest.warns(CoarseStepWarning, match="tau/10"), pytest.raises(_Stop):
        sample(tg, "exact", PROC, 32, seed=0, t_final=1.0, dt=0.05, scheme="euler")
    with pytest.warns(CoarseStepWarning, match="tau/10"), pytest.raises(_Stop):  # > τ/2
        sample(tg, "exact", PROC, 32, seed=0, t_final=1.0, dt=0.1)
    monkeypatch.setattr(ode, "solve_flow", lambda *a, **k: (np.zeros((32, 1)), None, None, 1))
    with pytest.warns(CoarseStepWarning, match="ode_rtol"):  # warned before the solve
        sample(tg, "ode", PROC, 32, seed=0, t_final=0.2, ode_rtol=1e-2)
    monkeypatch.setattr(engine, "run", _no_run)
    for m in ("passive", "fox", "exact"):  # the default step: quiet
        with warnings.catch_warnings(), pytest.raises(_Stop):
            warnings.simplefilter("error", CoarseStepWarning)
            sample(tg, m, PROC.passive() if m == "passive" else PROC, 32, seed=0)


def test_euler_bias_warned_for_a_target_far_from_the_origin(monkeypatch):
    far = GaussianMixture.from_stds([1.0], [[1000.0]], [1.0])
    monkeypatch.setattr(engine, "run", _no_run)
    with pytest.warns(CoarseStepWarning, match="far from the origin"), pytest.raises(_Stop):
        sample(far, "passive", PROC.passive(), 16, seed=0)


# -- seeds ------------------------------------------------------------------------------
def test_every_seed_its_own_stream_and_the_old_ones_unchanged():
    seeds = [0, 1, -1, 2**32 - 1, 2**32, 2**32 + 1, 2**63 - 1, 2**63, 2**64, -(2**32), 2**200]
    data = {tuple(np.asarray(jax.random.key_data(seed_key(s))).tolist()) for s in seeds}
    assert len(data) == len(seeds)
    for s in (0, 7, 2**32 - 1):
        np.testing.assert_array_equal(jax.random.key_data(seed_key(s)),
                                      jax.random.key_data(jax.random.key(s)))
    with pytest.raises(ActivegenError, match="2\\*\\*256"):
        check_seed("seed", 2**256)
    with pytest.raises(ActivegenError, match="integer"):
        check_seed("seed", 1.5)


def test_cli_seed_recorded_and_out_of_range_refused(tmp_path, capsys):
    t = _write(tmp_path, SPEC)
    out = tmp_path / "s.npz"
    big = 2**64 + 5
    assert main(["sample", "--target", t, "--method", "passive", "--tau", "0", "--n", "16",
                 "--t-final", "0.02", "--seed", str(big), "--no-progress",
                 "--out", str(out)]) == 0
    with np.load(out) as z:
        assert str(z["seed"]) == str(big)
    with pytest.raises(SystemExit) as e:
        main(["sample", "--target", t, "--method", "fox", "--tau", "0.1", "--seed",
              str(2**300), "--out", str(out)])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        main(["demo", "--seed", "-1"])  # pipelines that offset the seed: [0, 2**32)


# -- files --------------------------------------------------------------------------------
def test_atomic_path_keeps_the_old_file_on_error_and_interrupt(tmp_path):
    p = tmp_path / "r.json"
    p.write_text("old")
    for exc, raised in ((OSError("disk full"), ActivegenError),  # one line: cannot write
                        (KeyboardInterrupt(), KeyboardInterrupt)):
        with pytest.raises(raised):
            with atomic_path(p) as tmp:
                tmp.write_text("partial")
                raise exc
        assert p.read_text() == "old" and [f.name for f in tmp_path.iterdir()] == ["r.json"]
    with atomic_path(p) as tmp:
        tmp.write_text("new")
    assert p.read_text() == "new"


def test_save_samples_interrupted_leaves_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "s.npz"
    res = Sampled(np.zeros((3, 1)), np.zeros((2, 3, 1)), np.array([0.0, 1.0]), {"method": "m"})
    save_samples(out, res, seed=1)
    before = out.read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        save_samples(out, res, seed=2)
    assert out.read_bytes() == before and zipfile.is_zipfile(out)
    assert len(list(tmp_path.iterdir())) == 1


def test_checkpoint_is_one_set_interrupted_or_not(tmp_path, monkeypatch):
    import equinox as eqx

    from activegen.learning import checkpoint as learned

    d = tmp_path / "m"
    net, opt = {"w": jnp.ones(3)}, {"m": jnp.zeros(3)}
    learned.save_checkpoint(d, net, opt, {"step": 1}, np.zeros((2, 1)), [(1, 0.5)])
    real = eqx.tree_serialise_leaves
    calls = []

    def dies_on_second(path, tree):  # interrupted in the middle of a checkpoint
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(path, tree)

    monkeypatch.setattr(eqx, "tree_serialise_leaves", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        learned.save_checkpoint(d, {"w": 2 * jnp.ones(3)}, opt, {"step": 2}, None, [(2, 0.4)])
    monkeypatch.setattr(eqx, "tree_serialise_leaves", real)
    learned._recover_checkpoint(d)  # what a load does first
    assert _config(d) == {"step": 1}
    w = eqx.tree_deserialise_leaves(d / "model.eqx", net)["w"]
    np.testing.assert_array_equal(w, np.ones(3))
    assert (d / "loss.csv").read_text() == "step,loss\n1,0.5\n"
    # a committed checkpoint interrupted while moving into place is completed on load
    learned.save_checkpoint(d, {"w": 3 * jnp.ones(3)}, opt, {"step": 3}, None, [(3, 0.3)])
    assert _config(d) == {"step": 3}
    assert (d / "loss.csv").read_text().splitlines()[-1] == "3,0.3"
    assert sorted(f.name for f in d.iterdir()) == ["config.json", "data.npy", "loss.csv",
                                                  "model.eqx", "opt_state.eqx"]


def _config(d):
    """A checkpoint's config.json without its checksum (test_io_robustness checks that)."""
    cfg = json.loads((d / "config.json").read_text())
    assert cfg.pop("checksum").startswith("sha256:")
    return cfg


def _fake_model(d, **cfg_over):
    d.mkdir()
    cfg = {"kind": "energy", "process": {"beta": 1.0, "d_thermal": 0.0, "d_active": 1.0,
                                         "tau": 0.1},
           "data": {"source": "x", "n": 10, "d": 2}, "standardizer": {}, "step": 200,
           "steps": 200, **cfg_over}
    (d / "config.json").write_text(json.dumps(cfg))
    return cfg


def test_model_config_without_tau_and_resume_below_the_steps_done(tmp_path, capsys):
    from activegen.learning.model import load_model

    _fake_model(tmp_path / "notau", process={"beta": 1.0, "d_thermal": 0.0, "d_active": 1.0})
    with pytest.raises(ActivegenError, match="tau"):
        load_model(tmp_path / "notau")
    assert main(["sample", "--model", str(tmp_path / "notau"), "--method", "fox",
                 "--out", str(tmp_path / "s.npz")]) == 2
    assert "tau" in _err(capsys)
    cfg = _fake_model(tmp_path / "done")
    for extra, msg in ((["--steps", "100"], "already trained 200"),
                       ([], "already trained all its 200 steps")):
        assert main(["train", "--out", str(tmp_path / "done"), "--resume", "--no-progress",
                     *extra]) == 2
        assert msg in _err(capsys)
    assert json.loads((tmp_path / "done" / "config.json").read_text()) == cfg  # untouched


# -- stopping and limits -------------------------------------------------------------------
def test_engine_sizes_segments_by_time_and_waits_for_each(monkeypatch):
    """Segments aim at engine.SEGMENT_S seconds (Ctrl-C between two), starting at one step
    and growing at most GROWTH-fold: with a tiny target every step is a segment, with a huge
    one a 100-step run takes a few (frames of 7 steps: 1, 6, 7, 7·9, 7·3 + 2); the samples
    and frames are the same bits."""
    calls = []
    real = engine.jax.block_until_ready
    monkeypatch.setattr(engine.jax, "block_until_ready", lambda x: calls.append(1) or real(x))
    runs = []
    for target_s in (1e-9, 1e9):
        monkeypatch.setattr(engine, "SEGMENT_S", target_s)
        calls.clear()
        runs.append(sample(default_target_1d(), "passive", PROC.passive(), 16, seed=0,
                           t_final=0.2, dt=0.002, save_every=7, scheme="euler"))
        # less the 3 calls timing the overhead and sample's final wait
        runs[-1].info["segments"] = len(calls) - 4
    assert runs[0].info["segments"] == 100 and runs[1].info["segments"] <= 6
    assert runs[0].samples.tobytes() == runs[1].samples.tobytes()
    assert runs[0].trajectory.tobytes() == runs[1].trajectory.tobytes()
    assert runs[0].trajectory.shape[0] == 100 // 7 + 1


def test_segment_clock_and_layout():
    """The clock aims at SEGMENT_S, more where the measured overhead asks for it (≤ 4×);
    frames stay at multiples of save_every whatever the segment size."""
    clock = engine.SegmentClock(overhead=1e-4)
    assert clock.target == engine.SEGMENT_S and clock.steps == 1
    clock.record(1, 1e-3)
    assert clock.steps == engine.GROWTH  # capped growth, the target would allow 250
    clock.record(8, 8e-3)
    assert clock.steps == 64
    clock.record(64, 0.128)  # slower: the slower of the two estimates counts
    assert clock.steps == 125
    assert engine.SegmentClock(overhead=1.0).target == 4 * engine.SEGMENT_S
    seg = engine.next_segment
    assert seg(0, 100, 30, None, 4) == (30, 1, 0)
    assert seg(0, 100, 30, 7, 3) == (7, 3, 3) and seg(0, 100, 30, 7, 8) == (7, 4, 4)
    assert seg(3, 100, 30, 7, 8) == (4, 1, 1) and seg(3, 100, 2, 7, 8) == (2, 1, 0)
    assert seg(98, 100, 30, 7, 8) == (2, 1, 0)  # the tail after the last frame


def test_ctrl_c_one_line_exit_130(tmp_path, capsys, monkeypatch):
    import activegen.cli.sample as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_sample", interrupted)
    out = tmp_path / "s.npz"
    assert main(["sample", "--target", _write(tmp_path, SPEC), "--method", "fox", "--tau",
                 "0.1", "--out", str(out)]) == 130
    err = _err(capsys)
    assert "interrupted" in err and len(err.splitlines()) == 1 and not out.exists()


def test_real_ctrl_c_stops_a_long_compiled_solve_within_seconds(tmp_path):
    """A real SIGINT to a real `activegen sample --method ode` process, during its one long
    compiled diffrax solve (about 45 s uninterrupted; the signal is sent 6 s in, after the
    compile: XLA's compiler does not give the interpreter back until it ends): exit 130
    well before the solve would end, one line, no output file and no temporary file left."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "s.npz"
    # SIGINT as in a terminal: a runner started in the background (`cmd &`) passes SIGINT on
    # ignored, and Python then installs no KeyboardInterrupt handler
    code = ("import signal, sys, activegen.cli as c; "
            "signal.signal(signal.SIGINT, signal.default_int_handler); "
            "sys.stderr.write('ready\\n'); sys.stderr.flush(); sys.exit(c.main(sys.argv[1:]))")
    p = subprocess.Popen(
        [sys.executable, "-c", code, "sample", "--target", _write(tmp_path, SPEC),
         "--method", "ode", "--tau", "0.1", "--n", "10000000", "--out", str(out),
         "--no-progress"], stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert p.stderr.readline() == "ready\n"
        time.sleep(6.0)  # inside the solve (a cold compile takes a few seconds)
        t0 = time.perf_counter()
        p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=30)[1]
    finally:
        p.kill()
    # measured 0.05 s; a run that ignored the signal would end its solve about 35 s after it
    assert time.perf_counter() - t0 < 12
    assert p.returncode == 130
    assert err.strip().splitlines() == ["activegen: interrupted (nothing written by the "
                                        "unfinished step)"]
    assert sorted(q.name for q in tmp_path.iterdir()) == [os.path.basename(_write(tmp_path, SPEC))]


def test_step_and_memory_limits_refused_before_the_run(tmp_path, capsys, monkeypatch):
    tg = default_target_1d()
    with pytest.raises(ActivegenError, match="steps"):
        sample(tg, "fox", ActiveOU(1.0, 0.0, 1.0, 1e-12), 10, seed=0)
    t = _write(tmp_path, SPEC)
    assert main(["sample", "--target", t, "--method", "fox", "--tau", "1e-12",
                 "--out", str(tmp_path / "s.npz"), "--no-progress"]) == 2
    assert "steps" in _err(capsys)
    monkeypatch.setenv("ACTIVEGEN_MAX_MEMORY", "6.4e10")
    with pytest.raises(ActivegenError, match="--chunk-size"):
        engine.check_size(10**9, 2, 3000, 0, jnp.float32)
    monkeypatch.setenv("ACTIVEGEN_MAX_MEMORY", "3e7")
    assert memory_limit() == 3 * 10**7
    with pytest.raises(ActivegenError, match="save-every"):
        sample(tg, "passive", PROC.passive(), 200_000, seed=0, t_final=0.1, save_every=1,
               dt=0.002)
    assert main(["sample", "--target", t, "--method", "naive", "--tau", "0.1", "--n",
                 "1000000", "--out", str(tmp_path / "s.npz"), "--no-progress"]) == 2
    assert "--chunk-size" in _err(capsys)


# -- one clear line instead of a traceback ---------------------------------------------------
def test_cli_bad_inputs_one_line_exit_2(tmp_path, capsys, monkeypatch):
    empty = _write(tmp_path, {"weights": [], "means": [], "stds": []}, "empty.json")
    (tmp_path / "d.npz").mkdir()
    ok = _write(tmp_path, SPEC)
    out = str(tmp_path / "s.npz")
    base = ["--method", "fox", "--tau", "0.1", "--no-progress"]
    cases = [
        (["sample", "--target", empty, *base, "--out", out], "empty"),
        (["sample", "--target", str(tmp_path), *base, "--out", out], "is a directory"),
        (["sample", "--target", ok, *base, "--out", str(tmp_path / "d.npz")],
         "existing directory"),
        (["plot", "samples", "--input", out, "--out", str(tmp_path)], "existing directory"),
        (["train", "--data", "two-moons", "--tau", "0.1", "--out", ok], "existing file"),
    ]
    for argv, msg in cases:
        assert main(argv) == 2, argv
        err = _err(capsys)
        assert msg in err and len(err.splitlines()) == 1, (argv, err)
    assert not (tmp_path / "s.npz").exists()
    # unreadable target, read-only output folder (simulated: the tests may run as root)
    from pathlib import Path

    import activegen.errors as errors

    real_read = Path.read_text

    def unreadable(self, *a, **k):
        if self.name == "t.json":
            raise PermissionError(13, "Permission denied")
        return real_read(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", unreadable)
    assert main(["sample", "--target", ok, *base, "--out", out]) == 2
    assert "cannot be read: Permission denied" in _err(capsys)
    monkeypatch.setattr(Path, "read_text", real_read)
    monkeypatch.setattr(errors.os, "access", lambda p, mode: False)
    assert main(["sample", "--target", ok, *base, "--out", out]) == 2
    assert "not writable" in _err(capsys)


def test_empty_list_option_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        main(["experiment", "tau-sweep", "--taus", ","])
    assert e.value.code == 2 and "comma-separated" in capsys.readouterr().err


def test_python_api_refuses_bad_arguments_clearly():
    tg = default_target_1d()
    with pytest.raises(ActivegenError, match="means is malformed"):
        GaussianMixture([0.5, 0.5], [[0.0, 0.0], [1.0]], np.stack([np.eye(2)] * 2))
    with pytest.raises(ActivegenError, match="weights is malformed"):
        GaussianMixture(["0.5", "0.5"], [[0.0], [1.0]], [[[1.0]], [[1.0]]])
    with pytest.raises(ActivegenError, match="empty"):
        GaussianMixture.from_dict({"weights": [], "means": [], "stds": []})
    with pytest.raises(ActivegenError, match="tau must be a finite number"):
        ActiveOU(tau="0.1")
    with pytest.raises(ActivegenError, match="process must be an ActiveOU"):
        sample(tg, "fox", None, 10, seed=0)
    with pytest.raises(ActivegenError, match="for an integer use seed=5"):
        sample(tg, "fox", PROC, 10, 5)
    with pytest.raises(ActivegenError, match="not both"):
        sample(tg, "fox", PROC, 10, jax.random.key(0), seed=1)
