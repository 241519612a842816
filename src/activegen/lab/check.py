"""`activegen lab check`: how imperfect may the loop be? (docs/lab.md, "lab check").

Each imperfection of the lab's loop is scanned alone, the others ideal, over SCAN factors
around the lab's value: the update period Δ and the latency δ (s), the localisation noise σ
(µm) and the force limit (pN). The ideal loop updates every step h = Δ₀/2 with nothing
else wrong (Δ₀ the lab's period, or the ideal replay's step): the ideal replay up to O(h).
All the loops run side by side in one compiled run with common random numbers
(`feedback.loop_replay`), the ideal replay (`protocol.replay`) in another. The generated
distribution's error (W1 against the target, with its finite-sample floor, both from the
caller) is compared with the ideal loop's (same noises: the comparison sees the imperfection,
not the draw): the tolerance of an imperfection is the worst scanned value whose error stays
within TOLERANCE × the ideal loop's (and every better value too). The lab needs, per sample, the protocol's T; to resolve the ideal replay's
systematic error b = √(max(e² − floor², 0)) above the floor (floor ∝ 1/√N) it needs about
N = n (2·floor/b)² samples.
"""

from __future__ import annotations

import math

import numpy as np

from .feedback import Loop, default_period, loop_replay, split_loops
from .protocol import Protocol, replay

#: The error allowed, in units of the ideal replay's.
TOLERANCE = 1.5
#: Scan factors (× the lab's value): period, latency, noise grow; the force limit shrinks.
SCAN = {"update_period_s": (1, 2, 4, 8, 16, 32), "latency_s": (0, 1, 2, 4, 8, 16),
        "position_noise_um": (0, 1, 3, 10, 30, 100),
        "max_force_pN": (2, 1, 0.5, 0.25, 0.125, 0.0625)}
#: How a tolerance reads (key -> (label, unit, scale, worse is larger)).
LABELS = {"update_period_s": ("update period", "ms", 1e3, True),
          "latency_s": ("latency", "ms", 1e3, True),
          "position_noise_um": ("localisation noise", "nm", 1e3, True),
          "max_force_pN": ("force limit", "pN", 1.0, False)}


def scan_centres(protocol: Protocol, lab) -> dict:
    """The value each scan is centred on: the lab's, else Δ₀ = `default_period` for the
    period and the latency, the grid spacing for the noise, the table's largest |γF| for
    the force limit."""
    fb = lab.feedback
    period = fb.update_period_s or default_period(protocol)
    fmax = float(np.max(np.linalg.norm(np.asarray(protocol.force, float), axis=-1)))
    return {"update_period_s": period, "latency_s": fb.latency_s or period,
            "position_noise_um": fb.position_noise_um or float(np.min(protocol.spacing)),
            "max_force_pN": fb.max_force_pN or lab.gamma * fmax}


def scan_loops(centres: dict, gamma: float) -> tuple[Loop, list]:
    """(the reference loop, [(key, value, Loop)]): each imperfection alone, the period of
    the others Δ₀/2 (h)."""
    h = centres["update_period_s"] / 2
    ref = Loop(period=h)
    out = []
    for key, factors in SCAN.items():
        for f in factors:
            v = f * centres[key]
            kw = {"update_period_s": dict(period=v), "latency_s": dict(latency=v),
                  "position_noise_um": dict(noise=v), "max_force_pN": dict(cap=v / gamma)}
            out.append((key, v, Loop(**{"period": h, **kw[key]})))
    return ref, out


def tolerance(values, ratios, worse_is_larger: bool, limit: float = TOLERANCE):
    """(the worst value whose error and every better one's stay within limit, or None
    where even the best fails; True if every scanned value passes)."""
    order = np.argsort(values) if worse_is_larger else np.argsort(values)[::-1]
    best = None
    for k in order:
        if ratios[k] > limit:
            return best, False
        best = float(values[k])
    return best, True


