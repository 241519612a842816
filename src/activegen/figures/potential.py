"""Figures and animations (matplotlib, Agg backend): generated samples against the target,
snapshots of the tabulated potential V(x, t) with its force F = −∇V, and particles moving in
the time-dependent potential (GIF, or MP4 where ffmpeg exists). Everything drawn of V and F
comes from a `protocol.Protocol` (from a file, or exported in memory from a target)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import files
from ..errors import ActivegenError
from ..lab.protocol import Protocol, time_grid


def pyplot():
    """matplotlib.pyplot on the Agg back end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi):
    """Save as PNG with a 256-colour palette (figures are part of the docs: keep them small),
    atomically (`files.atomic_path`)."""
    from PIL import Image

    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
        with Image.open(tmp) as im:
            small = im.convert("RGB").quantize(256)
        small.save(tmp, optimize=True)


def protocol_t0(protocol: Protocol) -> float:
    """The time scale t0 of the protocol's geometric time grid."""
    return float(protocol.meta.get("time_grid", {}).get("t0", protocol.t_final / 20))


def snapshot_times(protocol: Protocol, n: int) -> np.ndarray:
    """n forward times from T down towards 0 (t = 0 itself left out: there the potential
    only has to hold the finished sample) on the protocol's own (geometric) time warp: the
    potential changes fastest near t = 0, so the snapshots crowd there."""
    return time_grid(protocol.t_final, n + 1, protocol_t0(protocol))[:0:-1]


def _colour_limit(v, mask=None):
    """Upper end of the colour scale of V − min V: the 90 % quantile over the view (over
    the valid region where a mask is given), so that the far field (the trap's ½β|x|²
    growth) does not wash out the wells."""
    return float(np.quantile(v if mask is None else v[mask], 0.9))


#: The region a protocol is drawn as valid on: the smallest region of the view holding this
#: fraction of the forward density p(x, t) (where the particles are at time t).
VALID_MASS = 0.99


def valid_region(protocol: Protocol, target, t: float, pts):
    """Boolean mask over the regular grid points pts (M, d): the smallest set of them holding
    VALID_MASS = 99 % of p(x, t) at forward time t (the points of highest density), i.e.
    where the particles are (docs/protocol.md, "Where the protocol is valid"); None without
    a target. Outside it V is a first-order expansion far from the data: fewer than 1 % of
    the particles go there, and at small t it need not confine (V can fall, F point
    outward)."""
    if target is None:
        return None
    lp = np.asarray(target.log_prob(np.asarray(pts, np.float32), protocol.process, float(t)),
                    float)
    p = np.exp(lp - lp.max())
    order = np.argsort(-p)
    mass = np.cumsum(p[order]) / p.sum()
    level = p[order][min(int(np.searchsorted(mass, VALID_MASS)), len(p) - 1)]
    return p >= level


def _shade_outside(ax, mask, extent, gx=None, gy=None):
    """Grey veil over the points outside the valid region, and its edge dashed."""
    if mask is None:
        return []
    veil = np.zeros(mask.shape + (4,))
    veil[~mask] = (0.9, 0.9, 0.9, 0.8)
    art = [ax.imshow(veil, origin="lower", extent=extent, aspect="equal", zorder=2)]
    if gx is not None and mask.any() and not mask.all():
        art.append(ax.contour(gx, gy, mask.astype(float), levels=[0.5], colors="k",
                              linewidths=0.8, linestyles="--", zorder=2))
    return art


VALID_NOTE = ("pale: outside the region holding 99 % of p(x, t);\nthere the first-order V "
              "is far from the data and its wells hold no particles")

#: What a reader of `plot potential` / `animate` should know about wells away from the
#: particles (printed by the CLI; docs/protocol.md, "Where the protocol is valid").
FIRST_ORDER_NOTE = (
    "V and F are drawn over the whole grid, but the first-order V is meaningful only where "
    "p(x, t) has mass (where the particles are; the unshaded region holding 99 % of p(x, t)"
    " when the target is known). Wells of V away from the particle clusters are not a bug: "
    "there V is a first-order expansion far from the data and need not confine "
    "(docs/protocol.md, \"Where the protocol is valid\")")

