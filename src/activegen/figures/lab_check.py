"""The figure of `activegen lab check`: the error of each scanned imperfection in units of
the ideal replay's, the tolerance line at `lab.check.TOLERANCE`."""

from __future__ import annotations

from ..lab.check import LABELS
from .canvas import pyplot, save_figure


def plot_lab_check(result: dict, path) -> None:
    """Four panels (period, latency, localisation noise, force limit): W1 / the ideal
    replay's against the value (log axis; a zero value drawn at the axis' left end), the
    lab's value dotted, TOLERANCE dashed."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), sharey=True)
    for ax, (key, (label, unit, scale, _)) in zip(axes, LABELS.items()):
        rows = [r for r in result["rows"] if r["key"] == key]
        pos = [r["value"] * scale for r in rows if r["value"] > 0]
        left = min(pos) / 2 if pos else 1.0
        xs = [r["value"] * scale if r["value"] > 0 else left for r in rows]
        ax.plot(xs, [r["ratio"] for r in rows], "o-", color="C0")
        ax.axhline(result["tolerance_factor"], ls="--", color="C3", lw=1)
        ax.axhline(1.0, ls=":", color="0.5", lw=1)
        lab = result["tolerances"][key]["lab"]
        if lab:
            ax.axvline(lab * scale, ls=":", color="C2", lw=1.2)
        ax.set_xscale("log")
        ax.set_xlabel(f"{label} ({unit})")
    axes[0].set_ylabel("W1 / ideal replay's")
    axes[0].set_yscale("log")
    fig.suptitle(f"lab check: n = {result['n']}, T = {result['t_final_s']:g} s "
                 f"(dashed: {result['tolerance_factor']:g}× the ideal replay; dotted green: "
                 "the lab's value)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
