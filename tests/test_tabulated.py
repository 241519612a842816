"""The force tabulated once on a grid (activegen.tabulated): with the same seed the run
shares the direct sampler's start and noise, so the samples (and the validity diagnostic)
differ only by the table's interpolation error."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from activegen import ActiveOU, ActivegenError, GaussianMixture, sample
from activegen.cli import main
from activegen.learning.training import train
from activegen.lab.tabulated import sample_tabulated
from activegen.physics.targets import default_target_2d

PROC = ActiveOU(tau=0.1)


def test_tabulated_fox_equals_direct_fox_up_to_interpolation_on_a_2d_mixture():
    # demo mixture, τ = 0.1, T = 3, 2000 particles, same seed: measured mean |Δx| 0.0016
    # (σ_min/4 spacing, 50 times); a table read at the wrong time or place moves samples by O(1)
    tg = default_target_2d()
    a = sample(tg, "fox", PROC, 2000, seed=0, t_final=3.0, warn=False)
    b = sample_tabulated(tg, "fox", PROC, 2000, seed=0, t_final=3.0, warn=False)
    assert b.info["tabulated"]["shape"] == [107, 102] and b.info["scheme"] == a.info["scheme"]
    assert b.info["n_steps"] == a.info["n_steps"]
    assert np.mean(np.abs(a.samples - b.samples)) < 0.01
    # the validity diagnostic from the tabulated ‖∇F₀‖, as the direct run computes it
    assert abs(b.info["tau_grad_force"] - a.info["tau_grad_force"]) < 0.03 * a.info["tau_grad_force"]
    coarse = sample_tabulated(tg, "fox", PROC, 2000, seed=0, t_final=3.0, warn=False,
                              spacing=1.0, time_points=5)
    assert np.mean(np.abs(a.samples - coarse.samples)) > 3 * np.mean(np.abs(a.samples - b.samples))


def test_tabulated_learned_fox_and_cli(tmp_path, capsys):
    x = np.asarray(default_target_2d().sample(jax.random.key(0), 1000))
    model, _ = train(x, tmp_path / "m", process=PROC, width=16, depth=2, batch=64, steps=40,
                     chunk=10, t_max=3.0)
    # the direct run without its default end game (a tabulated run has none): the same scheme
    a = sample(model, "fox", PROC, 1000, seed=1, t_final=2.0, warn=False, t_min=0.0)
    b = sample_tabulated(model, "fox", PROC, 1000, seed=1, t_final=2.0, warn=False)
    assert a.info["scheme"] == b.info["scheme"] == "euler"  # a model has no σ_min
    assert np.mean(np.abs(a.samples - b.samples)) < 0.02
    lo, hi = np.asarray(b.info["tabulated"]["lo"]), np.asarray(b.info["tabulated"]["hi"])
    assert np.all(lo < x.min(0)) and np.all(hi > x.max(0))  # the extent covers the data
    out = tmp_path / "s.npz"
    assert main(["sample", "--model", str(tmp_path / "m"), "--method", "naive", "--tabulate",
                 "--n", "200", "--t-final", "2", "--out", str(out), "--no-progress"]) == 0
    with np.load(out) as z:
        assert z["samples"].shape == (200, 2)
        assert json.loads(str(z["info"]))["tabulated"]["time_points"] == 50
    t3 = tmp_path / "t3.json"
    t3.write_text(json.dumps({"weights": [1.0], "means": [[0.0, 0.0, 0.0]], "stds": [1.0]}))
    capsys.readouterr()
    for argv, msg in [
        (["--model", str(tmp_path / "m"), "--method", "exact"], "method must be one of"),
        (["--model", str(tmp_path / "m"), "--method", "fox", "--t-min", "0.1"], "--t-min cannot"),
        (["--model", str(tmp_path / "m"), "--method", "fox", "--spacing", "0"], "--spacing must"),
        (["--target", str(t3), "--method", "fox", "--tau", "0.1"], "d = 1 or 2"),
    ]:
        bad = tmp_path / "bad.npz"
        assert main(["sample", "--tabulate", "--n", "10", "--t-final", "1", "--out", str(bad),
                     "--no-progress"] + argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1 and not bad.exists(), (argv, err)
    with pytest.raises(ActivegenError, match="d = 1 or 2"):
        sample_tabulated(GaussianMixture.from_stds([1.0], [[0.0, 0.0, 0.0]], [1.0]), "fox",
                         PROC, 10, seed=0)