#: The most snapshot times `plot_potential` draws (one panel, or one curve, each).
MAX_SNAPSHOTS = 16
#: The most frames an animation may have (`animate --frames`).
MAX_FRAMES = 1000


def _norm(vmax):
    from matplotlib.colors import PowerNorm

    return PowerNorm(0.5, vmin=0.0, vmax=vmax)


# -- samples against the target -----------------------------------------------------
def draw_samples(ax, x, target=None, title: str = "", bins: int = 80, legend: bool = True,
                 colorbar: bool = False):
    """Draw samples (N, 1) or (N, 2) on `ax`: 1D a histogram with the exact density curve,
    2D a 2D histogram with the exact density's contours (`draw_density_2d`; colorbar: with
    a colour bar of the particles per bin)."""

    if x.shape[1] == 1:
        if target is not None:
            lo, hi = target.extent(4.0)
            lo, hi = float(lo[0]), float(hi[0])
        else:
            lo, hi = np.quantile(x[:, 0], [0.001, 0.999])
        ax.hist(x[:, 0], bins=bins, range=(lo, hi), density=True, color="0.6", label="samples")
        if target is not None:
            g = np.linspace(lo, hi, 400)
            ax.plot(g, np.exp(np.asarray(target.log_prob(g[:, None]))), "r-", lw=1.5,
                    label="exact density")
        ax.set(xlabel="x", ylabel="density", title=title)
        if legend:
            ax.legend(fontsize=8)
    elif target is not None:
        draw_density_2d(ax, target, x, title + ("" if not legend else " (red: exact density)"),
                        colorbar=colorbar)
    else:
        lo, hi = np.quantile(x, 0.001, axis=0), np.quantile(x, 0.999, axis=0)
        ax.hist2d(x[:, 0], x[:, 1], bins=bins, range=[[lo[0], hi[0]], [lo[1], hi[1]]],
                  cmap="Greys")
        ax.set(title=title, aspect="equal", xlabel="x₁", ylabel="x₂")


