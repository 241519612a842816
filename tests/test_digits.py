"""Real data: scikit-learn's 8x8 digits, the image metrics, the CLI path (cheap tests)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from activegen import ActivegenError
from activegen.analysis import digit_metrics
from activegen.analysis import metrics
from activegen.cli import main
from activegen.learning.datasets import digits, load_data


def test_digits_split_and_scale():
    xt, yt = digits("train")
    xh, yh = digits("held-out")
    assert xt.shape == (1500, 64) and xh.shape == (297, 64)
    assert xt.min() == -1.0 and xt.max() == 1.0  # x/8 - 1 of pixels 0..16
    np.testing.assert_array_equal(load_data("digits"), xt)
    xa, _ = digits("all")
    np.testing.assert_array_equal(np.concatenate([xt, xh]), xa)
    assert set(yt) == set(range(10))
    with pytest.raises(ActivegenError, match="split"):
        digits("test")


def test_feature_metrics_exact_cases():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(4000, 3))
    assert abs(metrics.frechet_distance(f, f)) < 1e-8
    # two Gaussians with the same covariance: FD = |shift|^2 (+ finite-sample noise)
    g = rng.normal(size=(4000, 3)) + np.array([1.0, 0.0, 0.0])
    assert abs(metrics.frechet_distance(f, g) - 1.0) < 0.1
    assert metrics.knn_precision_recall(f[:500], f[:500]) == (1.0, 1.0)
    p, r = metrics.knn_precision_recall(f[:500], f[:500] + 50.0)
    assert p == 0.0 and r == 0.0
    xt, _ = digits("train")
    xh, _ = digits("held-out")
    assert metrics.memorisation_ratio(xt[:100], xt, xh) == 0.0
    assert metrics.memorisation_ratio(xh, xt, xh) == 1.0


def test_digit_report_and_floor():
    xt, _ = digits("train")
    fl = digit_metrics.floor_report(1000)
    assert fl["n"] == 1000 and "memorisation" not in fl
    assert fl["precision"] > 0.7 and fl["recall"] > 0.7 and fl["min_class"] > 0.05
    rng = np.random.default_rng(1)
    noise = digit_metrics.report(rng.uniform(-1, 1, (500, 64)))
    assert noise["fd"] > 10 * fl["fd"] and noise["precision"] < 0.1
    far = digit_metrics.report(np.concatenate([xt[:90], 3 + xt[90:100]]))
    assert far["out_of_range"] == pytest.approx(0.1)
    for bad in (np.zeros((10, 2)), np.full((10, 64), np.nan)):
        with pytest.raises(ActivegenError, match="samples"):
            digit_metrics.report(bad)


def test_train_digits_refuses_standardize(tmp_path, capsys):
    assert main(["train", "--data", "digits", "--tau", "0.05", "--standardize",
                 "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "--standardize" in err and "digits" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_digits_cli_path_train_sample_plot(tmp_path, capsys):
    """train --data digits (a tiny network), sample --model in the pixel scale, plot samples
    as 8x8 tiles; fox in d = 64 uses the stated probes."""
    m = tmp_path / "m"
    assert main(["train", "--data", "digits", "--tau", "0.05", "--width", "16", "--depth", "1",
                 "--steps", "20", "--batch", "64", "--out", str(m), "--no-progress"]) == 0
    cfg = json.loads((m / "config.json").read_text())
    assert cfg["data"]["image_shape"] == [8, 8] and cfg["data"]["range"] == [-1.0, 1.0]
    assert cfg["t_max"] == 3.0 and cfg["n_fourier"] == 0 and not cfg["standardized"]
    out = tmp_path / "s.npz"
    assert main(["sample", "--model", str(m), "--method", "fox", "--n", "16", "--t-final",
                 "0.05", "--out", str(out), "--no-progress"]) == 0
    with np.load(out) as z:
        assert z["samples"].shape == (16, 64)
        info = json.loads(str(z["info"]))
        rec = json.loads(str(z["target"]))
    assert "out_of_range" in info and rec["probes"] == 4
    ll = tmp_path / "ll.npz"
    capsys.readouterr()
    assert main(["likelihood", "--model", str(m), "--data", "digits", "--rtol", "1e-2",
                 "--probes", "2", "--out", str(ll)]) == 0
    line = capsys.readouterr().out
    assert "bits/dim over 297 points" in line and "Hutchinson 2 probes" in line
    with np.load(ll) as z:
        assert z["log_prob"].shape == (297,) and np.all(np.isfinite(z["log_prob"]))
    assert main(["likelihood", "--target", _mixture_2d(tmp_path), "--tau", "0.05",
                 "--data", "digits", "--out", str(tmp_path / "l2.npz")]) == 2
    assert "d = 64" in capsys.readouterr().err
    l3 = tmp_path / "l3.npz"
    assert main(["likelihood", "--model", str(m), "--data", "digits", "--tau", "0.2",
                 "--out", str(l3)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trained for tau = 0.05, not 0.2" in err
    assert not l3.exists()
    png = tmp_path / "s.png"
    assert main(["plot", "samples", "--input", str(out), "--out", str(png), "--no-metrics"]) == 0
    assert png.stat().st_size > 1000


def _mixture_2d(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"weights": [1.0], "means": [[0.0, 0.0]], "stds": [1.0]}))
    return str(p)


def test_range_report_warns_for_samples_outside_the_data():
    from activegen.learning.model import LearnedScore

    cfg = {"data": {"range": [-1.0, 1.0]}}
    m = type("M", (), {"config": cfg, "RANGE_MARGIN": 0.25, "RANGE_WARN": 0.01})()
    frac, msg = LearnedScore.range_report(m, np.array([[0.0, 0.5], [0.2, 1.6], [-3.0, 0.0]]))
    assert frac == pytest.approx(2 / 3) and "range [-1, 1]" in msg
    x = np.zeros((1000, 2))
    x[:5] = 3.0  # 0.5 %: recorded, not warned
    assert LearnedScore.range_report(m, x) == (0.005, None)


def test_experiment_digits_pipeline_small(tmp_path, capsys):
    """run_digits end to end on a tiny network: a table row and an image grid per method,
    models reused on a second call; bad method names refused before any work."""
    from activegen.studies.digits import markdown, run_digits

    kw = dict(taus=[0.1], n=24, dt=0.05, train_steps=20, log=None,
              train_options=dict(width=16, depth=1, batch=64))
    res = run_digits(tmp_path, methods=["passive", "naive"], **kw)  # warnings go to info
    assert [c["method"] for c in res["cells"]] == ["passive", "naive"]
    for c in res["cells"]:
        assert (tmp_path / f"digits_tau0.1_{c['method']}.png").exists()
        assert set(c["metrics"]) >= {"fd", "precision", "recall", "memorisation"}
        assert isinstance(c["info"]["warnings"], list) and c["info"]["dt"] == 0.05
    assert json.loads((tmp_path / "digits.json").read_text())["n"] == 24
    assert "| 0.1 | naive |" in markdown(res)
    assert (tmp_path / "models" / "tau0.1" / "config.json").exists()
    with pytest.raises(ActivegenError, match="method"):
        run_digits(tmp_path, methods=["passive", "nope"], **kw)
    assert main(["experiment", "digits", "--out", str(tmp_path / "e"), "--methods", "fox-sc",
                 "--n", "100"]) == 2
    assert "1380" in capsys.readouterr().err and not (tmp_path / "e" / "digits.json").exists()


def test_digits_table_marks_diverged_runs():
    from activegen.studies.digits import markdown

    fl = {"fd": 3.4, "precision": 0.78, "recall": 0.74, "min_class": 0.097}
    ok = {"fd": 4.7, "precision": 0.75, "recall": 0.77, "min_class": 0.085, "memorisation": 0.9,
          "out_of_range": 0.075}
    res = {"floor": fl, "cells": [
        {"tau": 0.05, "method": "passive", "metrics": ok, "info": {"seconds": 16.0}},
        {"tau": 0.05, "method": "fox", "metrics": {"fd": 2e38, "out_of_range": 1.0},
         "info": {"seconds": 500.0, "tau_grad_force": 1571.0}},
        {"tau": 0.1, "method": "fox", "metrics": {"fd": float("inf"), "out_of_range": 1.0},
         "info": {"seconds": 400.0, "error": "non-finite"}}]}
    md = markdown(res)
    assert "| 0.05 | passive | 4.70 | 0.75 | 0.77 | 8.5% | 0.90 | 7.5% |  | 16 |" in md
    assert "| 0.05 | fox | diverged (2.0e+38) | — |" in md and "1.57e+03" in md
    assert "| 0.1 | fox | diverged (NaN/inf samples) |" in md
