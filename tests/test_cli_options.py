"""Every option of every command is exercised at least once (issue 26), with the output it
writes loaded and checked for what the docs promise.

`test_every_option_is_exercised` is the rule: an option of `activegen` must appear in a
documented command (README.md, docs/*.md: run by tests/test_docs.py) or in a test's argv.
The tests below cover the options that neither the docs nor another test file use. Each is
small (a few hundred particles, a short T, a tiny network)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest

import doccommands as dc
from activegen.cli import build_parser, main

EX = str(dc.ROOT / "examples" / "bimodal_1d.json")
EX2 = str(dc.ROOT / "examples" / "four_modes_2d.json")


def _commands(parser, path=()):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, q in a.choices.items():
                yield from _commands(q, path + (name,))
    if path:
        yield path, parser


def _test_argv_options() -> str:
    """The string literals of every test file (argv lists are written as literals)."""
    return "\n".join(" ".join(re.findall(r"[\"'](--[a-z0-9][a-z0-9-]*)[\"']", p.read_text()))
                     for p in (dc.ROOT / "tests").glob("test_*.py"))


def test_every_option_is_exercised():
    documented = [c.argv for c in dc.all_commands() if c.kind == "activegen"]
    tested = set(_test_argv_options().split())
    missing = []
    for path, p in _commands(build_parser()):
        for a in p._actions:
            if a.help == argparse.SUPPRESS:
                continue
            for opt in a.option_strings:
                if opt in ("-h", "--help"):
                    continue
                in_docs = any(tuple(v[:len(path)]) == path and opt in v for v in documented)
                if not (in_docs or opt in tested):
                    missing.append(f"{' '.join(path)} {opt}")
    assert not missing, f"options no test or documented command uses: {missing}"


def _run(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    assert rc == 0, err
    return out, err


def _npz(path):
    z = np.load(path)
    return z, json.loads(str(z["info"]))


@pytest.fixture(scope="module")
def moons(tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "moons"
    assert main(["train", "--data", "two-moons", "--tau", "0.05", "--steps", "10",
                 "--width", "8", "--depth", "1", "--lr", "1e-3", "--no-progress",
                 "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["lr"] == pytest.approx(1e-3) if "train" in cfg else True
    return out


def test_sample_x64_writes_float64_with_the_run_parameters(tmp_path, capsys):
    out = tmp_path / "o.npz"
    _run(["sample", "--target", EX, "--method", "fox", "--tau", "0.1", "--n", "200",
          "--t-final", "0.5", "--x64", "--save-every", "10", "--no-progress",
          "--out", str(out)], capsys)
    z, info = _npz(out)
    assert z["samples"].dtype == np.float64 and z["samples"].shape == (200, 1)
    # the README: samples (N, d), the run's parameters, with --save-every trajectory + times
    for k in ("method", "tau", "beta", "d_active", "d_thermal", "t_final", "n_steps"):
        assert k in z.files or k in info, k
    assert z["trajectory"].shape[1:] == (200, 1) and len(z["times"]) == z["trajectory"].shape[0]
    import jax

    jax.config.update("jax_enable_x64", False)  # --x64 is per process: leave it as found


def test_sample_schedule_options(tmp_path, capsys):
    out = tmp_path / "o.npz"
    _run(["sample", "--target", EX, "--method", "fox-schedule", "--tau", "0.1",
          "--tau-min", "0.02", "--t-ramp", "0.5", "--n", "200", "--t-final", "1",
          "--no-progress", "--out", str(out)], capsys)
    z, info = _npz(out)
    assert z["samples"].shape == (200, 1) and np.isfinite(z["samples"]).all()
    text = json.dumps(info)
    assert "0.02" in text and "0.5" in text  # τ_min and t_ramp recorded


def test_sample_rtp_without_driver_correction_differs(tmp_path, capsys):
    outs = []
    for extra in ([], ["--no-driver-correction"]):
        out = tmp_path / f"o{len(outs)}.npz"
        _run(["sample", "--target", EX, "--method", "fox", "--driver", "rtp", "--speed", "1",
              "--tumble-rate", "5", "--n", "200", "--t-final", "0.5", "--seed", "1",
              "--no-progress", *extra, "--out", str(out)], capsys)
        outs.append(np.load(out)["samples"])
    assert not np.array_equal(outs[0], outs[1])  # the correction is a force: it moves them


def test_sample_t_min_end_game(tmp_path, capsys):
    out = tmp_path / "o.npz"
    _run(["sample", "--target", EX, "--method", "fox", "--tau", "0.1", "--t-min", "0.1",
          "--n", "200", "--t-final", "1", "--no-progress", "--out", str(out)], capsys)
    z, info = _npz(out)
    assert z["samples"].shape == (200, 1) and info.get("t_min") == pytest.approx(0.1)


def test_sample_model_hutchinson_and_likelihood_x64(moons, tmp_path, capsys):
    out = tmp_path / "o.npz"
    _run(["sample", "--model", str(moons), "--method", "fox", "--hutchinson", "2",
          "--n", "100", "--t-final", "0.5", "--no-progress", "--out", str(out)], capsys)
    z, info = _npz(out)
    assert z["samples"].shape == (100, 2) and "reference" in z.files
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).normal(size=(20, 2)))
    ll = tmp_path / "ll.npz"
    _run(["likelihood", "--model", str(moons), "--data", str(data), "--x64", "--out", str(ll)],
         capsys)
    z = np.load(ll)
    # the README: log_prob per point, the mean NLL per dimension, ODE steps, probes
    assert z["log_prob"].shape == (20,) and np.isfinite(z["log_prob"]).all()
    assert {"nll_per_dim", "ode_steps", "probes"} <= set(z.files)
    import jax

    jax.config.update("jax_enable_x64", False)


def test_train_kind_vector_and_joint(tmp_path, capsys):
    for extra in (["--kind", "vector"], ["--joint"]):
        out = tmp_path / extra[-1].strip("-")
        _run(["train", "--data", "two-moons", "--tau", "0.05", "--steps", "5", "--width", "8",
              "--depth", "1", "--no-progress", *extra, "--out", str(out)], capsys)
        cfg = json.loads((out / "config.json").read_text())
        text = json.dumps(cfg)
        assert ("vector" in text) if extra[0] == "--kind" else ("joint" in text)
        assert (out / "loss.csv").is_file()


def test_x64_of_protocol_commands(tmp_path, capsys):
    proto = tmp_path / "p.npz"
    common = ["--target", EX, "--method", "fox", "--tau", "0.1", "--t-final", "1",
              "--time-points", "5", "--x64"]
    _run(["export-potential", *common, "--out", str(proto)], capsys)
    z = np.load(proto)  # computed in float64, stored in float32 (docs/protocol.md)
    assert np.isfinite(z["force"]).all() and z["force"].shape[0] == 5
    side = json.loads(proto.with_suffix(".json").read_text())
    for k in ("method", "beta", "tau", "d_active", "d_thermal"):
        assert k in json.dumps(side), k
    _run(["plot", "potential", *common, "--out", str(tmp_path / "v.png")], capsys)
    assert (tmp_path / "v.png").stat().st_size > 5000
    _run(["animate", *common, "--n", "50", "--frames", "4", "--no-progress",
          "--out", str(tmp_path / "a.gif")], capsys)
    assert (tmp_path / "a.gif").is_file()
    import jax

    jax.config.update("jax_enable_x64", False)


def test_tau_sweep_x64_and_rtp_without_correction(tmp_path, capsys):
    _run(["experiment", "tau-sweep", "--taus", "0.2,0.1", "--methods", "fox",
          "--driver", "rtp", "--no-driver-correction", "--x64", "--n", "200",
          "--t-final", "0.5", "--no-progress", "--out", str(tmp_path / "s")], capsys)
    res = json.loads((tmp_path / "s" / "tau_sweep.json").read_text())
    assert len(res["rows"]) == 2
    import jax

    jax.config.update("jax_enable_x64", False)


SLOW = pytest.mark.skipif(not __import__("os").environ.get("ACTIVEGEN_SLOW"),
                          reason="set ACTIVEGEN_SLOW=1 (studies, small)")


@pytest.mark.slow
@SLOW
def test_results_sizes_and_grids(tmp_path, capsys):
    _run(["experiment", "results", "--methods", "exact,fox", "--taus-1d", "0.2,0.1",
          "--taus-2d", "0.2,0.1", "--taus", "0.1", "--sigmas", "0.6", "--n", "200",
          "--n-2d", "200", "--vm-n", "200", "--t-final", "1", "--no-progress",
          "--out", str(tmp_path / "r")], capsys)
    assert any((tmp_path / "r").rglob("*.json"))


@pytest.mark.slow
@SLOW
def test_learned_gallery_parts_and_digits_train_steps(tmp_path, capsys):
    _run(["experiment", "learned-gallery", "--parts", "hutchinson", "--steps", "10",
          "--n", "100", "--no-progress", "--out", str(tmp_path / "g")], capsys)
    assert (tmp_path / "g" / "learned_results.json").is_file()
    _run(["experiment", "digits", "--taus", "0.05", "--methods", "passive", "--n", "64",
          "--train-steps", "10", "--no-progress", "--out", str(tmp_path / "d")], capsys)
    assert (tmp_path / "d" / "digits.json").is_file()
