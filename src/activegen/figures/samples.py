"""Samples against the target (1D histograms with the exact density, 2D histograms with its
contours), against reference points (a learned model's training data) or as image tiles."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ActivegenError
from .canvas import pyplot, save_figure

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
