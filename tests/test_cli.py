"""CLI: sample, demo, tau-sweep, and one-line errors for bad input (no output written)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from activegen.cli import main

GOOD = {"weights": [0.4, 0.6], "means": [[-1.0, 0.0], [1.5, 0.5]], "stds": [0.7, 0.9]}


def _write(tmp_path, spec, name="t.json"):
    p = tmp_path / name
    p.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return str(p)


def test_sample_writes_npz(tmp_path):
    out = tmp_path / "o.npz"
    rc = main(["sample", "--target", _write(tmp_path, GOOD), "--method", "fox", "--tau", "0.1",
               "--n", "300", "--seed", "3", "--t-final", "1", "--save-every", "100",
               "--scheme", "euler", "--no-progress", "--out", str(out)])
    assert rc == 0
    z = np.load(out)
    assert z["samples"].shape == (300, 2)
    assert np.all(np.isfinite(z["samples"]))
    assert float(z["tau"]) == 0.1 and str(z["method"]) == "fox"
    assert z["trajectory"].shape == (6, 300, 2)
    info = json.loads(str(z["info"]))
    assert info["n_steps"] == 500 and info["scheme"] == "euler"


def test_sample_covs_target_and_seed_reproducible(tmp_path):
    spec = {"weights": [1.0], "means": [[0.0, 1.0]], "covs": [[[1.0, 0.3], [0.3, 0.5]]]}
    outs = []
    for k in range(2):
        out = tmp_path / f"o{k}.npz"
        assert main(["sample", "--target", _write(tmp_path, spec), "--method", "exact",
                     "--tau", "0.2", "--n", "100", "--t-final", "1", "--no-progress",
                     "--out", str(out)]) == 0
        outs.append(np.load(out)["samples"])
    np.testing.assert_array_equal(outs[0], outs[1])


BAD = [
    (["--tau", "-0.1"], GOOD, "tau must be >= 0"),
    (["--tau", "0.1", "--d-active", "-1"], GOOD, "d_active"),
    (["--tau", "0.1", "--d-thermal", "-1"], GOOD, "d_thermal"),
    (["--tau", "0.1", "--beta", "inf"], GOOD, "beta"),
    (["--tau", "nan"], GOOD, "tau"),
    (["--tau", "0.1", "--n", "0"], GOOD, "--n"),
    (["--tau", "0.1", "--dt", "0"], GOOD, "dt"),
    (["--tau", "0.1"], "{not json", "not valid JSON"),
    (["--tau", "0.1"], {"weights": [-1, 2], "means": [[0], [1]], "stds": [1, 1]}, "weights"),
    (["--tau", "0.1"], {"weights": [0.5, 0.5], "means": [[0, 0], [1]], "stds": [1, 1]}, "malformed"),
    (["--tau", "0.1"], {"weights": [1], "means": [[0, 0]], "covs": [[[1, 0], [0, -1]]]}, "positive definite"),
    (["--tau", "0.1"], {"weights": [1], "means": [[0, 0]], "stds": [[1, 1, 1]]}, "stds"),
]


@pytest.mark.parametrize("extra,spec,msg", BAD)
def test_bad_input_one_line_error_no_output(tmp_path, capsys, extra, spec, msg):
    out = tmp_path / "o.npz"
    rc = main(["sample", "--target", _write(tmp_path, spec), "--method", "fox", "--n", "10",
               "--no-progress", "--out", str(out)] + extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert msg in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_missing_file_and_unknown_method_via_subprocess(tmp_path):
    out = tmp_path / "o.npz"
    cmd = [sys.executable, "-m", "activegen.cli", "sample", "--target", str(tmp_path / "no.json"),
           "--method", "fox", "--tau", "0.1", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and "target file not found" in r.stderr
    assert "Traceback" not in r.stderr
    cmd[cmd.index("fox")] = "magic"
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr
    assert not out.exists()


def test_tau_sweep_writes_table(tmp_path, capsys):
    rc = main(["experiment", "tau-sweep", "--taus", "0.2,0.1", "--methods", "fox,naive",
               "--seeds", "0,1", "--n", "300", "--t-final", "1", "--no-progress",
               "--out", str(tmp_path / "s")])
    assert rc == 0
    res = json.loads((tmp_path / "s" / "tau_sweep.json").read_text())
    assert len(res["rows"]) == 8 and set(res["slopes"]) == {"fox", "naive"}
    assert set(res["slope_fit"]) == {"fox", "naive"}
    assert "| fox | 0.2 | 1 |" in (tmp_path / "s" / "tau_sweep.md").read_text()
    assert (tmp_path / "s" / "tau_sweep.png").stat().st_size > 10_000


def test_sample_with_rtp_driver_from_physical_parameters(tmp_path):
    out = tmp_path / "o.npz"
    rc = main(["sample", "--target", _write(tmp_path, GOOD), "--method", "fox", "--driver", "rtp",
               "--speed", "2.0", "--tumble-rate", "5.0", "--n", "200", "--t-final", "1",
               "--no-progress", "--out", str(out)])
    assert rc == 0
    z = np.load(out)
    assert float(z["tau"]) == pytest.approx(0.2) and float(z["d_active"]) == pytest.approx(0.4)
    assert str(z["driver"]) == "RunAndTumbleDriver"


@pytest.mark.parametrize(
    "extra,msg",
    [
        (["--driver", "rtp", "--speed", "2", "--tumble-rate", "5", "--tau", "0.3"], "--tau 0.3 contradicts"),
        (["--driver", "rtp", "--speed", "2"], "give both"),
        (["--driver", "ou", "--tau", "0.1", "--speed", "2"], "cannot be used"),
        (["--driver", "abp", "--speed", "2", "--tumble-rate", "5"], "cannot be used"),
        (["--driver", "rtp", "--tau", "0.1", "--method", "exact"], "applies to methods"),
        (["--driver", "abp", "--speed", "2", "--rot-diffusion", "-1"], "rot_diffusion"),
        (["--driver", "rtp"], "--tau is required"),
    ],
)
def test_inconsistent_driver_options_rejected(tmp_path, capsys, extra, msg):
    out = tmp_path / "o.npz"
    args = ["sample", "--target", _write(tmp_path, GOOD), "--n", "10", "--no-progress",
            "--out", str(out)] + extra
    if "--method" not in extra:
        args += ["--method", "fox"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
    assert not out.exists()


def test_tau_sweep_with_rtp_driver(tmp_path):
    rc = main(["experiment", "tau-sweep", "--taus", "0.1", "--methods", "fox", "--driver", "rtp",
               "--n", "200", "--t-final", "0.5", "--no-progress", "--out", str(tmp_path / "s")])
    assert rc == 0
    row = json.loads((tmp_path / "s" / "tau_sweep.json").read_text())["rows"][0]
    assert row["info"]["driver"] == "RunAndTumbleDriver" and row["info"]["driver_correction"]


def test_sample_chunk_size_gives_the_same_samples(tmp_path):
    outs = []
    for k, extra in enumerate(([], ["--chunk-size", "16384"])):
        out = tmp_path / f"c{k}.npz"
        assert main(["sample", "--target", _write(tmp_path, GOOD), "--method", "naive",
                     "--tau", "0.1", "--n", "20000", "--t-final", "0.2", "--no-progress",
                     "--out", str(out), *extra]) == 0
        outs.append(np.load(out)["samples"])
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)
    assert main(["sample", "--target", _write(tmp_path, GOOD), "--method", "naive", "--tau",
                 "0.1", "--chunk-size", "0", "--out", str(tmp_path / "x.npz")]) == 2
def test_tau_sweep_2d_writes_density_figure(tmp_path):
    rc = main(["experiment", "tau-sweep", "--dim", "2", "--taus", "0.2", "--methods", "naive",
               "--n", "200", "--t-final", "0.3", "--no-progress", "--out", str(tmp_path / "s")])
    assert rc == 0
    res = json.loads((tmp_path / "s" / "tau_sweep.json").read_text())
    assert len(res["target"]["weights"]) == 4 and "samples" not in res
    assert (tmp_path / "s" / "tau_sweep_densities.png").stat().st_size > 5_000


def test_validity_map_writes_files(tmp_path, capsys):
    from activegen.studies.validity_map import VALIDITY_METHODS

    out = tmp_path / "v"
    rc = main(["experiment", "validity-map", "--taus", "0.05,0.2", "--sigmas", "0.4,0.8",
               "--n", "300", "--t-final", "0.3", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "validity_map.json").read_text())
    assert len(res["cells"]) == 4 and res["taus"] == [0.05, 0.2] and res["sigmas"] == [0.4, 0.8]
    for c in res["cells"]:
        assert set(c["w1"]) == set(VALIDITY_METHODS) and set(c["ratio"]) == set(c["w1"])
        assert c["tau_grad_force"]["fox"] > 0 and c["floor"] > 0
    assert {"threshold", "min_failing", "misclassified"} <= set(res["calibration"])
    assert (out / "validity_map.md").read_text().count("\n| 0.") == 4
    assert (out / "validity_map.png").stat().st_size > 10_000


# -- CLI basics: help, version, python -m, progress in steps ---------------------------------
def test_bare_command_prints_help_and_exits_0(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: activegen") and "demo" in out and "exits with status 0" in out
    assert main(["plot"]) == 0 and "samples" in capsys.readouterr().out


def test_version_and_python_m(capsys):
    from activegen import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"activegen {__version__}"
    r = subprocess.run([sys.executable, "-m", "activegen"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("usage: activegen")


def test_help_shows_defaults_and_required(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sample", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # undo the line wrapping
    assert e.value.code == 0
    assert "--n N number of particles (default: 10000)" in out
    assert "--seed SEED random seed: the same seed gives the same samples" in out
    assert "each its own stream (default: 0)" in out
    assert "--out OUT output .npz, or DIR/: one shard per cluster task and DIR/index.json (required)" in out
    assert "--no-progress no progress bars" in out


def test_every_option_has_help():
    import argparse

    from activegen.cli import build_parser

    def walk(p, name):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for k, q in a.choices.items():
                    yield from walk(q, f"{name} {k}")
            elif a.option_strings and not a.help:
                yield f"{name} {a.option_strings[0]}"

    assert list(walk(build_parser(), "activegen")) == []


def test_progress_bar_counts_steps_of_the_whole_ensemble(monkeypatch):
    import tqdm.auto

    from activegen import ActiveOU, default_target_1d, sample
    from activegen.samplers.engine import BLOCK

    closed = {}

    class Recorder(tqdm.auto.tqdm):
        def close(self):
            closed.setdefault(id(self), (self.total, self.n, self.unit, self.desc))
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    for chunk in (None, BLOCK):  # 3 blocks: one run, and three chunks
        sample(default_target_1d(), "naive", ActiveOU(tau=0.1), 2 * BLOCK + 5, seed=0,
               t_final=0.02, dt=0.002, progress=True, chunk_size=chunk)
    bars = list(closed.values())
    assert [b[:3] for b in bars] == [(10, 10, "step")] * 2
    assert "32773 particles" in bars[0][3]


def test_floor_limited_slope_is_marked():
    from activegen.studies.tau_sweep import sweep_markdown, sweep_pivot_markdown

    rows = [{"method": m, "tau": t, "seed": 0, "floor": {"w1": 0.01, "hist_kl": 0.0},
             "metrics": {"w1": w, "hist_kl": 0.0, "mean_error": 0.0, "cov_error": 0.0}}
            for m, ws in (("fox", (0.011, 0.01)), ("naive", (0.1, 0.05)))
            for t, w in zip((0.2, 0.1), ws)]
    res = {"rows": rows, "slopes": {"fox": 0.1, "naive": 1.0},
           "slope_fit": {"fox": {"taus": [0.1, 0.2], "floor_limited": True},
                         "naive": {"taus": [0.1, 0.2], "floor_limited": False}}}
    pivot = sweep_pivot_markdown(res)
    assert "| slope | 0.10* | 1.00 | |" in pivot and "floor-limited" in pivot
    assert "fox 0.10*, naive 1.00" in sweep_markdown(res)