def draw_image_grid(ax, x, shape, title: str = "", cols: int = 8, lo=-1.0, hi=1.0):
    """The first cols² images of x (N, h·w) as a cols × cols grid of h × w tiles (grey
    scale fixed to [lo, hi], dark = hi as in the digits; pixels beyond it saturate)."""
    h, w = shape
    x = np.asarray(x, float)[: cols * cols]
    grid = np.full((cols * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for k, img in enumerate(x):
        r, c = divmod(k, cols)
        grid[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = img.reshape(h, w)
    ax.imshow(grid, cmap="gray_r", vmin=lo, vmax=hi, interpolation="nearest")
    ax.set(title=title, xticks=[], yticks=[])


def plot_images(samples, path, shape, title: str | None = None, reference=None) -> Path:
    """Image data (N, h·w): a grid of the first 64 samples as tiles, and beside it the
    first 64 `reference` images (e.g. the training data) where given."""
    x = np.asarray(samples, float)
    if x.ndim != 2 or x.shape[1] != shape[0] * shape[1]:
        raise ActivegenError(f"plot samples: images of {shape[0]}x{shape[1]} need samples of "
                             f"shape (N, {shape[0] * shape[1]}), got {x.shape}")
    plt = pyplot()
    panels = 1 if reference is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4.6), squeeze=False)
    draw_image_grid(axes[0, 0], x, shape, title or f"{len(x)} samples")
    if reference is not None:
        draw_image_grid(axes[0, 1], reference, shape, "training data")
    fig.tight_layout()
    save_figure(fig, path, 100)
    plt.close(fig)
    return Path(path)


def plot_samples(samples, path, target=None, title: str | None = None, reference=None,
                 image_shape=None) -> Path:
    """1D: histogram against the exact density; 2D: 2D histogram with the exact density's
    contours (`draw_density_2d`); without a target, the samples alone, or against
    `reference` points (M, d) (e.g. a learned model's training data, in the same units):
    1D their histogram as a red line, 2D the contours of their smoothed 2D histogram.
    image_shape (h, w): the points are images, drawn as tiles (`plot_images`)."""
    if image_shape is not None:
        return plot_images(samples, path, tuple(image_shape), title, reference)
    x = np.asarray(samples, float)
    if x.ndim != 2 or x.shape[1] not in (1, 2) or len(x) == 0:
        raise ActivegenError(f"plot samples: need samples of shape (N, 1) or (N, 2), got {x.shape}")
    if target is not None and target.dim != x.shape[1]:
        raise ActivegenError(f"the samples have d = {x.shape[1]} but the target d = {target.dim}")
    ref = None if reference is None else np.asarray(reference, float)
    if ref is not None and (ref.ndim != 2 or ref.shape[1] != x.shape[1]):
        raise ActivegenError(f"the samples have d = {x.shape[1]} but the reference points "
                             f"have shape {ref.shape}")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    if target is None and ref is not None:
        draw_reference(ax, x, ref, title or f"{len(x)} samples", colorbar=True)
    else:
        draw_samples(ax, x, target, title or f"{len(x)} samples", colorbar=True)
    fig.tight_layout()
    save_figure(fig, path, 100)
    plt.close(fig)
    return Path(path)


def draw_reference(ax, x, ref, title: str = "", bins: int = 80, colorbar: bool = False):
    """Samples x against reference points ref (same units): 1D histograms (samples grey,
    reference red line); 2D the samples' 2D histogram with red contours of the reference's
    2D histogram smoothed by a 3-bin box filter (levels at 10/30/60/90 % of its maximum),
    axes x₁, x₂ (the data's units), colorbar: a colour bar of the samples per bin."""
    both = np.concatenate([x, ref])
    lo, hi = np.quantile(both, 0.001, axis=0), np.quantile(both, 0.999, axis=0)
    if x.shape[1] == 1:
        ax.hist(x[:, 0], bins=bins, range=(lo[0], hi[0]), density=True, color="0.6",
                label="samples")
        ax.hist(ref[:, 0], bins=bins, range=(lo[0], hi[0]), density=True, histtype="step",
                color="r", lw=1.3, label="training data")
        ax.set(xlabel="x", ylabel="density", title=title)
        ax.legend(fontsize=8)
        return
    rng = [[lo[0], hi[0]], [lo[1], hi[1]]]
    *_, im = ax.hist2d(x[:, 0], x[:, 1], bins=bins, range=rng, cmap="Greys")
    if colorbar:
        cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        cb.set_label("samples per bin", fontsize=8)
        cb.ax.tick_params(labelsize=7)
    h, ex, ey = np.histogram2d(ref[:, 0], ref[:, 1], bins=bins // 2, range=rng)
    k = np.ones(3) / 3.0
    h = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 0, h)
    h = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, h)
    cx, cy = 0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1])
    if h.max() > 0:
        ax.contour(cx, cy, h.T, levels=h.max() * np.array([0.1, 0.3, 0.6, 0.9]), colors="r",
                   linewidths=0.8)
    ax.set(title=title + "\nred contours: training data", aspect="equal", xlabel="x₁",
           ylabel="x₂")
    ax.title.set_fontsize(9)


