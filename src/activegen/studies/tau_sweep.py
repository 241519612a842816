"""The accuracy-versus-τ sweep (`activegen experiment tau-sweep`, docs/theory.md §5): every
method at every τ, W1 against τ with its finite-sample floor and fitted slopes; `run_tau_sweep`
writes STEM.md, .json, .png and STEM_densities.png. Callable from Python with plain arguments
(client: a Dask client, the cells run as tasks)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..analysis.metrics import evaluate, log_slope
from ..errors import check_count, check_positive
from ..files import write_json, write_text
from ..figures.samples import draw_samples
from ..figures.canvas import pyplot, save_figure
from ..figures.sweeps import plot_sweep
from ..physics.processes import ActiveOU
from ..physics.stepping import default_dt
from ..physics.targets import GaussianMixture
from ..samplers import get_method, sample
from .common import check_values, study_options

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
    curve, 2D a 2D histogram with the exact density's contours (`figures.samples.draw_samples`)."""
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


def check_sweep(taus, methods, n, t_final):
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
    check_sweep(taus, methods, n, t_final)
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
