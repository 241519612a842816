"""Where first order breaks down: the validity map (`activegen experiment validity-map`, issue 3
§2) — the error of every method registered with validity_map=True relative to exact over
(τ, σ_min) on a family of 1D mixtures, and the calibration of the τ‖∇F‖ warning;
`run_validity_map` writes validity_map.md, .json and .png."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..analysis.metrics import evaluate
from ..errors import check_count, check_positive
from ..files import write_json, write_text
from ..figures.canvas import pyplot, save_figure
from ..physics.processes import ActiveOU
from ..physics.stepping import default_dt
from ..physics.targets import GaussianMixture
from ..samplers import VALIDITY_THRESHOLD, method_names, sample
from .common import check_values, study_options

#: The 1D mixture family of the validity map: w = (0.3, 0.7), μ = (−2, 1.5), σ = (s, 1.5 s).
VALIDITY_WEIGHTS = (0.3, 0.7)
VALIDITY_MEANS = (-2.0, 1.5)
#: The reference of the validity map, and the methods it compares (from the registry:
#: those registered with validity_map=True).
VALIDITY_REFERENCE = "exact"


def validity_methods() -> tuple[str, ...]:
    """("exact", then every method registered with validity_map=True): fox, naive, fox-sc,
    fox-schedule for the built-in ones."""
    return (VALIDITY_REFERENCE,) + method_names(aliases=False, where=lambda m: m.validity_map)


def _heatmap_methods() -> tuple[str, ...]:
    """The validity map's heatmaps: every compared method but the reference."""
    return validity_methods()[1:]


def _extra_methods() -> tuple[str, ...]:
    """Compared methods beyond the fox/naive pair of the calibration (own table columns)."""
    return tuple(m for m in _heatmap_methods() if m not in ("fox", "naive"))


def __getattr__(name):
    if name == "VALIDITY_METHODS":
        return validity_methods()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def validity_target(s: float) -> GaussianMixture:
    """The validity map's mixture with narrowest mode width σ_min = s (other mode 1.5 s)."""
    return GaussianMixture.from_stds(list(VALIDITY_WEIGHTS), [[m] for m in VALIDITY_MEANS],
                                     [s, 1.5 * s])


def validity_map(
    taus=(0.025, 0.05, 0.1, 0.2),
    sigmas=(0.3, 0.4, 0.6, 0.8),
    n: int = 20_000,
    seed: int = 0,
    beta: float = 1.0,
    d_active: float = 1.0,
    t_final: float = 3.0,
    methods=None,
    progress: bool = False,
    log=None,
    client=None,
) -> dict:
    """Accuracy of the first-order samplers over a (τ, σ_min) grid of 1D mixtures
    (`validity_target`), D_T = 0. For each cell every method in `methods` (exact, fox, naive)
    runs with n particles from the exact law at T = `t_final` (every sampler starts from
    the exact marginal or joint law at T, so T = 3 loses nothing against T = 6); records W1
    to the target, its finite-sample floor (mean and sd over exact draws), each method's
    ratio to the reference max(exact W1, floor) (exact is correct up to sampling noise: its
    W1 is itself a noisy draw of the floor, and one seed's draw is shared by every cell) and
    the validity diagnostic `info["tau_grad_force"]` (largest ensemble
    mean of τ‖∇F_0‖ met by the particles) of fox and naive, and the scale τD_A/σ_min².

    Returns {"cells": [...], "taus", "sigmas", "n", "seed", "t_final", ...}; each cell has
    "tau", "sigma_min", "tau_d_over_sigma2", "w1" {method: W1}, "floor", "floor_sd",
    "reference", "ratio" {method: W1 / reference}, "tau_grad_force" {fox, naive}, "wall_s" {method}.
    methods: default `validity_methods()`. client: a Dask client (the cells run as tasks).
    """
    methods = validity_methods() if methods is None else tuple(methods)
    total = len(taus) * len(sigmas)
    args = [(float(s), float(tau), methods, n, seed, beta, d_active, t_final)
            for s in sigmas for tau in taus]
    if client is None:  # one at a time, logged as it goes
        results = (validity_cell(*a, progress=progress) for a in args)
    else:
        from ..cluster.client import map_cells

        results = iter(map_cells(client, validity_cell, args, name="validity-map"))
    cells = []
    for i, s in enumerate(sigmas):
        for j, tau in enumerate(taus):
            cell = next(results)
            cells.append(cell)
            if log is not None:
                k = i * len(taus) + j + 1
                log(f"[{k}/{total}] σ_min {s:g} τ {tau:g}: "
                    + ", ".join(f"{m} {v:.4f}" for m, v in cell["w1"].items())
                    + f" (floor {cell['floor']:.4f}); τ|∇F| fox "
                    + f"{cell['tau_grad_force'].get('fox', float('nan')):.3f}")
    return {"cells": cells, "taus": [float(t) for t in taus],
            "sigmas": [float(s) for s in sigmas], "n": n, "seed": seed, "t_final": t_final,
            "beta": beta, "d_active": d_active, "d_thermal": 0.0, "methods": list(methods),
            "family": {"weights": list(VALIDITY_WEIGHTS), "means": list(VALIDITY_MEANS),
                       "stds": "(σ_min, 1.5 σ_min)"}}