def reference_floor(ref, n: int, splits: int = 4, seed: int = 0) -> float:
    """The finite-sample floor of W1(n samples, ref), what W1 to the reference reads for n
    samples of the reference's own law: the mean over `splits` random splits of the
    reference points ref (M, d) into disjoint parts of k = min(n, M//2) and M − k points of
    the W1 between the two parts (sliced W1 in d > 1, as `metrics.w1`), scaled to the sizes
    compared by √((1/n + 1/M)/(1/k + 1/(M − k))) (two-sample W1 ∝ √(1/n + 1/m))."""
    from ..analysis.metrics import w1

    ref = np.asarray(ref, float)
    m = len(ref)
    k = max(1, min(int(n), m // 2))
    rng = np.random.default_rng(seed + 7919)
    vals = []
    for _ in range(splits):
        perm = rng.permutation(m)
        vals.append(w1(ref[perm[:k]], ref[perm[k:]]))
    scale = math.sqrt((1.0 / n + 1.0 / m) / (1.0 / k + 1.0 / (m - k)))
    return float(np.mean(vals)) * scale


def target_from_record(spec):
    """The GaussianMixture a samples file records (its `target` JSON, as a dict), or None
    where the run used a learned model (`LearnedScore.to_dict`: has "model", no weights)."""
    from ..physics.targets import GaussianMixture

    if spec is None or ("weights" not in spec and "model" in spec):
        return None
    return GaussianMixture.from_dict(spec)


# -- the potential and its force --------------------------------------------------------
def _shifted_potential(vfun, t, pts, mask=None):
    """V̂(x, t) − min over the points (over those in `mask` where given; V is defined up to
    a function of t); vfun from `Protocol.interpolator("potential")`."""
    v = np.asarray(vfun(t, pts))
    return v - (v.min() if mask is None else v[mask].min())


def _view(protocol: Protocol, target):
    """Plot window: the target's 4σ extent where known, else the whole grid."""
    if target is None:
        return protocol.lo, protocol.hi
    lo, hi = target.extent(4.0)
    return np.maximum(lo, protocol.lo), np.minimum(hi, protocol.hi)


def plot_potential(protocol: Protocol, path, times=None, n_snapshots: int = 4,
                   target=None) -> Path:
    """Snapshots of V(x, t) (shifted to min 0) and F = −∇V at several forward times.

    1D: V and F against x, one curve per time. 2D: one panel per time, V as a colour map
    with contours, F as arrows (length ∝ |F| within a panel)."""
    if times is None:
        if not 1 <= int(n_snapshots) <= MAX_SNAPSHOTS:
            raise ActivegenError(f"--snapshots must lie in [1, {MAX_SNAPSHOTS}], got {n_snapshots}")
        times = snapshot_times(protocol, int(n_snapshots))
    times = np.atleast_1d(np.asarray(times, float))
    if times.size == 0 or times.size > MAX_SNAPSHOTS:
        raise ActivegenError(f"--times takes 1 to {MAX_SNAPSHOTS} times, got {times.size}")
    if (not np.all(np.isfinite(times)) or np.any(times < 0)
            or np.any(times > protocol.t_final)):
        raise ActivegenError(f"--times must be finite and lie in [0, T = {protocol.t_final:g}], "
                             f"got {', '.join(f'{t:g}' for t in times)}")
    plt = pyplot()
    m = protocol.meta
    head = f"{m['method']} potential, τ = {m['tau']:g}, β = {m['beta']:g}, D_A = {m['d_active']:g}"
    lo, hi = _view(protocol, target)
    vfun, ffun = protocol.interpolator("potential"), protocol.interpolator("force")
    if protocol.dim == 1:
        g = np.linspace(lo[0], hi[0], 400)[:, None]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
        cmap = plt.get_cmap("viridis")
        top = 0.0
        for j, t in enumerate(times):
            c = cmap(j / max(1, len(times) - 1))
            mask = valid_region(protocol, target, t, g)
            v = _shifted_potential(vfun, t, g, mask)
            a1.plot(g[:, 0], np.where(mask, v, np.nan) if mask is not None else v, color=c,
                    label=f"t = {t:.3g}")
            if mask is not None:
                a1.plot(g[:, 0], np.where(mask, np.nan, v), color=c, ls=":", lw=0.8)
            top = max(top, float(np.max(v if mask is None else v[mask])))
            a2.plot(g[:, 0], np.asarray(ffun(t, g))[:, 0], color=c)
        a1.set(xlabel="x", ylabel="V(x, t) − min V", title=head)
        a1.set_ylim(0, 1.05 * top if top > 0 else None)
        if target is not None:
            a1.text(0.01, 0.98, "dotted: outside the region holding 99 % of p(x, t)\n"
                    "(there V is far from the data: its wells hold no particles)",
                    transform=a1.transAxes, fontsize=7, va="top")
        a2.axhline(0, color="0.7", lw=0.8)
        a2.set(xlabel="x", ylabel="F = −∂V/∂x", title="force (forward time t = T − s)")
        a1.legend(fontsize=8)
    else:
        k = len(times)
        cols = min(k, 4)
        rows = math.ceil(k / cols)
        aspect = float((hi[1] - lo[1]) / (hi[0] - lo[0]))
        fig, axes = plt.subplots(rows, cols, figsize=(3.9 * cols, (3.3 * aspect + 0.6) * rows + 0.5),
                                 squeeze=False)
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 160), np.linspace(lo[1], hi[1], 160))
        pts = np.stack([gx.ravel(), gy.ravel()], -1)
        qx, qy = np.meshgrid(np.linspace(lo[0], hi[0], 17), np.linspace(lo[1], hi[1], 17))
        qpts = np.stack([qx.ravel(), qy.ravel()], -1)
        ext = (lo[0], hi[0], lo[1], hi[1])
        for ax, t in zip(axes.ravel(), times):
            mask = valid_region(protocol, target, t, pts)
            mask = None if mask is None else mask.reshape(gx.shape)
            v = _shifted_potential(vfun, t, pts, None if mask is None else mask.ravel())
            v = v.reshape(gx.shape)
            vmax = _colour_limit(v, mask)
            im = ax.imshow(v, origin="lower", extent=ext, cmap="viridis", aspect="equal",
                           norm=_norm(vmax))
            ax.contour(gx, gy, v, levels=vmax * np.linspace(0, 1, 12)[1:] ** 2, colors="w",
                       linewidths=0.4)
            _shade_outside(ax, mask, ext, gx, gy)
            f = np.asarray(ffun(t, qpts))
            ax.quiver(qx.ravel(), qy.ravel(), f[:, 0], f[:, 1], color="tab:red", width=0.004,
                      zorder=3)
            ax.set_title(f"t = {t:.3g}  (s = {protocol.t_final - t:.3g})", fontsize=9)
            ax.set_xlabel("x₁", fontsize=8)
            ax.set_ylabel("x₂", fontsize=8)
            ax.tick_params(labelsize=7)
            cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, extend="max")
            cb.set_label("V − min V", fontsize=7)
            cb.ax.tick_params(labelsize=6)
        for ax in axes.ravel()[k:]:
            ax.axis("off")
        fig.suptitle(head + "   (colour: V − min V, arrows: F = −∇V"
                     + (f"; {VALID_NOTE})" if target is not None else ")"), fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, 80)
    plt.close(fig)
    return Path(path)


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


