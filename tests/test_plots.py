"""Figures and animations are written with the expected content (PNG/GIF size, frames)."""

import json

import jax
import numpy as np
import pytest
from PIL import Image

from activegen import ActiveOU, default_target_1d
from activegen.cli import main
from activegen.figures.potential import animate, animation_frames
from activegen.lab.export import export_protocol
from activegen.lab.protocol import replay, save_protocol
from activegen.physics.targets import GaussianMixture

SPEC_2D = {"weights": [0.4, 0.6], "means": [[-1.0, 0.0], [1.5, 0.5]], "stds": [0.7, 0.9]}


def _png_ok(path, min_size=(200, 150)):
    assert path.exists() and path.stat().st_size > 5000
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= min_size[0] and im.size[1] >= min_size[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("plots")
    t2 = d / "t2.json"
    t2.write_text(json.dumps(SPEC_2D))
    assert main(["export-potential", "--target", str(t2), "--method", "fox", "--tau", "0.1",
                 "--t-final", "1", "--spacing", "0.25", "--time-points", "8", "--no-progress",
                 "--out", str(d / "p2.npz")]) == 0
    tg2 = GaussianMixture.from_dict(SPEC_2D)  # the layout `activegen sample` writes
    np.savez(d / "s2.npz", samples=np.asarray(tg2.sample(jax.random.key(1), 300)),
             target=json.dumps(tg2.to_dict()), info=json.dumps({"method": "naive"}))
    p1 = export_protocol(default_target_1d(), "fox", ActiveOU(tau=0.1), t_final=1.0,
                         spacing=0.25, time_points=8)
    save_protocol(p1, d / "p1.npz")
    return d


def test_plot_samples_1d_and_2d(files, tmp_path):
    tg = default_target_1d()
    s1 = tmp_path / "s1.npz"  # the layout `activegen sample` writes (tested in test_protocol)
    np.savez(s1, samples=np.asarray(tg.sample(jax.random.key(0), 300)),
             target=json.dumps(tg.to_dict()), info=json.dumps({"method": "fox", "tau": 0.1}))
    for src, name, extra in ((s1, "f1.png", []), (files / "s2.npz", "f2.png", ["--no-metrics"])):
        out = tmp_path / name
        assert main(["plot", "samples", "--input", str(src), "--out", str(out)] + extra) == 0
        _png_ok(out)


def test_plot_potential_from_protocol_and_from_target(files, tmp_path):
    out = tmp_path / "v2.png"
    assert main(["plot", "potential", "--protocol", str(files / "p2.npz"), "--times",
                 "1,0.3,0.05", "--out", str(out)]) == 0
    _png_ok(out)
    out = tmp_path / "v1.png"
    assert main(["plot", "potential", "--target", str(files / "t2.json"), "--method", "naive",
                 "--tau", "0.2", "--t-final", "1", "--spacing", "0.5", "--time-points", "4",
                 "--no-progress", "--out", str(out)]) == 0
    _png_ok(out)


def test_plot_sweep_from_json(tmp_path):
    rows = [{"method": m, "tau": t, "seed": 0, "metrics": {"w1": w}, "floor": {"w1": 0.01}}
            for m, f in (("fox", 1.0), ("naive", 2.0)) for t, w in ((0.2, 0.1 * f), (0.1, 0.03 * f))]
    js = tmp_path / "tau_sweep.json"
    js.write_text(json.dumps({"rows": rows, "slopes": {"fox": 1.7, "naive": 1.7}}))
    out = tmp_path / "sweep.png"
    assert main(["plot", "sweep", "--input", str(js), "--out", str(out)]) == 0
    _png_ok(out)


def test_animate_gif_frames_and_still(files, tmp_path, capsys):
    gif, still = tmp_path / "a.gif", tmp_path / "a.png"
    assert main(["animate", "--protocol", str(files / "p2.npz"), "--n", "100", "--frames", "6",
                 "--fps", "5", "--still", str(still), "--no-progress", "--out", str(gif)]) == 0
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 6
    _png_ok(still)
    assert "6 frames" in capsys.readouterr().out


def test_animate_1d_api_and_bad_suffix(files, tmp_path, capsys):
    from activegen.lab.protocol import load_protocol

    pr = load_protocol(files / "p1.npz")
    res = replay(pr, 50, seed=0, save_every=25)
    idx = animation_frames(res.times, pr.t_final, 4, 0.1)
    assert idx[0] == 0 and idx[-1] == len(res.times) - 1 and np.all(np.diff(idx) > 0)
    r = animate(pr, res.trajectory[idx], res.times[idx], tmp_path / "a1.gif", fps=4)
    with Image.open(r["path"]) as im:
        assert im.n_frames == len(idx)
    assert main(["animate", "--protocol", str(files / "p1.npz"), "--out",
                 str(tmp_path / "a.avi"), "--no-progress"]) == 2
    from matplotlib import animation

    if not animation.writers.is_available("ffmpeg"):
        assert main(["animate", "--protocol", str(files / "p1.npz"), "--out",
                     str(tmp_path / "a.mp4"), "--no-progress"]) == 2
        assert "needs ffmpeg" in capsys.readouterr().err


def test_valid_region_holds_99_percent_of_the_density():
    from activegen.figures.potential import valid_region

    pr = export_protocol(default_target_1d(), "fox", ActiveOU(tau=0.1), t_final=1.0,
                         spacing=0.25, time_points=4)
    g = np.linspace(-8, 8, 801)[:, None]
    for t in (0.0, 0.5):
        mask = valid_region(pr, default_target_1d(), t, g)
        p = np.exp(np.asarray(default_target_1d().log_prob(g, pr.process, t)))
        assert 0.985 < p[mask].sum() / p.sum() < 0.995 and not mask.all()
    assert valid_region(pr, None, 0.0, g) is None