def validity_cell(s, tau, methods, n, seed, beta, d_active, t_final, progress=False) -> dict:
    """One (σ_min, τ) cell of `validity_map`: every method in it."""
    target = validity_target(s)
    proc = ActiveOU(beta, 0.0, d_active, tau)
    cell = {"tau": tau, "sigma_min": s, "tau_d_over_sigma2": tau * d_active / s ** 2,
            "w1": {}, "ratio": {}, "tau_grad_force": {}, "wall_s": {}}
    for m in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sample(target, m, proc, n, seed=seed, t_final=t_final, progress=progress,
                         **study_options(m))
        ev = evaluate(res.samples, target, seed=seed)
        cell["w1"][m] = ev["metrics"]["w1"]
        cell["floor"], cell["floor_sd"] = ev["floor"]["w1"], ev["floor_sd"]["w1"]
        cell["wall_s"][m] = res.info.get("wall_s")
        if "tau_grad_force" in res.info:
            cell["tau_grad_force"][m] = res.info["tau_grad_force"]
    if "exact" in cell["w1"]:
        ref = max(cell["w1"]["exact"], cell["floor"])
        cell["reference"] = ref
        cell["ratio"] = {m: v / ref for m, v in cell["w1"].items()}
    return cell


def fox_fails(cell: dict, k: float | None = None) -> bool:
    """The calibration criterion: in this cell the first-order potential V_F fails when
    fox's W1 exceeds naive's (the first-order correction does harm), or, with k given,
    exceeds k × the reference max(exact W1, floor)."""
    w = cell["w1"]
    return w["fox"] > w["naive"] or (k is not None and w["fox"] > k * cell["reference"])


def calibrate_threshold(result: dict, k: float | None = None) -> dict:
    """The diagnostic value τ‖∇F‖ (fox's) that separates the validity map's cells where fox
    works from those where it fails (`fox_fails`): the gap between the largest working
    value below the smallest failing one and that failing one (its geometric mean), and
    the cells on the wrong side of a threshold at that midpoint."""
    diag = [(c["tau_grad_force"]["fox"], fox_fails(c, k)) for c in result["cells"]]
    bad = [d for d, f in diag if f]
    if not bad:
        return {"threshold": None, "k": k, "min_failing": None, "max_working_below": None,
                "misclassified": 0}
    lo_bad = min(bad)
    good = [d for d, f in diag if not f and d < lo_bad]
    hi_good = max(good) if good else lo_bad / 2
    thr = float(np.sqrt(hi_good * lo_bad))
    wrong = sum((d > thr) != f for d, f in diag)
    return {"threshold": thr, "k": k, "min_failing": lo_bad, "max_working_below": hi_good,
            "misclassified": int(wrong)}


def validity_markdown(result: dict, k: float = 3.0) -> str:
    """The validity map as Markdown: per (σ_min, τ) W1 of exact/fox/naive, floor, the ratios
    to the reference max(exact, floor), τD_A/σ_min², fox's diagnostic, and whether fox is
    worse than naive / worse than k × the reference."""
    extra = [m for m in _extra_methods() if m in result["methods"]]
    lines = [
        "| σ_min | τ | τD/σ² | exact W1 | fox W1 | naive W1 | "
        + "".join(f"{m} W1 | " for m in extra) + "floor | fox/ref | naive/ref | "
        + "".join(f"{m}/ref | " for m in extra)
        + f"τ‖∇F‖ (fox) | fox > naive | fox > {k:g}× ref |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|" + "---|---|" * len(extra),
    ]
    for c in result["cells"]:
        w, r = c["w1"], c["ratio"]
        lines.append(
            f"| {c['sigma_min']:g} | {c['tau']:g} | {c['tau_d_over_sigma2']:.3g} | "
            f"{w['exact']:.4f} | {w['fox']:.4f} | {w['naive']:.4f} | "
            + "".join(f"{w[m]:.4f} | " for m in extra)
            + f"{c['floor']:.4f} | {r['fox']:.2f} | {r['naive']:.2f} | "
            + "".join(f"{r[m]:.2f} | " for m in extra)
            + f"{c['tau_grad_force']['fox']:.3f} | "
            f"{'yes' if w['fox'] > w['naive'] else 'no'} | "
            f"{'yes' if w['fox'] > k * c['reference'] else 'no'} |")
    lines.append("")
    lines.append("ref = max(exact W1, floor): the exact sampler is right up to sampling noise.")
    for kk, name in ((None, "fox worse than naive"),
                     (k, f"fox worse than naive or than {k:g}× ref")):
        cal = calibrate_threshold(result, kk)
        if cal["threshold"] is None:
            lines.append(f"- {name}: in no cell.")
        else:
            lines.append(
                f"- {name}: from τ‖∇F‖ = {cal['min_failing']:.3f}; the largest working value "
                f"below it is {cal['max_working_below']:.3f} (midpoint {cal['threshold']:.3f}, "
                f"{cal['misclassified']} cell(s) on the wrong side of it).")
    return "\n".join(lines)