def draw_density_2d(ax, target, x, title, colorbar: bool = False):
    """A 2D histogram of samples x with the exact density's contours, axes x₁, x₂;
    colorbar: a colour bar of the particles per bin beside the panel."""
    lo, hi = target.extent(3.5)
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 150), np.linspace(lo[1], hi[1], 150))
    dens = np.exp(np.asarray(target.log_prob(np.stack([gx, gy], -1))))
    *_, im = ax.hist2d(x[:, 0], x[:, 1], bins=80, range=[[lo[0], hi[0]], [lo[1], hi[1]]],
                       cmap="Greys")
    ax.contour(gx, gy, dens, levels=6, colors="tab:red", linewidths=0.8)
    ax.set_title(title, fontsize=9)
    ax.set(xlabel="x₁", ylabel="x₂")
    ax.set_aspect("equal")
    if colorbar:
        cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        cb.set_label("particles per bin", fontsize=8)
        cb.ax.tick_params(labelsize=7)


# -- animation ------------------------------------------------------------------------
def animation_frames(times_s, t_final: float, n_frames: int, t0: float) -> np.ndarray:
    """Indices into saved frames at reverse times `times_s` nearest to n_frames forward
    times from T down to 0, uniform in log(t + t0), without repeats: where two wanted times
    fall on the same saved frame (near t = 0 the wanted spacing can be finer than the saved
    one), the later ones move to the next saved frames, so that exactly n_frames distinct
    frames are returned whenever at least n_frames were saved (fewer only otherwise)."""
    times_s = np.asarray(times_s, float)
    m = len(times_s)
    if n_frames < 2:
        return np.array([m - 1])
    want = t_final - time_grid(t_final, n_frames, t0)[::-1]
    idx = np.searchsorted(times_s, want)  # the nearest saved time (times_s increasing)
    idx = np.clip(idx, 1, m - 1) if m > 1 else np.zeros(len(want), int)
    if m > 1:
        idx = np.where(np.abs(times_s[idx - 1] - want) <= np.abs(times_s[idx] - want),
                       idx - 1, idx)
    if m < n_frames:
        return np.unique(idx)
    idx = idx.astype(int)
    for k in range(1, n_frames):  # strictly increasing, forwards ...
        idx[k] = max(idx[k], idx[k - 1] + 1)
    return np.minimum(idx, m - n_frames + np.arange(n_frames))  # ... within the saved frames


