"""The lab (issue 28, docs/lab.md): units, the loop twin against its closed form, the force
limit, the ideal lab replay, bad lab files, the numpy-only lookup."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import doccommands as dc
from activegen.cli import main
from activegen.errors import ActivegenError
from activegen.lab.feedback import Loop, loop_replay, split_loops, zoh_stationary_variance
from activegen.lab.protocol import Protocol, load_protocol, replay
from activegen.lab.units import Lab, check_lab_protocol

LAB = str(dc.ROOT / "examples" / "lab_bead_bath.json")
TARGET = str(dc.ROOT / "examples" / "lab_target_um.json")
LOOKUP = dc.ROOT / "src" / "activegen" / "lab" / "lookup.py"
K, T, D_T, TAU, D_A = 2.0, 8.0, 0.4, 0.3, 0.5


def harmonic(k=K, t_final=T):
    """F = −k x tabulated (exact under multilinear interpolation and extrapolation)."""
    x = -10 + 0.5 * np.arange(41)
    meta = dict(method="harmonic", beta=1.0, tau=TAU, d_active=D_A, d_thermal=D_T,
                t_final=t_final)
    return Protocol(np.array([-10.0]), np.array([0.5]), np.array([0.0, t_final]),
                    np.stack([0.5 * k * x**2] * 2).astype(np.float32),
                    np.stack([-k * x] * 2)[..., None].astype(np.float32), meta)


# -- units ---------------------------------------------------------------------------------
def test_units_gamma_kT_and_thermal_diffusivity():
    lab = Lab(298.15, 0.89e-3, 0.5)
    assert lab.gamma == pytest.approx(6 * math.pi * 0.89e-3 * 0.5)  # pN·s/µm
    assert lab.kT == pytest.approx(1.380649e-23 * 298.15 * 1e18)   # pN·µm (4.116e-3)
    assert lab.d_thermal == pytest.approx(lab.kT / lab.gamma)
    assert lab.d_thermal == pytest.approx(0.4907, rel=1e-3)  # Stokes–Einstein, 1 µm bead


def test_export_with_lab_writes_force_in_pN_and_records_the_units(tmp_path, capsys):
    out = tmp_path / "p.npz"
    assert main(["export-potential", "--target", TARGET, "--method", "fox", "--beta", "0.5",
                 "--t-final", "12", "--time-points", "8", "--lab", LAB, "--out", str(out),
                 "--no-progress"]) == 0
    lab = Lab.from_dict(json.loads(open(LAB).read()))
    proto = load_protocol(out)
    with np.load(out) as z:
        np.testing.assert_allclose(z["force_pN"], lab.gamma * proto.force, rtol=1e-6)
        np.testing.assert_allclose(z["potential_kT"], lab.gamma * proto.potential / lab.kT,
                                   rtol=1e-6)
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["lab"]["d_thermal_um2_s"] == pytest.approx(lab.d_thermal)
    assert proto.meta["d_thermal"] == pytest.approx(lab.d_thermal)
    assert (proto.meta["tau"], proto.meta["d_active"]) == (0.2, 1.0)  # the activity block
    check_lab_protocol(lab, proto.meta)
    # a conflicting --d-thermal: one line, exit 2, no file
    bad = tmp_path / "q.npz"
    assert main(["export-potential", "--target", TARGET, "--method", "fox", "--lab", LAB,
                 "--d-thermal", "0.1", "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--d-thermal" in err[0] and "k_BT" in err[0]
    assert not bad.exists()


def test_swimmer_activity_maps_to_tau_and_d_active():
    rtp = Lab.from_dict(dict(temperature_K=300, viscosity_Pa_s=1e-3, radius_um=1,
                             activity=dict(driver="rtp", speed_um_s=20, tumble_rate_per_s=1)))
    assert rtp.tau_and_d_active(2) == pytest.approx((1.0, 20**2 * 1.0 / 2))  # THEORY §3
    abp = Lab.from_dict(dict(temperature_K=300, viscosity_Pa_s=1e-3, radius_um=1,
                             activity=dict(driver="abp", speed_um_s=10,
                                           rot_diffusion_per_s=0.5)))
    assert abp.tau_and_d_active(2) == pytest.approx((2.0, 10**2 / (2 * 0.5)))


@pytest.mark.parametrize("data, words", [
    ({"viscosity_Pa_s": 1e-3, "radius_um": 0.5}, ["temperature_K", "missing"]),
    ({"temperature_K": -3, "viscosity_Pa_s": 1e-3, "radius_um": 0.5}, ["temperature_K", "> 0"]),
    ({"temperature_K": 300, "viscosity_Pa_s": 1e-3, "radius_um": 0.5, "colour": 1},
     ["unknown key", "colour"]),
    ({"temperature_K": 300, "viscosity_Pa_s": 1e-3, "radius_um": 0.5,
      "feedback": {"latency_s": -1}}, ["latency_s", ">= 0"]),
    ({"temperature_K": 298.15, "viscosity_Pa_s": 0.00089, "radius_um": 0.5,
      "activity": {"tau_s": 0.2, "d_active_um2_s": 1.0},
      "feedback": {"update_period_s": 100.0}}, ["update_period_s", "<= the protocol's T"]),
])
def test_bad_lab_files_one_line_exit_2_no_output(tmp_path, capsys, data, words):
    proto = tmp_path / "p.npz"
    assert main(["export-potential", "--target", TARGET, "--method", "fox", "--beta", "0.5",
                 "--t-final", "12", "--time-points", "4", "--lab", LAB, "--out", str(proto),
                 "--no-progress"]) == 0
    capsys.readouterr()
    bad = tmp_path / "lab.json"
    bad.write_text(json.dumps(data))
    out = tmp_path / "s.npz"
    assert main(["sample", "--protocol", str(proto), "--lab", str(bad), "--n", "64",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err
    assert not out.exists()


# -- the loop -------------------------------------------------------------------------------
def test_lyapunov_variance_reduces_to_the_scalar_feedback_trap_formulas():
    k, d, per = 2.0, 0.4, 0.2
    # no latency: D_T / (k (1 − kΔ/2)) (the discrete-time feedback trap)
    assert zoh_stationary_variance(k, per, 0.0, d, 0.3, 0.0) == pytest.approx(
        d / (k * (1 - k * per / 2)), rel=1e-12)
    # with localisation noise: (2D_TΔ + k²Δ²σ²) / (kΔ(2 − kΔ))
    assert zoh_stationary_variance(k, per, 0.0, d, 0.3, 0.0, noise=0.1) == pytest.approx(
        (2 * d * per + (k * per * 0.1) ** 2) / (k * per * (2 - k * per)), rel=1e-12)
    # latency 0 < δ < Δ: AR(2) with a1 = 1 − k(Δ − δ), a2 = −kδ
    lat = 0.07
    a1, a2, s2 = 1 - k * (per - lat), -k * lat, 2 * d * per
    assert zoh_stationary_variance(k, per, lat, d, 0.3, 0.0) == pytest.approx(
        (1 - a2) * s2 / ((1 + a2) * ((1 - a2) ** 2 - a1**2)), rel=1e-12)


def test_loop_replay_matches_the_closed_form_variance():
    """The loop (period, latency over a period, localisation noise, thermal and active
    noise) in F = −kx: the sample variance of n = 20 000 against the exact stationary value;
    sd of a sample variance √(2/n) = 1 % relative: 4 sd = 4 %, while the loops differ from
    the ideal D_T/k + D_A/(k(1 + kτ)) = 0.325 by 15–100 %."""
    cases = [(0.2, 0.0, 0.0), (0.2, 0.1, 0.1), (0.1, 0.25, 0.2)]
    res = loop_replay(harmonic(), [Loop(*c) for c in cases], 20_000, seed=3)
    ideal = D_T / K + D_A / (K * (1 + K * TAU))
    for c, x in zip(cases, split_loops(res.samples, 1)):
        exact = zoh_stationary_variance(K, c[0], c[1], D_T, TAU, D_A, c[2])
        assert exact > 1.15 * ideal
        assert float(np.var(x)) == pytest.approx(exact, rel=4 * math.sqrt(2 / 20_000)), c


def test_error_grows_at_first_order_with_period_and_latency():
    """Excess variance over the ideal loop (period h, common random numbers) against Δ − h
    and δ: log-log slopes of the measured excess. The order is 1; at these values the closed
    form's slopes are 1.08 and 1.14 (curvature); margin ±0.25 about 1."""
    from activegen.analysis.metrics import log_slope

    h, values = 0.01, np.array([0.04, 0.08, 0.16])
    loops = [Loop(h)] + [Loop(p) for p in values] + [Loop(h, latency=d) for d in values]
    res = loop_replay(harmonic(t_final=6.0), loops, 20_000, seed=5)
    v = [float(np.var(x)) for x in split_loops(res.samples, 1)]
    ex_p, ex_l = np.array(v[1:4]) - v[0], np.array(v[4:7]) - v[0]
    assert np.all(ex_p > 0) and np.all(ex_l > 0)
    assert abs(log_slope(values - h, ex_p) - 1.0) < 0.25
    assert abs(log_slope(values, ex_l) - 1.0) < 0.25