def lab_check(protocol: Protocol, lab, n: int, seed: int, error, floor: float,
              progress: bool = False) -> dict:
    """The scan (module doc). error(samples (n, d)) -> the error against the target;
    floor: its finite-sample floor at n. Returns a JSON-ready dict: rows (key, value,
    effective loop, error, ratio), tolerances, the ideal error and floor, T and the
    samples needed."""
    import time

    t0 = time.perf_counter()
    centres = scan_centres(protocol, lab)
    ref, scan = scan_loops(centres, lab.gamma)
    ideal = replay(protocol, n, seed=seed, progress=progress)
    e_ideal = float(error(ideal.samples))
    loops = [ref] + [lp for _, _, lp in scan]
    res = loop_replay(protocol, loops, n, seed=seed, progress=progress)
    parts = split_loops(res.samples, protocol.dim)
    errors = [float(error(x)) for x in parts]
    rows = [dict(key=k, value=v, error=e, ratio=e / errors[0], loop=eff)
            for (k, v, _), e, eff in zip(scan, errors[1:], res.info["loops"][1:])]
    tol = {}
    for key, (_, _, _, larger) in LABELS.items():
        sub = [r for r in rows if r["key"] == key]
        val, all_pass = tolerance(np.array([r["value"] for r in sub]),
                                  np.array([r["ratio"] for r in sub]), larger)
        tol[key] = dict(value=val, all_pass=all_pass, lab=getattr(lab.feedback, key))
    bias = math.sqrt(max(e_ideal**2 - floor**2, 0.0))
    need = None if bias == 0 else int(math.ceil(n * (2 * floor / bias) ** 2))
    return dict(n=n, seed=seed, t_final_s=protocol.t_final, ideal_error=e_ideal, floor=floor,
                reference_error=errors[0], step_s=res.info["step"], centres=centres,
                tolerance_factor=TOLERANCE, rows=rows, tolerances=tol,
                samples_to_resolve=need,
                lab_time_s=None if need is None else need * protocol.t_final,
                wall_s=time.perf_counter() - t0)


def _fmt(key: str, value) -> str:
    if value is None:
        return "—"
    label, unit, scale, _ = LABELS[key]
    return f"{value * scale:.3g} {unit}"


def summary(result: dict) -> str:
    """The short text: the tolerances (as an experimenter reads them) and the lab time."""
    parts = []
    for key, word in (("update_period_s", "update at"), ("latency_s", "latency"),
                      ("position_noise_um", "localisation"), ("max_force_pN", "force range")):
        t = result["tolerances"][key]
        v = t["value"]
        if v is None:
            txt = "(fails at every scanned value)"
        elif key == "update_period_s":
            txt = f"≥ {1.0 / v:.3g} Hz"
        else:
            txt = ("≥ " if key == "max_force_pN" else "≤ ") + _fmt(key, v)
        parts.append(f"{word} {txt}" + (" (all scanned pass)" if t["all_pass"] else ""))
    lines = [", ".join(parts) + f" keep the error within {result['tolerance_factor']:g}× "
             f"the ideal loop's (W1 {result['reference_error']:.4f}; the ideal replay's "
             f"{result['ideal_error']:.4f}, floor {result['floor']:.4f} at n = {result['n']})."]
    need = result["samples_to_resolve"]
    tail = (f"about {need} samples ({need * result['t_final_s'] / 3600:.3g} h of one trap) "
            "resolve the ideal replay's error above the floor" if need is not None else
            "the ideal replay's error is not resolved above the floor at this n")
    lines.append(f"One sample takes T = {result['t_final_s']:g} s in the lab; {tail}.")
    return "\n".join(lines)


def table(result: dict) -> str:
    """The scan as a markdown table."""
    out = ["| imperfection | value | W1 | × ideal loop | within |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        label = LABELS[r["key"]][0]
        out.append(f"| {label} | {_fmt(r['key'], r['value'])} | {r['error']:.4f} | "
                   f"{r['ratio']:.2f} | {'yes' if r['ratio'] <= result['tolerance_factor'] else 'no'} |")
    return "\n".join(out)
