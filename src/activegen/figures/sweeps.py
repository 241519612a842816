"""Figures of studies against τ: the error-versus-τ sweep and the thermodynamics study."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import files
from ..errors import ActivegenError
from .canvas import pyplot

def plot_sweep_file(path_json, path) -> Path:
    """The error-vs-τ figure from a `tau_sweep.json` (`plot_sweep`)."""
    import json

    p = Path(path_json)
    if not p.is_file():
        raise ActivegenError(f"sweep file not found: {p}")
    try:
        res = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        res = None
    if not (isinstance(res, dict) and "rows" in res and "slopes" in res):
        raise ActivegenError(f"{p} is not a tau_sweep.json (rows, slopes)")
    plot_sweep(res, path)
    return Path(path)


def plot_sweep(result: dict, path) -> None:
    """Log–log W1 against τ per method (mean ± sd over seeds), fitted slopes in the legend,
    the finite-sample floor dashed."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    methods = list(result["slopes"])
    for m in methods:
        taus = sorted({r["tau"] for r in result["rows"] if r["method"] == m})
        vals = [[r["metrics"]["w1"] for r in result["rows"] if r["method"] == m and r["tau"] == t]
                for t in taus]
        ax.errorbar(taus, [np.mean(v) for v in vals], yerr=[np.std(v) for v in vals],
                    marker="o", capsize=3, label=f"{m} (slope {result['slopes'][m]:.2f}"
                    + (", floor-limited)" if result.get("slope_fit", {}).get(m, {})
                       .get("floor_limited") else ")"))
    floor = np.mean([r["floor"]["w1"] for r in result["rows"]])
    ax.axhline(floor, ls="--", color="grey", label=f"floor {floor:.4f}")
    ax.set(xscale="log", yscale="log", xlabel="τ", ylabel="W1 to the target")
    from matplotlib.ticker import NullFormatter

    all_taus = sorted({r["tau"] for r in result["rows"]})
    ax.set_xticks(all_taus, [f"{t:g}" for t in all_taus])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=8)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=110)
    plt.close(fig)


def plot_thermodynamics(result: dict, path) -> None:
    """Mean heat, active work, protocol work per sample against τ per method, and W1 (with
    its floor), from `studies.thermodynamics.run_thermodynamics`."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    methods = list(dict.fromkeys(r["method"] for r in result["rows"]))
    for m in methods:
        rs = sorted((r for r in result["rows"] if r["method"] == m), key=lambda r: r["tau"])
        taus = [r["tau"] for r in rs]
        for ax, k in zip(axes[:3], ("heat", "active_work", "work")):
            ax.errorbar(taus, [r[k] for r in rs], [r[k + "_se"] for r in rs], marker="o",
                        label=m, capsize=2)
        axes[3].plot(taus, [r["w1"] for r in rs], marker="o", label=m)
    floor = sorted({(r["tau"], r["w1_floor"]) for r in result["rows"]})
    axes[3].plot([f[0] for f in floor], [f[1] for f in floor], "k--", lw=1, label="floor")
    for ax, title in zip(axes, ("heat Q to the bath", "active work W_act", "protocol work W",
                                "W1 to the target")):
        ax.set_xscale("log")
        ax.set_xlabel("τ")
        ax.set_title(title)
    axes[0].set_yscale("symlog")
    axes[1].set_yscale("symlog")
    axes[3].set_yscale("log")
    axes[3].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