def test_force_limit_above_the_largest_force_changes_nothing_bit_for_bit():
    p = harmonic(t_final=0.5)
    fmax = float(np.max(np.abs(p.force)))
    a = replay(p, 256, seed=0, dt=0.05)
    b = replay(p, 256, seed=0, dt=0.05, max_force=1.01 * fmax)
    c = replay(p, 256, seed=0, dt=0.05, max_force=0.2 * fmax)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.array_equal(a.samples, c.samples)


def test_ideal_lab_replay_is_the_plain_replay(tmp_path):
    proto = tmp_path / "p.npz"
    assert main(["export-potential", "--target", TARGET, "--method", "fox", "--beta", "0.5",
                 "--t-final", "12", "--time-points", "8", "--lab", LAB, "--out", str(proto),
                 "--no-progress"]) == 0
    lab = json.loads(open(LAB).read())
    lab.pop("feedback")
    ideal = tmp_path / "ideal.json"
    ideal.write_text(json.dumps(lab))
    for name, extra in (("plain", []), ("lab", ["--lab", str(ideal)])):
        assert main(["sample", "--protocol", str(proto), "--n", "300", "--seed", "4",
                     "--out", str(tmp_path / f"{name}.npz"), "--no-progress"] + extra) == 0
    with np.load(tmp_path / "plain.npz") as a, np.load(tmp_path / "lab.npz") as b:
        np.testing.assert_array_equal(a["samples"], b["samples"])
        units = json.loads(str(b["info"]))["lab"]["units"]
    assert units["length"] == "um" and units["time"] == "s"  # the lab run's file says its units