def plot_validity(result: dict, path, threshold: float | None = None, k: float = 3.0) -> None:
    """Panels of the validity map, W1 / max(W1_exact, floor) over (τ, σ_min), log colour scale with
    the values written in the cells: fox, naive, fox-sc, fox-schedule (those run); a last panel: fox's ratio against its
    diagnostic τ‖∇F‖ (failing cells red), with the threshold as a vertical line."""
    from matplotlib.colors import LogNorm

    plt = pyplot()
    taus, sigmas = result["taus"], result["sigmas"]
    cell = {(c["sigma_min"], c["tau"]): c for c in result["cells"]}
    heat = [m for m in _heatmap_methods() if m in result["methods"]]
    grids = {m: np.array([[cell[(s, t)]["ratio"][m] for t in taus] for s in sigmas])
             for m in heat}
    vmax = max(float(np.nanmax(g)) for g in grids.values())
    norm = LogNorm(vmin=1.0 / 1.5, vmax=max(vmax, 2.0))
    fig, axes = plt.subplots(1, len(heat) + 1, figsize=(4.4 * (len(heat) + 1), 4.2),
                             gridspec_kw={"width_ratios": [1] * len(heat) + [1.1]})
    for ax, m in zip(axes[:-1], heat):
        im = ax.imshow(grids[m], origin="lower", cmap="magma_r", norm=norm, aspect="auto")
        for i, s in enumerate(sigmas):
            for j, t in enumerate(taus):
                v = grids[m][i, j]
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=9,
                        color="white" if v > 6 else "black")
        ax.set_xticks(range(len(taus)), [f"{t:g}" for t in taus])
        ax.set_yticks(range(len(sigmas)), [f"{s:g}" for s in sigmas])
        ax.set(xlabel="τ", ylabel="σ_min (other mode 1.5 σ_min)",
               title=f"{m}: W1 / max(W1 exact, floor)")
    fig.colorbar(im, ax=axes[-2], shrink=0.9, label="W1 / max(W1 exact, floor)")
    ax = axes[-1]
    x = np.array([c["tau_grad_force"]["fox"] for c in result["cells"]])
    y = np.array([c["ratio"]["fox"] for c in result["cells"]])
    worse = np.array([fox_fails(c) for c in result["cells"]])
    far = np.array([fox_fails(c, k) for c in result["cells"]]) & ~worse
    ok = ~worse & ~far
    ax.scatter(x[ok], y[ok], c="tab:blue", label="fox better than naive, ≤ %g× ref" % k)
    ax.scatter(x[far], y[far], c="tab:orange", marker="D",
               label=f"fox better than naive but > {k:g}× ref")
    ax.scatter(x[worse], y[worse], c="tab:red", marker="s", label="fox worse than naive")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:g}")
    ax.set(xscale="log", yscale="log", xlabel="diagnostic: max over s of mean τ‖∇F₀‖",
           ylabel="fox W1 / max(W1 exact, floor)", title="fox's error against the diagnostic")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, 90)
    plt.close(fig)


def validity_seconds(taus, n_sigmas: int, n: int, t_final: float, n_methods: int) -> float:
    """A rough wall time (s) of the validity map on 2 cores."""
    return sum(n_methods * (3.0 + n * t_final / default_dt(float(t)) / 1e7)
               for t in taus) * n_sigmas


def run_validity_map(out_dir, taus=(0.025, 0.05, 0.1, 0.2), sigmas=(0.3, 0.4, 0.6, 0.8), *,
                     n: int = 20_000, seed: int = 0, t_final: float = 3.0, log=print,
                     client=None):
    """The validity map (`validity_map`; client: a Dask client) with its calibration, written as validity_map.md,
    .json and .png (`plot_validity`, the warning threshold drawn). Returns (result, md)."""
    check_values("taus", taus)
    check_values("sigmas", sigmas)
    check_count("n", n)
    check_positive("t_final", t_final)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    methods = validity_methods()
    if log is not None:
        est = validity_seconds(taus, len(sigmas), n, t_final, len(methods))
        log(f"validity-map: {len(taus)} τ × {len(sigmas)} σ_min × {len(methods)} methods "
            f"({', '.join(methods)}) of {n} particles, roughly {est / 60:.1f} min on 2 cores"
            + (" — this will take a while" if est > 300 else ""))
    res = validity_map(taus, sigmas, n=n, seed=seed, t_final=t_final, progress=False,
                       log=log, client=client)
    res["calibration"] = calibrate_threshold(res)
    res["validity_threshold"] = VALIDITY_THRESHOLD
    md = validity_markdown(res)
    write_text(out / "validity_map.md", md + "\n")
    write_json(out / "validity_map.json", res)
    plot_validity(res, out / "validity_map.png", threshold=VALIDITY_THRESHOLD)
    return res, md
