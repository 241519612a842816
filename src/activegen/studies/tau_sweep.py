"""Reproducible experiments: the demo, the accuracy-versus-τ sweep, the validity map and the
results page's data (docs/theory.md §5). The `run_*` pipelines run an experiment and write its
files (md, json, png); they are what the CLI calls, and callable from Python with plain
arguments."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..files import save_figure as _save_figure, write_json, write_text
from ..analysis.metrics import evaluate, log_slope
from ..physics.processes import ActiveOU
from ..samplers import get_method, method_names, sample
from ..physics.stepping import default_dt
from ..figures.potential import draw_density_2d, plot_sweep
from ..samplers import VALIDITY_THRESHOLD
from ..physics.targets import GaussianMixture, default_target_1d, default_target_2d

#: The scheme of the studies whose figures docs/ quotes (the τ sweeps and the validity map,
#: the digits study, the learned gallery, the schedule, protocol and driver sweeps): the
#: first-order steps at their fine default Δs = min(τ/20, 0.002), so that a study of τ is
#: not also one of the step. The samplers' own defaults are second order (`samplers.schemes`).
STUDY_SCHEME = "euler"


def study_options(method) -> dict:
    """`sample` options of a study run: {"scheme": STUDY_SCHEME} for a method that has
    schemes, else none."""
    return {"scheme": STUDY_SCHEME} if "scheme" in get_method(method).options else {}


def tau_sweep(
    target: GaussianMixture,
    taus,
    methods,
    n: int,
    seed: int | list[int] = 0,
    beta: float = 1.0,
    d_active: float = 1.0,
    d_thermal: float = 0.0,
    t_final: float = 6.0,
    progress: bool = False,
    driver: str = "ou",
    driver_correction: bool = True,
    keep_samples=(),
    client=None,
) -> dict:
    """Run each method at each τ (client: a Dask client, the cells run as tasks); returns rows of metrics with floors and fitted slopes of
    W1 against τ (log–log least squares over every seed's row with W1 above twice its
    floor, or over all rows when fewer than two τ are resolved: then the slope is
    floor-limited, result["slope_fit"][method]["floor_limited"], and says little about
    the order). `seed` may be a list: one
    row per seed. `driver` (ou, rtp, abp) drives fox/ucn/naive. For the τ in `keep_samples`
    the first seed's samples are kept in result["samples"][method][τ] (arrays: drop that
    key before writing JSON; `plot_densities` draws them)."""
    seeds = [seed] if isinstance(seed, int) else list(seed)
    rows = []
    kept: dict = {}
    keep = {float(t) for t in keep_samples}
    cells = [(target, m, float(tau), sd, n, beta, d_thermal, d_active, t_final, driver,
              driver_correction, float(tau) in keep and sd == seeds[0])
             for tau in taus for m in methods for sd in seeds]
    if client is None:
        done = [sweep_cell(*c, progress=progress) for c in cells]
    else:
        from ..cluster.client import map_cells

        done = map_cells(client, sweep_cell, cells, name="tau-sweep")
    for c, (row, x) in zip(cells, done):
        if x is not None:
            kept.setdefault(row["method"], {})[row["tau"]] = x
        rows.append(row)
    slopes, fits = {}, {}
    for m in methods:
        r = [x for x in rows if x["method"] == m]
        # fit only points resolved above the floor (W1 > 2 floors), when two τ remain
        above = [x for x in r if x["metrics"]["w1"] > 2 * x["floor"]["w1"]]
        resolved = len({x["tau"] for x in above}) >= 2
        use = above if resolved else r
        slopes[m] = log_slope([x["tau"] for x in use], [x["metrics"]["w1"] for x in use])
        fits[m] = {"taus": sorted({x["tau"] for x in use}), "floor_limited": not resolved}
    out = {"rows": rows, "slopes": slopes, "slope_fit": fits, "target": target.to_dict()}
    if kept:
        out["samples"] = kept
    return out


def sweep_cell(target, m, tau, sd, n, beta, d_thermal, d_active, t_final, driver,
               driver_correction, keep, progress=False):
    """One cell of `tau_sweep`: (row, the samples if `keep` else None)."""
    from ..physics.drivers import DRIVERS

    proc = ActiveOU(beta, d_thermal, d_active, tau)
    drv = DRIVERS[driver].from_effective(tau, d_active, target.dim)
    kw = ({"driver": drv, "driver_correction": driver_correction}
          if get_method(m).active and driver != "ou" else {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sample(target, m, proc, n, seed=sd, t_final=t_final, progress=progress, **kw,
                     **study_options(m))
    ev = evaluate(res.samples, target, seed=sd)
    row = {"method": m, "tau": tau, "seed": sd, **ev, "info": res.info}
    return row, (res.samples if keep else None)


def sweep_seconds(dim: int, taus, n_methods: int, n: int, n_seeds: int = 1,
                  t_final: float = 6.0) -> float:
    """A rough wall time (s) of a sweep on 2 shared cores: ~1·10⁷ particle-steps/s in 1D,
    ~3·10⁶ in 2D (the 4-mode mixture), ~4 s of compile and evaluation per run."""
    import math

    rate = 1e7 if dim == 1 else 3e6
    steps = sum(math.ceil(t_final / default_dt(float(t))) for t in taus)
    return n_methods * n_seeds * (steps * n / rate + 4.0 * len(taus))


def density_taus(taus, k: int = 3) -> list[float]:
    """Up to k τ of a sweep for the density figure: smallest, largest and one between."""
    ts = sorted({float(t) for t in taus})
    if len(ts) <= k:
        return ts
    idx = np.unique(np.round(np.linspace(0, len(ts) - 1, k)).astype(int))
    return [ts[i] for i in idx]


def plot_densities(result: dict, path, target: GaussianMixture | None = None) -> None:
    """Generated against exact densities: one panel per (method, kept τ) of a sweep run
    with `keep_samples` (rows: methods, columns: τ); 1D a histogram with the exact density
    curve, 2D a 2D histogram with the exact density's contours (`plots.draw_samples`)."""
    from ..figures.potential import draw_samples, pyplot, save_figure

    kept = result["samples"]
    target = target or GaussianMixture.from_dict(result["target"])
    methods = list(kept)
    taus = sorted({t for m in methods for t in kept[m]})
    w1 = {(r["method"], r["tau"]): r["metrics"]["w1"] for r in result["rows"]}
    plt = pyplot()
    size = 2.6 if target.dim == 1 else 2.9
    fig, axes = plt.subplots(len(methods), len(taus), squeeze=False,
                             figsize=(size * 1.25 * len(taus), size * len(methods)),
                             sharex=target.dim == 1)
    for i, m in enumerate(methods):
        for j, t in enumerate(taus):
            ax = axes[i, j]
            if t not in kept[m]:
                ax.axis("off")
                continue
            x = np.asarray(kept[m][t], float)
            draw_samples(ax, x, target, f"{m}, τ = {t:g}: W1 {w1.get((m, t), np.nan):.3f}",
                         bins=60, legend=False)
            ax.title.set_fontsize(8)
            ax.tick_params(labelsize=7)
            ax.set_xlabel("")
            ax.set_ylabel("")
    fig.suptitle("generated (grey histogram) against the exact density (red)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, 80)
    plt.close(fig)


def sweep_markdown(result: dict) -> str:
    """The sweep as a Markdown table (W1 with its floor, histogram KL, moment errors)."""
    lines = [
        "| method | τ | seed | W1 | W1 floor | hist KL | KL floor | mean err | cov err |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        m, f = r["metrics"], r["floor"]
        lines.append(
            f"| {r['method']} | {r['tau']:g} | {r['seed']} | {m['w1']:.4f} | {f['w1']:.4f} | "
            f"{m.get('hist_kl', float('nan')):.4f} | {f.get('hist_kl', float('nan')):.4f} | "
            f"{m['mean_error']:.4f} | {m['cov_error']:.4f} |"
        )
    lines.append("")
    lines.append(
        "Fitted slope of log W1 against log τ: "
        + ", ".join(f"{k} {v:.2f}{_floor_mark(result, k)}" for k, v in result["slopes"].items())
    )
    note = _floor_note(result)
    if note:
        lines.append("")
        lines.append(note)
    return "\n".join(lines)


def _floor_limited(result: dict) -> list[str]:
    return [m for m, f in result.get("slope_fit", {}).items() if f.get("floor_limited")]


def _floor_mark(result: dict, m: str) -> str:
    return "*" if m in _floor_limited(result) else ""


def _floor_note(result: dict) -> str:
    """The footnote of a floor-limited slope (fewer than two τ resolved above twice the
    floor: fitted over every point, most of them at the finite-sample floor)."""
    bad = _floor_limited(result)
    if not bad:
        return ""
    return ("\\* " + ", ".join(bad) + ": fewer than two τ have W1 above twice the "
            "finite-sample floor, so the slope is fitted over every point, most of them at "
            "the floor: floor-limited, it does not measure an order.")


def sweep_pivot_markdown(result: dict) -> str:
    """The sweep's W1 as a τ × method table (mean over seeds), with the floor and the
    fitted slopes (marked * with a footnote where floor-limited): the compact form of
    `sweep_markdown`."""
    methods = list(result["slopes"])
    taus = sorted({r["tau"] for r in result["rows"]})

    def cell(m, t, key="metrics"):
        v = [r[key]["w1"] for r in result["rows"] if r["method"] == m and r["tau"] == t]
        return float(np.mean(v)) if v else float("nan")

    lines = ["| τ | " + " | ".join(methods) + " | floor |",
             "|---|" + "---|" * (len(methods) + 1)]
    for t in taus:
        floor = np.mean([r["floor"]["w1"] for r in result["rows"] if r["tau"] == t])
        lines.append(f"| {t:g} | " + " | ".join(f"{cell(m, t):.4f}" for m in methods)
                     + f" | {floor:.4f} |")
    lines.append("| slope | " + " | ".join(f"{result['slopes'][m]:.2f}{_floor_mark(result, m)}"
                                          for m in methods) + " | |")
    note = _floor_note(result)
    return "\n".join(lines + ([f"\n{note}"] if note else []))


def demo(out_dir, n: int = 20_000, tau: float = 0.1, seed: int = 0, progress: bool = True,
         log=None):
    """Generate a 2D mixture with fox, refined (fox-sc), exact and naive; write demo.png and
    report.json. Each method's warnings (the first-order warning where its τ‖∇F‖ exceeds
    VALIDITY_THRESHOLD) are kept, not shown, in report["methods"][m]["warnings"]; `log`
    (e.g. print) gets a status line before the silent phases (metrics, the figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = default_target_2d()
    proc = ActiveOU(beta=1.0, d_thermal=0.0, d_active=1.0, tau=tau)
    methods = ["fox", "refined", "exact", "naive"]
    report = {"tau": tau, "n": n, "seed": seed, "target": target.to_dict(),
              "validity_threshold": VALIDITY_THRESHOLD, "methods": {}}
    fig, axes = plt.subplots(1, len(methods), figsize=(4.4 * len(methods), 4.4))
    for ax, m in zip(axes, methods):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = sample(target, m, proc, n, seed=seed, progress=progress)
        if log is not None:
            log(f"{m}: sliced W1 and histogram KL against exact samples")
        ev = evaluate(res.samples, target, seed=seed)
        report["methods"][m] = {**ev, "info": res.info,
                                "warnings": [str(w.message) for w in caught]}
        draw_density_2d(ax, target, res.samples, f"{m}: sliced W1 {ev['metrics']['w1']:.3f} "
                 f"(floor {ev['floor']['w1']:.3f})\nhist KL {ev['metrics']['hist_kl']:.3f} "
                 f"(floor {ev['floor']['hist_kl']:.3f})", colorbar=True)
    if log is not None:
        log(f"drawing {out / 'demo.png'}")
    fig.suptitle(f"active generative diffusion, τ = {tau}, {n} particles "
                 "(grey: generated samples, red: exact density contours)")
    fig.tight_layout()
    _save_figure(fig, out / "demo.png", dpi=110)
    plt.close(fig)
    write_json(out / "report.json", report)
    return out / "demo.png", out / "report.json", report


# -- where first order breaks down (issue 3 §2) ---------------------------------------------
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

    from ..figures.potential import pyplot, save_figure

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


# -- pipelines: run an experiment and write its files ----------------------------------------
def check_values(name: str, values) -> list[float]:
    """A non-empty list of finite numbers > 0 (persistence times τ, mode widths σ_min),
    checked before any work: one line naming the parameter and the valid range."""
    from ..errors import ActivegenError, check_real

    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or not len(values):
        raise ActivegenError(f"{name} must hold at least one value (each a finite number > 0)")
    out = []
    for v in values:
        x = check_real(name, v)
        if x <= 0:
            raise ActivegenError(f"every value of {name} must be > 0, got {v!r}")
        out.append(x)
    return out


def _check_sweep(taus, methods, n, t_final):
    from ..errors import check_count, check_positive

    check_count("n", n)
    check_values("taus", taus)
    for m in methods:
        get_method(m)  # an unknown name is refused with the list
    check_positive("t_final", t_final)


def run_tau_sweep(target: GaussianMixture, out_dir, taus, methods, n: int, seeds=(0,), *,
                  stem: str = "tau_sweep", beta: float = 1.0, d_active: float = 1.0,
                  d_thermal: float = 0.0, t_final: float = 6.0, driver: str = "ou",
                  driver_correction: bool = True, progress: bool = False, log=print,
                  client=None):
    """One τ sweep (`tau_sweep`; client: a Dask client, cells as tasks), written as STEM.md (pivot and every run), STEM.json,
    STEM.png (`plot_sweep`) and STEM_densities.png (`plot_densities`). Returns (result,
    markdown)."""
    seeds = [int(s) for s in ([seeds] if isinstance(seeds, int) else seeds)]
    _check_sweep(taus, methods, n, t_final)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    est = sweep_seconds(target.dim, taus, len(methods), n, len(seeds), t_final)
    n_runs = len(taus) * len(methods) * len(seeds)
    if log is not None:
        log(f"{stem}: {n_runs} runs of {n} particles in {target.dim}D, roughly "
            f"{est / 60:.1f} min on 2 cores" + (" — this will take a while" if est > 300 else ""))
    res = tau_sweep(target, taus, methods, n, seed=seeds, beta=beta, d_active=d_active,
                    d_thermal=d_thermal, t_final=t_final, progress=progress, driver=driver,
                    driver_correction=driver_correction, keep_samples=density_taus(taus),
                    client=client)
    plot_densities(res, out / f"{stem}_densities.png", target)
    res.pop("samples", None)
    md = sweep_pivot_markdown(res) + "\n\nEvery run:\n\n" + sweep_markdown(res)
    write_text(out / f"{stem}.md", md + "\n")
    write_json(out / f"{stem}.json", res)
    plot_sweep(res, out / f"{stem}.png")
    return res, md


def validity_seconds(taus, n_sigmas: int, n: int, t_final: float, n_methods: int) -> float:
    """A rough wall time (s) of the validity map on 2 cores."""
    return sum(n_methods * (3.0 + n * t_final / default_dt(float(t)) / 1e7)
               for t in taus) * n_sigmas


def run_validity_map(out_dir, taus=(0.025, 0.05, 0.1, 0.2), sigmas=(0.3, 0.4, 0.6, 0.8), *,
                     n: int = 20_000, seed: int = 0, t_final: float = 3.0, log=print,
                     client=None):
    """The validity map (`validity_map`; client: a Dask client) with its calibration, written as validity_map.md,
    .json and .png (`plot_validity`, the warning threshold drawn). Returns (result, md)."""
    from ..errors import check_count, check_positive

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


def run_results(out_dir="docs/results", *, methods=("passive", "exact", "fox", "ucn", "naive",
                                                    "fox-sc", "fox-schedule"),
                taus_1d=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5), taus_2d=(0.02, 0.05, 0.1, 0.2, 0.5),
                n: int = 20_000, n_2d: int = 10_000, vm_n: int = 20_000,
                vm_taus=(0.025, 0.05, 0.1, 0.2), vm_sigmas=(0.3, 0.4, 0.6, 0.8),
                seed: int = 0, beta: float = 1.0, d_active: float = 1.0,
                d_thermal: float = 0.0, t_final: float = 3.0, progress: bool = False,
                log=print, client=None):
    """The data of docs/results.md: the default 1D and 2D τ sweeps of `methods` and the
    validity map, written into out_dir (client: a Dask client, every cell a task)."""
    import time

    check_values("taus_1d", taus_1d)
    check_values("taus_2d", taus_2d)
    check_values("vm_taus", vm_taus)  # the validity map runs last: check it first
    check_values("vm_sigmas", vm_sigmas)
    _check_sweep(list(taus_1d) + list(taus_2d), methods, n, t_final)
    from ..errors import check_count

    check_count("n_2d", n_2d)
    check_count("vm_n", vm_n)
    total = (sweep_seconds(1, taus_1d, len(methods), n, 1, t_final)
             + sweep_seconds(2, taus_2d, len(methods), n_2d, 1, t_final))
    if log is not None:
        log(f"results: two τ sweeps and the validity map; the sweeps alone roughly "
            f"{total / 60:.0f} min on 2 cores")
    t0 = time.perf_counter()
    for stem, target, taus, nn in (("tau_sweep_1d", default_target_1d(), taus_1d, n),
                                   ("tau_sweep_2d", default_target_2d(), taus_2d, n_2d)):
        _, md = run_tau_sweep(target, out_dir, taus, methods, nn, [seed], stem=stem, beta=beta,
                              d_active=d_active, d_thermal=d_thermal, t_final=t_final,
                              progress=progress, log=log, client=client)
        if log is not None:
            slope = [ln for ln in md.splitlines() if ln.startswith("Fitted slope")][-1]
            log(slope + f" ({time.perf_counter() - t0:.0f} s)")
    run_validity_map(out_dir, vm_taus, vm_sigmas, n=vm_n, seed=seed, t_final=t_final, log=log,
                     client=client)
    if log is not None:
        log(f"wrote {out_dir}/ in {time.perf_counter() - t0:.0f} s")