def test_check_refuses_a_protocol_without_lab_units(tmp_path, capsys):
    proto = tmp_path / "p.npz"
    assert main(["export-potential", "--target", TARGET, "--method", "fox", "--tau", "0.2",
                 "--time-points", "4", "--out", str(proto), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["lab", "check", "--protocol", str(proto), "--lab", LAB, "--n", "64",
                 "--seed", "0", "--out", str(tmp_path / "chk")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "D_T" in err[0] and "--lab" in err[0]
    assert not (tmp_path / "chk").exists()


# -- the live lookup ---------------------------------------------------------------------------
def test_lookup_needs_no_jax_and_gives_gamma_times_the_force(tmp_path):
    proto = tmp_path / "p.npz"
    assert main(["export-potential", "--target", TARGET, "--method", "fox", "--beta", "0.5",
                 "--t-final", "12", "--time-points", "8", "--lab", LAB, "--out", str(proto),
                 "--no-progress"]) == 0
    code = (
        "import importlib.util, sys, json\n"
        f"spec = importlib.util.spec_from_file_location('lookup', {str(LOOKUP)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        f"f = m.ForceLookup.load({str(proto)!r})\n"
        "print(json.dumps([f([0.7], 3.0).tolist(), 'jax' in sys.modules]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    value, jax_loaded = json.loads(out)
    assert not jax_loaded
    p = load_protocol(proto)
    want = p.meta["lab"]["gamma_pN_s_per_um"] * np.asarray(
        p.force_at(p.t_final - 3.0, np.array([[0.7]])))[0]
    np.testing.assert_allclose(value, want, rtol=1e-5)