def movie_writer(path, fps: int):
    """PillowWriter for .gif, FFMpegWriter for .mp4 (only where ffmpeg is installed)."""
    from matplotlib import animation

    suffix = Path(path).suffix
    if suffix == ".mp4":
        if not animation.writers.is_available("ffmpeg"):
            raise ActivegenError("writing MP4 needs ffmpeg, which is not installed; use .gif")
        return animation.FFMpegWriter(fps=fps)
    if suffix == ".gif":
        return animation.PillowWriter(fps=fps)
    raise ActivegenError(f"--out must end in .gif or .mp4, got {str(path)!r}")


def animate(protocol: Protocol, trajectory, times_s, path, *, fps: int = 12,
            max_particles: int = 5000, target=None, still=None, still_index: int | None = None,
            progress: bool = False) -> dict:
    """Particles (trajectory (frames, N, d) at reverse times times_s) in the potential
    V̂(x, T − s) drawn beneath them; written as GIF (.gif, Pillow) or MP4 (.mp4, ffmpeg).
    still: also write one frame (index still_index, default 90 % of the way) as PNG.
    Returns {"frames", "path", "still"}."""
    from matplotlib import animation

    path = Path(path)
    traj = np.asarray(trajectory)[:, :max_particles]
    times_s = np.asarray(times_s, float)
    if traj.ndim != 3 or traj.shape[2] != protocol.dim or len(times_s) != len(traj):
        raise ActivegenError("animate: trajectory and protocol dimensions do not match")
    writer = movie_writer(path, fps)
    plt = pyplot()
    T = protocol.t_final
    m = protocol.meta
    lo, hi = _view(protocol, target)
    vfun = protocol.interpolator("potential")
    aspect = float((hi[-1] - lo[-1]) / (hi[0] - lo[0]))
    fig, ax = plt.subplots(figsize=(4.6, 4.6 * aspect + 0.5) if protocol.dim == 2 else (5.6, 3.8))
    head = f"{m['method']} protocol, τ = {m['tau']:g}"
    if protocol.dim == 2:
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 120), np.linspace(lo[1], hi[1], 120))
        pts = np.stack([gx.ravel(), gy.ravel()], -1)
        img = ax.imshow(np.zeros(gx.shape), origin="lower", cmap="viridis", norm=_norm(1.0),
                        extent=(lo[0], hi[0], lo[1], hi[1]), aspect="equal")
        dots = ax.scatter(traj[0, :, 0], traj[0, :, 1], s=2, c="tab:red", edgecolors="none",
                          zorder=3)
        ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))

        contours = []
        ext = (lo[0], hi[0], lo[1], hi[1])
        ax.set(xlabel="x₁", ylabel="x₂")
        cb = fig.colorbar(img, ax=ax, fraction=0.046, pad=0.03, extend="max")
        cb.set_label("V − min V (per frame)", fontsize=8)
        if target is not None:
            ax.text(0.5, -0.22, VALID_NOTE, transform=ax.transAxes, ha="center", fontsize=7)

        def draw(j):
            t = T - times_s[j]
            mask = valid_region(protocol, target, t, pts)
            mask = None if mask is None else mask.reshape(gx.shape)
            v = _shifted_potential(vfun, t, pts, None if mask is None else mask.ravel())
            v = v.reshape(gx.shape)
            vmax = _colour_limit(v, mask)
            img.set_data(v)
            img.set_norm(_norm(vmax))
            while contours:
                c = contours.pop()
                c.remove()
            contours.append(ax.contour(gx, gy, v, levels=vmax * np.linspace(0, 1, 12)[1:] ** 2,
                                       colors="w", linewidths=0.4))
            contours.extend(_shade_outside(ax, mask, ext, gx, gy))
            dots.set_offsets(traj[j])
            ax.set_title(f"{head}: s = {times_s[j]:.3f}, t = T − s = {t:.3f}", fontsize=9)
            return img, dots
    else:
        g = np.linspace(lo[0], hi[0], 400)[:, None]
        (line,) = ax.plot(g[:, 0], np.zeros(len(g)), "k-", lw=1.2)
        dots = ax.scatter(traj[0, :, 0], np.zeros(traj.shape[1]), s=3, c="tab:red",
                          alpha=0.5, edgecolors="none")
        rng = np.random.default_rng(0)
        jitter = rng.uniform(0.0, 1.0, traj.shape[1])
        ax.set(xlim=(lo[0], hi[0]), xlabel="x", ylabel="V(x, t) − min V")
        ax.text(0.01, 0.98, "V is meaningful where the particles are; far from them\n"
                "it is a first-order expansion (its wells there hold no particles)",
                transform=ax.transAxes, fontsize=6, va="top")

        def draw(j):
            t = T - times_s[j]
            raw = np.asarray(vfun(t, g))
            mask = valid_region(protocol, target, t, g)
            ref = raw.min() if mask is None else raw[mask].min()
            v = raw - ref
            top = np.quantile(v if mask is None else v[mask], 0.7)
            line.set_ydata(v)
            vx = np.asarray(vfun(t, traj[j])) - ref
            dots.set_offsets(np.c_[traj[j, :, 0], vx + 0.03 * top * jitter])
            ax.set_ylim(-0.02 * top, top)
            ax.set_title(f"{head}: s = {times_s[j]:.3f}, t = {t:.3f}", fontsize=9)
            return line, dots

    draw(0)
    fig.tight_layout()
    n = len(traj)
    anim = animation.FuncAnimation(fig, draw, frames=n, blit=False)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="animate", unit="frame", leave=False)
    with files.atomic_path(path) as tmp:  # an interrupted movie leaves no partial file
        anim.save(tmp, writer=writer, dpi=80,
                  progress_callback=(lambda i, k: bar.update(1)) if bar is not None else None)
    if bar is not None:
        bar.close()
    still_path = None
    if still is not None:
        j = int(0.9 * (n - 1)) if still_index is None else int(still_index)
        if not -n <= j < n:
            raise ActivegenError(f"--still-frame must lie in [0, {n - 1}], got {j}")
        draw(j)
        save_figure(fig, still, 90)
        still_path = Path(still)
    plt.close(fig)
    return {"frames": n, "path": path, "still": still_path}


def plot_thermodynamics(result: dict, path) -> None:
    """Mean heat, active work, protocol work per sample against τ per method, and W1 (with
    its floor), from `thermodynamics.run_thermodynamics`."""
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
