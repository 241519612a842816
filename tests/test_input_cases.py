"""Input cases that used to crash, pass silently or give the wrong advice (docs/robustness.md):
--energetics files, evaluate in d >= 2, overflowing or oversized training data, train
--resume with options it cannot honour, likelihood tolerances and empty data, a CSV row with
a typo, huge target weights, the advice on non-finite results, activegen.digit_metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from activegen import ActiveOU, ActivegenError, GaussianMixture, sample
from activegen.cli import main
from activegen.physics.energetics import ENERGETIC_KEYS, ENTROPY_KEYS
from activegen.files import save_samples
from activegen.samplers import Sampled

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
T1, T2, T3 = (str(EXAMPLES / f) for f in ("bimodal_1d.json", "mixture_2d.json",
                                         "three_modes_3d.json"))
SLOW = pytest.mark.skipif(not os.environ.get("ACTIVEGEN_SLOW"),
                          reason="set ACTIVEGEN_SLOW=1 (one compile per method)")


def _err_lines(capsys):
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


def _one_error(capsys, *needles):
    """The run printed exactly one line on stderr, an error holding every needle."""
    lines = _err_lines(capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith("activegen: error: "), lines
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# -- 1. sample --energetics writes its per-particle arrays ------------------------------
def _check_energetics_file(path, n, keys):
    with np.load(path) as z:
        info = json.loads(str(z["info"]))
        for k in keys:
            a = z[k]
            assert a.shape == (n,) and np.all(np.isfinite(a)), k
            assert info[f"{k}_mean"] == pytest.approx(float(np.mean(a)), rel=1e-6, abs=1e-9)
            assert k not in info  # the JSON keeps scalars only
        # first law per particle: ΔU = W + W_act − Q (float32 rounding)
        lhs = z["work"] + z["active_work"] - z["heat"]
        scale = 1.0 + np.abs(z["heat"]) + np.abs(z["work"])
        assert np.all(np.abs(lhs - z["potential_change"]) <= 1e-3 * scale)
    assert all(isinstance(v, (int, float, str, bool, type(None), list, dict))
               for v in info.values())


ACTIVE_KEYS = ENERGETIC_KEYS + ("path_entropy", "system_entropy_change", "entropy_production")


@pytest.mark.parametrize("method, target, keys", [
    ("passive", T1, ENERGETIC_KEYS + ENTROPY_KEYS),
    ("fox", T2, ACTIVE_KEYS),
])
def test_sample_energetics_writes_per_particle_arrays(tmp_path, capsys, method, target, keys):
    out = tmp_path / "e.npz"
    assert main(["sample", "--target", target, "--method", method, "--tau", "0.1", "--n",
                 "150", "--t-final", "0.1", "--energetics", "--no-progress",
                 "--out", str(out)]) == 0
    _check_energetics_file(out, 150, keys)


@SLOW
@pytest.mark.parametrize("method", ["ucn", "naive", "fox-sc", "refined", "fox-schedule"])
def test_sample_energetics_every_other_method(tmp_path, method):
    out = tmp_path / "e.npz"
    assert main(["sample", "--target", T1, "--method", method, "--tau", "0.1", "--n", "200",
                 "--t-final", "0.1", "--energetics", "--no-progress", "--out", str(out)]) == 0
    _check_energetics_file(out, 200, ENERGETIC_KEYS)


@SLOW
def test_sample_energetics_with_tabulate(tmp_path):
    out = tmp_path / "tab.npz"
    assert main(["sample", "--target", T2, "--method", "fox", "--tau", "0.1", "--n", "120",
                 "--t-final", "0.1", "--tabulate", "--time-points", "6", "--energetics",
                 "--no-progress", "--out", str(out)]) == 0
    _check_energetics_file(out, 120, ENERGETIC_KEYS)


def test_sample_energetics_with_protocol(tmp_path):
    proto = tmp_path / "p.npz"
    assert main(["export-potential", "--target", T1, "--method", "naive", "--tau", "0.1",
                 "--t-final", "0.1", "--time-points", "4", "--spacing", "0.2", "--no-progress",
                 "--out", str(proto)]) == 0
    out = tmp_path / "rep.npz"
    assert main(["sample", "--protocol", str(proto), "--n", "120", "--energetics",
                 "--no-progress", "--out", str(out)]) == 0
    _check_energetics_file(out, 120, ENERGETIC_KEYS)


def test_save_samples_keeps_scalars_in_the_json():
    from activegen.files import split_info

    info, arrays = split_info({"work": np.arange(3.0), "tau": np.float32(0.5), "n": 3,
                               "x": np.array(2.0)})
    assert set(arrays) == {"work"} and info == {"work_mean": 1.0, "tau": 0.5, "n": 3, "x": 2.0}
    json.dumps(info)


# -- 2. evaluate prints per-coordinate metrics in any d ---------------------------------
def _samples_file(tmp_path, target, n=2000):
    rng = np.random.default_rng(1)
    k = rng.choice(len(target.weights), n, p=target.weights)
    z = rng.standard_normal((n, target.dim))
    x = target.means[k] + np.einsum("nij,nj->ni", np.linalg.cholesky(target.covs)[k], z)
    path = tmp_path / f"s{target.dim}.npz"
    save_samples(path, Sampled(x, None, None, {"method": "exact", "n": n}), seed=0,
                 target=json.dumps(target.to_dict()))
    return path


@pytest.fixture
def cheap_evaluate(monkeypatch):
    """metrics.evaluate with a small exact reference (the subject is the printed line)."""
    import activegen.analysis.metrics as metrics

    full = metrics.evaluate
    monkeypatch.setattr(metrics, "evaluate", lambda x, target, seed=0: full(
        x, target, seed=seed, n_ref=2000, floor_draws=2))


@pytest.mark.parametrize("spec", [T1, T2, T3])
def test_evaluate_any_dimension(tmp_path, capsys, cheap_evaluate, spec):
    target = GaussianMixture.load(spec)
    path = _samples_file(tmp_path, target)
    assert main(["evaluate", "--input", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2000 samples" in out and "w1 " in out and "nan" not in out
    if target.dim == 1:
        assert "w1_per_coordinate" not in out
    else:  # one number per coordinate, and a floor for each
        for part in out.split("w1_per_coordinate [")[1].split("]")[:2]:
            assert len(part.split("[")[-1].split(",")) == target.dim


def test_evaluate_metric_text_for_many_coordinates():
    from activegen.cli.evaluate import _metric_text

    assert _metric_text(0.12345) == "0.1235"
    assert _metric_text([0.1, 0.2]) == "[0.1000, 0.2000]"
    assert _metric_text([0.1] * 9 + [0.5]) == "mean 0.1400, max 0.5000 (coordinate 9) of 10"


def test_evaluate_refuses_a_target_of_another_dimension(tmp_path, capsys, cheap_evaluate):
    path = _samples_file(tmp_path, GaussianMixture.load(T2), n=50)
    assert main(["evaluate", "--input", str(path), "--target", T1]) == 2
    _one_error(capsys, "d = 2", "d = 1")


# -- 3. training data beyond float32 or too large ------------------------------------------
def test_train_on_overflowing_data_says_why_in_one_line(tmp_path, capsys):
    data = tmp_path / "big.npy"
    np.save(data, np.random.default_rng(0).normal(size=(50, 2)) * 1e300)
    out = tmp_path / "m"
    assert main(["train", "--data", str(data), "--tau", "0.1", "--steps", "5",
                 "--no-progress", "--out", str(out)]) == 2
    line = _one_error(capsys, "3.4e38", "e+300", "--standardize")
    assert "--lr" not in line
    assert not (out / "config.json").exists()


def test_standardizer_handles_data_near_float64s_range():
    from activegen.learning.datasets import Standardizer

    x = np.random.default_rng(0).normal(size=(100, 2)) * 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        st = Standardizer.fit(x)
        z = st.forward(x).astype(np.float32)
        back = st.inverse(z)  # float32 z, data at 1e300: computed (and kept) in float64
    assert np.isfinite(st.scale) and 1e299 < st.scale < 1e301
    assert np.all(np.isfinite(back)) and np.allclose(back, x, rtol=1e-5)
    assert Standardizer.fit(np.array([[1.0], [2.0]])).inverse(np.float32([[0.0]])).dtype \
        == np.float32


def test_train_refuses_a_transposed_file_before_any_work(tmp_path, capsys):
    data = tmp_path / "wide.npy"
    np.save(data, np.random.default_rng(0).normal(size=(4, 20_000)))
    assert main(["train", "--data", str(data), "--tau", "0.1", "--no-progress",
                 "--out", str(tmp_path / "m")]) == 2
    _one_error(capsys, "d = 20000", "4 rows × 20000 columns", "d <= 1024")
    assert not (tmp_path / "m" / "config.json").exists()


def test_train_refuses_data_above_the_memory_limit(monkeypatch):
    from activegen.learning.training import check_training_data

    monkeypatch.setenv("ACTIVEGEN_MAX_MEMORY", "1e6")
    with pytest.raises(ActivegenError, match="100 rows × 200 columns.* above the memory limit"):
        check_training_data(np.ones((100, 200)))


# -- 4. train --resume refuses what it cannot honour ---------------------------------------
def test_train_resume_refuses_options_it_cannot_honour(tmp_path, capsys):
    from activegen.learning.datasets import two_moons
    from activegen.learning.training import train

    m = str(tmp_path / "m")
    # 4 of 8 steps (stop_at): the resume below continues the same schedule (one compile)
    train(two_moons(100), m, process=ActiveOU(tau=0.1, beta=2.0), steps=8, stop_at=4,
          width=8, depth=1, batch=32, n_fourier=0, t_max=1.0)
    before = (Path(m) / "config.json").read_text()
    for extra, needles in [
        (["--data", "rings", "--lr", "1e-3"], ("--data, --lr", "cannot be used with --resume")),
        (["--standardize"], ("--standardize",)),
        (["--width", "8"], ("--width",)),  # even the stored value: resume keeps its own
        (["--seed", "0"], ("--seed",)),
        (["--beta", "1"], ("beta = 2, not 1",)),  # process options must match the model
    ]:
        assert main(["train", "--out", m, "--resume", "--steps", "8", "--no-progress",
                     *extra]) == 2, extra
        _one_error(capsys, *needles)
        assert (Path(m) / "config.json").read_text() == before  # nothing written
    # process options that match (the others taken from the model, beta = 2) are honoured
    assert main(["train", "--out", m, "--resume", "--steps", "8", "--tau", "0.1",
                 "--no-progress"]) == 0
    assert json.loads((Path(m) / "config.json").read_text())["step"] == 8


# -- 5. likelihood: tolerances, probes, empty data -----------------------------------------
@pytest.mark.parametrize("extra, needles", [
    (["--rtol", "-1"], ("--rtol must lie in [", "0.1]")),
    (["--rtol", "0"], ("--rtol must lie in",)),
    (["--rtol", "5"], ("--rtol must lie in",)),
    (["--rtol", "1e-12"], ("--rtol", "--x64")),
    (["--rtol", "nan"], ("--rtol",)),
    (["--probes", "0"], ("--probes must be a positive integer",)),
])
def test_likelihood_refuses_bad_tolerances_and_probes(tmp_path, capsys, extra, needles):
    data = tmp_path / "d.npy"
    np.save(data, np.zeros((5, 1)))
    out = tmp_path / "ll.npz"
    assert main(["likelihood", "--target", T1, "--tau", "0.1", "--t-final", "1", "--data",
                 str(data), *extra, "--out", str(out)]) == 2
    _one_error(capsys, *needles)
    assert not out.exists()


def test_likelihood_library_checks_tolerance_and_probe_memory(monkeypatch):
    from activegen.analysis.likelihood import log_likelihood

    tg = GaussianMixture.load(T1)
    with pytest.raises(ActivegenError, match="atol must be > 0"):
        log_likelihood(tg, ActiveOU(tau=0.1), np.zeros((3, 1)), atol=0.0)
    monkeypatch.setenv("ACTIVEGEN_MAX_MEMORY", "1e6")
    with pytest.raises(ActivegenError, match="probes = 100000 .* use fewer probes"):
        log_likelihood(tg, ActiveOU(tau=0.1), np.zeros((3, 1)), probes=100_000)
    with pytest.raises(ActivegenError, match="no points"):
        log_likelihood(tg, ActiveOU(tau=0.1), np.zeros((0, 1)))


@pytest.mark.parametrize("content, needle", [
    (None, "holds no points"),  # an empty .npy
    ("", "is empty"),
    ("x\n", "is empty"),  # a header and no rows
    ("\n\n", "is empty"),
])
def test_likelihood_on_empty_data_is_one_line(tmp_path, capsys, content, needle):
    if content is None:
        data = tmp_path / "d.npy"
        np.save(data, np.zeros((0, 1)))
    else:
        data = tmp_path / "d.csv"
        data.write_text(content)
    out = tmp_path / "ll.npz"
    assert main(["likelihood", "--target", T1, "--tau", "0.1", "--t-final", "1", "--data",
                 str(data), "--out", str(out)]) == 2
    line = _one_error(capsys)
    assert needle in line or "N >= 2" in line or "no points" in line, line
    assert not out.exists()


# -- 6. a CSV whose first data row has a typo -----------------------------------------------
def test_csv_header_only_when_no_field_is_a_number(tmp_path):
    from activegen.learning.datasets import load_array
    from activegen.analysis.likelihood import load_data

    def csv(text):
        p = tmp_path / "d.csv"
        p.write_text(text)
        return p

    np.testing.assert_array_equal(load_array(csv("x,y\n1,2\n3,4\n")), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(load_data(csv("x,y\n1,2\n3,4\n"), 2), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(load_array(csv("1,2\n3,4\n")), [[1, 2], [3, 4]])
    for text, line in [("1,2.o\n1,2\n3,4\n", "line 1 "), ("x,1\n1,2\n3,4\n", "line 1 "),
                       ("x,y\n1,2\n\n3,a\n", "line 4 ")]:
        with pytest.raises(ActivegenError, match=line):
            load_array(csv(text))
        with pytest.raises(ActivegenError, match=line):
            load_data(csv(text), 2)


def test_train_on_a_csv_with_a_typo_names_the_line(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("0.5,1.2\n0.1,O.3\n" + "".join(f"{i},{i % 3}\n" for i in range(20)))
    assert main(["train", "--data", str(data), "--tau", "0.1", "--no-progress",
                 "--out", str(tmp_path / "m")]) == 2
    _one_error(capsys, "line 2", "'O.3'")


# -- 7. target weights that overflow their sum ----------------------------------------------
@pytest.mark.parametrize("weights, expect", [
    ([1e308, 1e308], [0.5, 0.5]),
    ([1e308, 1e308, 1e308], [1 / 3] * 3),
    ([5e-324, 5e-324], [0.5, 0.5]),
    ([1.0, 3.0], [0.25, 0.75]),
])
def test_weights_normalise_without_overflow(weights, expect):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tg = GaussianMixture.from_stds(weights, [[float(i)] for i in range(len(weights))],
                                       [1.0] * len(weights))
    np.testing.assert_allclose(tg.weights, expect, rtol=1e-12)


# -- 8. advice that matches the cause of a non-finite result ------------------------------
def test_nonfinite_advice_matches_the_cause():
    from activegen.errors import forward_hint
    from activegen.samplers.validity import nonfinite_hint

    coarse = nonfinite_hint(steps=0.5, tau_steps=None, beta=30.0, diffusivity=1.0,
                            min_std=0.02)
    assert "0.1/beta" in coarse and coarse.endswith("use a smaller --dt")
    first = nonfinite_hint(steps=1e-4, tau_steps=1.0, beta=1.0, diffusivity=1.0,
                           min_std=0.02, first_order=True, tau_grad_force=float("inf"))
    assert "first-order force diverged" in first and "--t-min" in first
    assert "smaller --dt does not" in first
    learned = nonfinite_hint(steps=1e-3, beta=1.0, diffusivity=1.0, learned=True)
    assert "learned score" in learned
    other = nonfinite_hint(steps=1e-3, beta=1.0, diffusivity=1.0, min_std=1.0)
    assert "smaller --dt" not in other and "3.4e38" in other
    assert "NaN" in forward_hint(np.array([np.nan]), 1.0, 0.01)
    assert "smaller dt" in forward_hint(np.ones(2), 1.0, 3.0)
    assert "overflowed" in forward_hint(np.ones(2, np.float32), 1.0, 0.01)


def test_a_first_order_divergence_does_not_advise_a_smaller_dt():
    tg = GaussianMixture.from_stds([0.5, 0.5], [[-1.0], [1.0]], [0.02, 0.02])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ActivegenError, match="non-finite") as exc:
            sample(tg, "fox", ActiveOU(tau=1.0), 64, seed=0, t_final=0.3)
    assert "first-order force diverged" in str(exc.value)
    assert "use a smaller --dt" not in str(exc.value)


def test_a_target_beyond_float32_is_refused_before_the_run(tmp_path, capsys):
    spec = tmp_path / "t.json"
    spec.write_text(json.dumps({"weights": [1, 1], "means": [[-1e30], [1e30]],
                                "stds": [1e29, 1e29]}))
    out = tmp_path / "s.npz"
    assert main(["sample", "--target", str(spec), "--method", "fox", "--tau", "0.1", "--n",
                 "50", "--no-progress", "--out", str(out)]) == 2
    _one_error(capsys, "1.1e+30", "float32", "--x64")
    assert not out.exists()


# -- 9. activegen.digit_metrics after `import activegen` -------------------------------------
def test_digit_metrics_is_an_attribute_loaded_lazily():
    code = ("import sys, activegen\n"
            "assert 'activegen.analysis.digit_metrics' not in sys.modules\n"
            "assert callable(activegen.digit_metrics.report)\n"
            "assert activegen.digit_metrics.__name__ == 'activegen.analysis.digit_metrics'\n"
            "for bad in ('nope', '_private', 'a.b'):\n"
            "    assert not hasattr(activegen, bad)\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
