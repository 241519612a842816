"""Reported CLI cases, one cheap test each (tiny ensembles, small grids, short T): help
texts, animate's frame count, learned-model sample plots, coarse or misplaced protocol
grids, table and snapshot limits, --taus/--sigmas parsing, register_force output shapes and
the first-order note of the potential figures (docs/robustness.md)."""

import dataclasses
import json
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from activegen import ActiveOU, ActivegenError, default_target_1d, register_force
from activegen.figures import potential as plots
from activegen.cli import build_parser, main
from activegen.physics.forces import force_naive, potential_naive
from activegen.lab.export import export_protocol
from activegen.lab.grid import CoarseGridWarning
from activegen.lab.protocol import save_protocol
from activegen.samplers import unregister_method
from activegen.physics.targets import GaussianMixture

SPEC_1D = {"weights": [0.3, 0.7], "means": [[-2.0], [1.5]], "stds": [0.8, 1.0]}
SPEC_2D = {"weights": [0.4, 0.6], "means": [[-1.0, 0.0], [1.5, 0.5]], "stds": [0.7, 0.9]}
PROC = ActiveOU(1.0, 0.0, 1.0, 0.1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cases")
    (d / "t1.json").write_text(json.dumps(SPEC_1D))
    (d / "t2.json").write_text(json.dumps(SPEC_2D))
    p1 = export_protocol(default_target_1d(), "fox", PROC, t_final=1.0, spacing=0.25,
                         time_points=6)
    save_protocol(p1, d / "p1.npz")
    # the same table without its target (no valid region to draw: a cheap animation)
    save_protocol(dataclasses.replace(p1, meta=dict(p1.meta, source={"kind": "unknown"})),
                  d / "p1_bare.npz")
    return d


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("activegen: error:"), err
    return err[0]


# -- 1. help texts ---------------------------------------------------------------------
def test_help_says_when_tau_is_required_and_what_t_ramp_and_t_max_do(capsys):
    h = _help(capsys, "sample")
    assert "required with --target" in h and "with --model default the model's τ" in h
    assert "--method fox-schedule only: ramp time" in h and "with or without --tau-min" in h
    assert "--method fox-schedule only: persistence time τ_min" in h
    assert "required with --target" in _help(capsys, "export-potential")
    h = _help(capsys, "train")
    assert "--t-max T_MAX, --t-final T_MAX" in h and "--t-final is the same option" in h
    assert "diffusion time T > 0 (default 6)" not in h  # no second, inert --t-final
    args = build_parser().parse_args(["train", "--out", "m", "--t-final", "2.5"])
    assert args.t_max == 2.5  # backward compatible: --t-final sets the model's T


# -- 2. animate: exactly the frames asked for, or one line ------------------------------
def test_animation_frames_are_distinct_and_exactly_as_many_as_asked():
    s = np.linspace(0.0, 1.0, 21)  # 21 saved times, Δs = 0.05
    old = np.unique(np.abs(s[None, :] - (1.0 - plots.time_grid(1.0, 12, 0.05)[::-1])[:, None])
                    .argmin(1))
    assert len(old) < 12  # the reported case: wanted times merged near t = 0
    idx = plots.animation_frames(s, 1.0, 12, 0.05)
    assert len(idx) == 12 and idx[0] == 0 and idx[-1] == 20 and np.all(np.diff(idx) > 0)
    assert len(plots.animation_frames(s, 1.0, 21, 0.05)) == 21
    assert len(plots.animation_frames(s, 1.0, 30, 0.05)) <= 21  # cannot: fewer (said by CLI)


def test_animate_writes_the_frames_asked_for_and_limits_frames(files, tmp_path, capsys):
    gif = tmp_path / "a.gif"
    assert main(["animate", "--protocol", str(files / "p1_bare.npz"), "--n", "50", "--frames",
                 "12", "--dt", "0.05", "--fps", "5", "--no-progress", "--out", str(gif)]) == 0
    with Image.open(gif) as im:
        assert im.n_frames == 12
    io = capsys.readouterr()
    assert "(12 frames)" in io.out
    assert "activegen: note:" in io.err and "first-order V" in io.err  # case 9
    for frames, dt, msg in (("1000000", None, "--frames must lie in [2, 1000]"),
                            ("30", "0.5", "--frames must lie in [2, 3] with --dt 0.5")):
        out = tmp_path / f"b{frames}.gif"
        argv = ["animate", "--protocol", str(files / "p1.npz"), "--frames", frames,
                "--no-progress", "--out", str(out)] + (["--dt", dt] if dt else [])
        assert main(argv) == 2
        assert msg in _err_line(capsys) and not out.exists()


# -- 3. learned-model sample plots ------------------------------------------------------
def test_learned_model_plot_has_labels_colour_bar_floor_and_the_requested_name(
        tmp_path, capsys, monkeypatch):
    from activegen.figures import samples as plots

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(2000, 2)) * [1.0, 0.5]
    npz = tmp_path / "s.npz"  # the layout `sample --model` writes
    np.savez(npz, samples=rng.normal(size=(300, 2)) * [1.0, 0.5], reference=ref,
             target=json.dumps({"model": "m"}),
             info=json.dumps({"method": "fox-sc", "method_requested": "refined", "tau": 0.1}))
    figs = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi: figs.append(fig))
    assert main(["plot", "samples", "--input", str(npz), "--out", str(tmp_path / "s.png"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "sliced W1 to the training data" in out and "(floor" in out
    ax, cax = figs[0].axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x₁", "x₂")
    assert cax.get_ylabel() == "samples per bin"
    title = ax.get_title()
    assert title.startswith("refined (fox-sc), τ = 0.1, N = 300") and "(floor " in title
    floor = float(title.split("(floor ")[1].split(")")[0])
    w = float(title.split("training data ")[1].split()[0])
    assert 0 < floor and w < 3 * floor  # samples of the data's own law sit at the floor


def test_sample_records_the_method_name_asked_for():
    from activegen import sample

    r = sample(default_target_1d(), "refined", PROC, 120, seed=0, t_final=0.1, dt=0.05)
    assert r.info["method"] == "fox-sc" and r.info["method_requested"] == "refined"


# -- 4. coarse spacing ------------------------------------------------------------------
def test_coarse_spacing_warns_with_the_figure(files, tmp_path, capsys):
    with pytest.warns(CoarseGridWarning, match=r"σ_min/3"):
        export_protocol(default_target_1d(), "naive", PROC, t_final=0.5, spacing=2.0,
                        time_points=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CoarseGridWarning)  # σ_min/4: no warning
        export_protocol(default_target_1d(), "naive", PROC, t_final=0.5, spacing=0.2,
                        time_points=2)
    assert main(["export-potential", "--target", str(files / "t1.json"), "--method", "naive",
                 "--tau", "0.1", "--t-final", "0.5", "--spacing", "100", "--time-points",
                 "2", "--no-progress", "--out", str(tmp_path / "x.npz")]) == 0
    err = capsys.readouterr().err
    assert "activegen: warning: spacing 100 is 125 σ_min" in err


def test_sample_tabulate_with_coarse_spacing_warns(files, tmp_path, capsys):
    assert main(["sample", "--target", str(files / "t1.json"), "--method", "naive", "--tau",
                 "0.1", "--tabulate", "--spacing", "2", "--time-points", "2", "--t-final",
                 "0.1", "--dt", "0.05", "--n", "50", "--no-progress",
                 "--out", str(tmp_path / "s.npz")]) == 0
    assert "activegen: warning: spacing 2 is 2.5 σ_min" in capsys.readouterr().err


# -- 5. an extent away from the data -----------------------------------------------------
def test_extent_away_from_the_data_is_refused_and_a_tight_one_warned(files, tmp_path, capsys):
    out = tmp_path / "x.npz"
    assert main(["export-potential", "--target", str(files / "t1.json"), "--method", "fox",
                 "--tau", "0.1", "--extent", "100,101", "--no-progress",
                 "--out", str(out)]) == 2
    line = _err_line(capsys)
    assert "holds only 0.0% of the start" in line and "the default extent" in line
    assert not out.exists()
    with pytest.warns(CoarseGridWarning, match="holds only"):
        export_protocol(default_target_1d(), "naive", PROC, t_final=0.5, spacing=0.25,
                        time_points=2, extent=(-3.0, 3.0))


# -- 6. table size, snapshots and times ---------------------------------------------------
def test_table_size_is_checked_before_allocation(files, tmp_path, capsys):
    t = time.perf_counter()
    assert main(["export-potential", "--target", str(files / "t1.json"), "--method", "fox",
                 "--tau", "0.1", "--time-points", "1000000000", "--no-progress",
                 "--out", str(tmp_path / "x.npz")]) == 2
    assert time.perf_counter() - t < 5  # no 8 GB time grid first
    assert "the table would hold" in _err_line(capsys)


@pytest.mark.parametrize("extra, msg", [
    (["--snapshots", "100000"], "--snapshots must lie in [1, 16]"),
    (["--times", "nan"], "--times must be finite"),
    (["--times", "0.1,inf"], "--times must be finite"),
])
def test_plot_potential_snapshots_and_times_are_checked(files, tmp_path, capsys, extra, msg):
    out = tmp_path / "v.png"
    assert main(["plot", "potential", "--protocol", str(files / "p1.npz"), "--out", str(out)]
                + extra) == 2
    assert msg in _err_line(capsys) and not out.exists()
    with pytest.raises(ActivegenError, match=r"finite and lie in \[0, T = 1\]"):
        plots.plot_potential(_load(files), out, times=[float("nan")])


def _load(files):
    from activegen.lab.protocol import load_protocol

    return load_protocol(files / "p1.npz")


# -- 7. --taus / --sigmas / --seeds ----------------------------------------------------------
@pytest.mark.parametrize("argv, msg", [
    (["experiment", "tau-sweep", "--taus", "0.1,,0.2"], "no empty field"),
    (["experiment", "tau-sweep", "--taus", "0.1,0.2,"], "no empty field"),
    (["experiment", "tau-sweep", "--seeds", "1,,2"], "no empty field"),
    (["experiment", "tau-sweep", "--taus", "0"], "finite number > 0"),
    (["experiment", "validity-map", "--taus", "0"], "finite number > 0"),
    (["experiment", "validity-map", "--sigmas", "-0.3"], "finite number > 0"),
    (["experiment", "results", "--taus-1d", "0"], "finite number > 0"),
    (["experiment", "results", "--taus", "nan"], "finite number > 0"),
    (["experiment", "results", "--sigmas", "0"], "finite number > 0"),
    (["experiment", "thermodynamics", "--taus", "0"], "finite number > 0"),
    (["experiment", "digits", "--taus", "0,0.1"], "finite number > 0"),
])
def test_bad_taus_sigmas_seeds_refused_when_parsed(tmp_path, capsys, argv, msg):
    out = tmp_path / "o"
    t = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--out", str(out)])
    assert exc.value.code == 2 and time.perf_counter() - t < 5
    assert msg in capsys.readouterr().err and not out.exists()


def test_library_experiments_check_taus_before_any_work(tmp_path):
    from activegen.studies.results import run_results
    from activegen.studies.thermodynamics import run_thermodynamics

    with pytest.raises(ActivegenError, match="every value of vm_taus must be > 0"):
        run_results(tmp_path / "r", vm_taus=(0.0,), log=None)
    with pytest.raises(ActivegenError, match="every value of taus must be > 0"):
        run_thermodynamics(tmp_path / "t", taus=(0.0,))
    assert not (tmp_path / "r").exists() and not (tmp_path / "t").exists()


# -- 8. register_force output shapes ---------------------------------------------------------
@pytest.mark.parametrize("force, potential, msg", [
    (lambda p, t, x, dv: jnp.sum(x), potential_naive, r"F of shape \(d, N\) = \(2, 5\).*got shape \(\)"),
    (lambda p, t, x, dv: x.T, potential_naive, r"F of shape \(d, N\) = \(2, 5\).*got shape \(5, 2\)"),
    (force_naive, lambda p, t, x, dv: x, r"V of shape \(N,\) = \(5,\).*got shape \(2, 5\)"),
    (lambda p, t, x, dv: x @ jnp.ones((7, 7)), potential_naive, r"failed on x of shape \(2, 5\): TypeError"),
])
def test_register_force_checks_the_output_shape(force, potential, msg):
    with pytest.raises(ActivegenError, match=msg):
        register_force("case-bad", force, potential)
    from activegen.samplers import method_names

    assert "case-bad" not in method_names()


def test_a_force_for_2d_only_is_refused_at_first_use_in_1d():
    def force(p, t, x, dv):  # indexes two coordinates: right in 2D only
        return jnp.stack([-x[0], -x[1]])

    def potential(p, t, x, dv):
        return 0.5 * (x[0] ** 2 + x[1] ** 2)

    register_force("case-2d", force, potential)
    try:
        with pytest.raises(ActivegenError, match=r"F of shape \(d,\) = \(1,\).*got shape \(2,\)"):
            export_protocol(default_target_1d(), "case-2d", PROC, t_final=0.5, spacing=0.4,
                            time_points=2)
    finally:
        unregister_method("case-2d")


# -- 9. the first-order V away from the particles --------------------------------------------
def test_potential_figures_explain_wells_away_from_the_particles(files, tmp_path, capsys,
                                                                monkeypatch):
    figs = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi: figs.append(fig))
    assert main(["plot", "potential", "--protocol", str(files / "p1.npz"), "--times",
                 "1,0.1", "--out", str(tmp_path / "v.png")]) == 0
    err = capsys.readouterr().err
    assert "activegen: note: V and F are drawn over the whole grid" in err
    assert "docs/protocol.md" in err
    texts = " ".join(t.get_text() for ax in figs[0].axes for t in ax.texts)
    assert "far from the data" in texts and "wells" in texts
    assert "wells hold no particles" in plots.VALID_NOTE
