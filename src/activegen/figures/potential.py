"""Figures of a protocol: snapshots of the tabulated potential V(x, t) with its force
F = −∇V, and particles moving in the time-dependent potential (GIF, or MP4 where ffmpeg
exists). Everything drawn of V and F comes from a `lab.protocol.Protocol` (from a file, or
exported in memory from a target); the region where p(x, t) has its mass is drawn as valid."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import files
from ..errors import ActivegenError
from ..lab.grid import time_grid
from ..lab.protocol import Protocol
from .canvas import pyplot, save_figure

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
