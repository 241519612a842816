"""`activegen experiment digits`: generate 8×8 digits with learned scores (docs/digits.md).

For each τ: train (or reuse, from out/models/) the digits energy model of the x-marginal
and the joint model (for `exact`) with `learning.network.DIGITS_TRAIN_DEFAULTS`; generate n digits
with each method at the same n, step and seed; score them with `digit_metrics.report`
against the held-out images, beside the floor (training images of the same number);
write digits.json, digits.md (the table) and one image grid per (τ, method).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from ..analysis import digit_metrics
from ..learning.datasets import DIGITS_SHAPE, digits
from ..errors import ActivegenError, check_count, check_positive
from ..physics.processes import ActiveOU
from .common import STUDY_SCHEME
from ..samplers import get_method

#: an FD above this is reported as diverged (the samples left the images' range entirely)
DIVERGED_FD = 1e4
METHODS = ("passive", "ode", "naive", "fox", "fox-sc", "exact")
TAUS = (0.02, 0.05, 0.1)


def model_dir(out_dir, tau: float, joint: bool) -> Path:
    return Path(out_dir) / "models" / f"tau{tau:g}{'-joint' if joint else ''}"


def digits_model(out_dir, tau: float, joint: bool, *, steps=None, log=print, **opts):
    """The trained digits model for τ (joint: for `exact`): loaded from out/models/ when
    it is there and complete, trained (and saved there) otherwise."""
    from ..learning.checkpoint import CONFIG_FILE
    from ..learning.model import load_model
    from ..learning.network import data_defaults
    from ..learning.training import train

    path = model_dir(out_dir, tau, joint)
    cfg = dict(data_defaults("digits"), **opts)
    if steps is not None:
        cfg["steps"] = check_count("train_steps", steps)
    if (path / CONFIG_FILE).exists():
        m = load_model(path)
        if m.config["step"] >= m.config["steps"]:
            return m, m.config.get("train_seconds", float("nan"))
        if log:
            log(f"resuming {path}")
        m, rep = train(None, path, resume=True)
        return m, rep["seconds"]
    if log:
        log(f"training {path} ({cfg['steps']} steps)")
    m, rep = train(digits("train")[0], path, process=ActiveOU(1.0, 0.0, 1.0, tau),
                   source="digits", marginal="joint" if joint else "x", **cfg)
    return m, rep["seconds"]


def run_method(model, joint_model, method: str, tau: float, n: int, dt: float | None,
               seed: int, scheme: str = STUDY_SCHEME, t_min: float = 0.0):
    """Samples (n, 64) of `method` on the model (exact: the joint one) and the run's info,
    warnings and seconds. scheme: "euler", or "second-order" (the method's own second-order
    scheme, heun or lawson, and with dt None its default step); t_min > 0: the end game
    (`samplers.endgame`)."""
    from ..samplers import sample

    m = joint_model if get_method(method).needs_joint else model
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            own = get_method(method).options.get("scheme")
            opts = {} if own is None else {"scheme": own if scheme == "second-order"
                                           else scheme}
            res = sample(m, method, m.process, n, seed=seed, t_final=m.config["t_max"], dt=dt,
                         t_min=t_min, **opts)
        except ActivegenError as exc:  # the sampler's finiteness check: a diverged run
            if "non-finite" not in str(exc):
                raise
            return None, {"error": str(exc), "seconds": time.perf_counter() - t0,
                          "warnings": sorted({str(w.message).split(";")[0] for w in caught})}
    info = {k: v for k, v in res.info.items() if isinstance(v, (int, float, str, bool))}
    info["seconds"] = time.perf_counter() - t0
    info["warnings"] = sorted({str(w.message).split(";")[0] for w in caught})
    return m.to_data(res.samples), info


def run_digits(out_dir, *, taus=TAUS, methods=METHODS, n: int = 1500, seed: int = 0,
               dt: float | None = None, train_steps: int | None = None, log=print,
               train_options: dict | None = None, scheme: str = STUDY_SCHEME,
               t_min: float = 0.0) -> dict:
    """The digits study: `taus` × `methods` (module doc). dt: the step of every method
    (default `stepping.default_dt(τ)` with the study's euler steps, each method's own with
    scheme="second-order": its heun or lawson scheme); t_min > 0: every method with the end game
    (`samplers.endgame`); train_steps: the models' DSM steps (default 20 000). Returns the
    result dict (also written to out_dir/digits.json)."""
    from ..figures.samples import plot_images
    from ..physics.stepping import default_dt

    n = check_count("n", n)
    for m in methods:
        get_method(m)  # unknown names refused before any work
    taus = [check_positive("tau", t) for t in taus]
    need = max((get_method(m).min_n(64) for m in methods if get_method(m).min_n), default=0)
    if n < need:
        raise ActivegenError(f"n must be >= {need} for the methods {', '.join(methods)} in "
                             f"d = 64; got {n}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    floor = digit_metrics.floor_report(n, seed)
    result = {"n": n, "seed": seed, "floor": floor, "scheme": scheme, "t_min": t_min,
              "cells": []}
    label = ("" if scheme == STUDY_SCHEME else f" ({scheme})") + (
        f" + end game t_min = {t_min:g}" if t_min else "")
    for tau in taus:
        h = dt if dt is not None else (default_dt(tau) if scheme == STUDY_SCHEME else None)
        model, secs = digits_model(out, tau, False, steps=train_steps, log=log,
                                   **(train_options or {}))
        joint = None
        if any(get_method(m).needs_joint for m in methods):
            joint, _ = digits_model(out, tau, True, steps=train_steps, log=log,
                                        **(train_options or {}))
        for m in methods:
            if log:
                log(f"tau = {tau:g}: {m}{label} ({n} digits, dt = {h or 'default'})")
            x, info = run_method(model, joint, m, tau, n, h, seed, scheme, t_min)
            if x is None:  # NaN/inf samples: the run diverged (info["error"])
                rep = {"fd": float("inf"), "out_of_range": 1.0}
            else:
                rep = digit_metrics.report(x)
                tag = (f"_{scheme}" if scheme != STUDY_SCHEME else "") + (
                    f"_tmin{t_min:g}" if t_min else "")
                png = out / f"digits_tau{tau:g}_{m}{tag}.png"
                title = (f"{m}{label}, τ = {tau:g}: FD {rep['fd']:.3g} "
                         f"(floor {floor['fd']:.1f})")
                plot_images(np.clip(x, -3, 3), png, DIGITS_SHAPE, title)
            result["cells"].append({"tau": tau, "method": m + label, "metrics": rep,
                                    "info": info, "train_seconds": secs})
            if log:
                log(f"  FD {rep['fd']:.2f}  precision {rep.get('precision', 0):.2f}  "
                    f"recall {rep.get('recall', 0):.2f}  {info['seconds']:.0f} s")
            _write(out, result)
    return result


def _write(out: Path, result: dict):
    from ..files import write_json, write_text

    write_json(out / "digits.json", result)
    write_text(out / "digits.md", markdown(result))


def markdown(result: dict) -> str:
    """The table of docs/digits.md."""
    f = result["floor"]
    rows = ["| τ | method | FD | precision | recall | smallest class | memorisation | "
            "out of range | τ‖∇F‖ | s |", "|---|---|---|---|---|---|---|---|---|---|",
            f"| — | *training images (floor)* | *{f['fd']:.2f}* | *{f['precision']:.2f}* | "
            f"*{f['recall']:.2f}* | *{f['min_class']:.1%}* | | | | |"]
    for c in result["cells"]:
        r, i = c["metrics"], c["info"]
        tg = i.get("tau_grad_force")
        tg = "" if tg is None else f"{tg:.3g}"
        if not r["fd"] < DIVERGED_FD:  # far-out samples make every k-NN ball cover all
            fd = "NaN/inf samples" if "error" in i else f"{r['fd']:.1e}"
            rows.append(f"| {c['tau']:g} | {c['method']} | diverged ({fd}) | — | — "
                        f"| — | — | {r.get('out_of_range', 1):.1%} | {tg} | {i['seconds']:.0f} |")
            continue
        rows.append(
            f"| {c['tau']:g} | {c['method']} | {r['fd']:.2f} | {r['precision']:.2f} | "
            f"{r['recall']:.2f} | {r['min_class']:.1%} | {r['memorisation']:.2f} | "
            f"{r['out_of_range']:.1%} | {tg} | {i['seconds']:.0f} |")
    return "\n".join(rows) + "\n"
