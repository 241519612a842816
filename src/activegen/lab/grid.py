"""A protocol's grids: the time grid (geometric in t + t0), the spatial grid, their default
spacing and extent, and the checks that warn about a coarse grid or refuse one away from the
data (docs/protocol.md)."""

from __future__ import annotations

import math

import jax
import numpy as np

from ..errors import ActivegenError, check_positive
from ..physics.processes import ActiveOU

#: Default number of time points and spatial spacing in units of the narrowest mode width
#: σ_min (docs/protocol.md: at these the replay of the 2D mixture is within the direct
#: sampler's error); DEFAULT_SPACING when σ_min is unknown (a score model).
DEFAULT_TIME_POINTS = 50
SPACING_PER_MIN_STD = 0.25
DEFAULT_SPACING = 0.1

#: A spacing above COARSE_SPACING·σ_min is warned about (docs/protocol.md, "Accuracy against
#: grid resolution": up to σ_min/3 the replay is within 3 % of the direct sampler, σ_min/1.5
#: costs 7 %, 1.4 σ_min 60 %); for a model without σ_min, fewer than COARSE_CELLS cells
#: across the grid's widest side (4× coarser than `tabulated.DEFAULT_CELLS` = 128).
COARSE_SPACING = 0.5
COARSE_CELLS = 32
#: The grid must hold at least EXTENT_REFUSE of the data law and of the start (the
#: stationary law) — below it the table is refused; below EXTENT_WARN a warning.
EXTENT_REFUSE = 0.5
EXTENT_WARN = 0.99


class CoarseGridWarning(UserWarning):
    """The protocol's grid is coarse against the target's narrowest length scale, or does
    not hold the bulk of the data and the start: the tabulated force will be poor."""


def time_grid(t_final: float, n: int, t0: float) -> np.ndarray:
    """n forward times from 0 to T, uniform in log(t + t0): t_k = t0((1 + T/t0)^{k/(n−1)} − 1).

    Spacing ≈ t0·log(1 + T/t0)/(n−1) near t = 0, where the potential changes fastest."""
    check_positive("t_final", t_final)
    check_positive("t0", t0)
    if n < 2:
        raise ActivegenError(f"the time grid needs at least 2 points, got {n}")
    k = np.arange(n) / (n - 1)
    t = t0 * np.expm1(k * math.log1p(t_final / t0))
    t[-1] = t_final
    return t


def time_scale(process: ActiveOU, min_std: float | None = None) -> float:
    """t0 = the fastest time scale of the potential: min(1/(β + 1/τ), σ_min²/(2D), 1/β)
    (the rise of c(t), the diffusion across the narrowest mode, the trap)."""
    scales = [1.0 / process.beta]
    if process.tau > 0:
        scales.append(1.0 / process.rate)
    if min_std is not None:
        scales.append(min_std**2 / (2.0 * process.diffusivity))
    return float(min(scales))


def default_spacing(min_std: float | None = None) -> float:
    """σ_min/4 rounded down to 1, 2 or 5 × 10^k (DEFAULT_SPACING without σ_min)."""
    if min_std is None:
        return DEFAULT_SPACING
    raw = SPACING_PER_MIN_STD * min_std
    e = 10.0 ** math.floor(math.log10(raw))
    return float(max(m for m in (1.0, 2.0, 5.0) if m * e <= raw * (1 + 1e-9)) * e)


def default_extent(process: ActiveOU, target=None, dim: int | None = None):
    """(lo, hi) per coordinate covering the target's modes within 4σ and the start
    (the stationary law) within 5 standard deviations."""
    r = 5.0 * math.sqrt(process.stationary_variance)
    if target is None:
        return -r * np.ones(dim), r * np.ones(dim)
    lo, hi = target.extent(4.0)
    return np.minimum(lo, -r), np.maximum(hi, r)


def warn_coarse_spacing(spacing: float, min_std: float | None = None, span: float | None = None,
                        flag: str = "spacing") -> bool:
    """Warn (`CoarseGridWarning`) when the grid spacing is coarse against the narrowest
    length scale: above COARSE_SPACING·σ_min (σ_min the narrowest mode width), or, with no
    σ_min (a learned model), above span/COARSE_CELLS (span the widest side of the grid's
    box). Returns whether it warned."""
    import warnings

    if min_std is not None and spacing > COARSE_SPACING * min_std:
        warnings.warn(
            f"{flag} {spacing:g} is {spacing / min_std:.3g} σ_min (σ_min = {min_std:.3g}, the "
            f"narrowest mode's width): the tabulated force is coarse and the samples will be "
            f"poor; a spacing up to σ_min/3 = {min_std / 3:.3g} keeps the replay within 3 % of "
            f"the direct sampler (docs/protocol.md; default σ_min/4 = "
            f"{default_spacing(min_std):g})", CoarseGridWarning, stacklevel=3)
        return True
    if min_std is None and span is not None and spacing > span / COARSE_CELLS:
        warnings.warn(
            f"{flag} {spacing:g} leaves {span / spacing:.3g} cells across the grid's widest "
            f"side ({span:.3g}, fewer than {COARSE_CELLS}): the tabulated force is coarse "
            f"and the samples will be poor (a model's tabulated default: the widest side / 128 = "
            f"{span / 128:.3g}; docs/learned.md)", CoarseGridWarning, stacklevel=3)
        return True
    return False


def _gaussian_box_mass(means, sds, weights, lo, hi) -> float:
    """The mass of a Gaussian mixture (means (K, d), marginal sds (K, d)) inside the box
    [lo, hi]: Σ_k w_k Π_i P(lo_i <= x_i <= hi_i) (exact for diagonal covariances)."""
    from scipy.special import ndtr

    per_axis = ndtr((np.asarray(hi) - means) / sds) - ndtr((np.asarray(lo) - means) / sds)
    return float(np.sum(np.asarray(weights) * np.prod(per_axis, axis=1)))


def _outside_box(x, lo, hi) -> float:
    x = np.asarray(x, float)
    return float(np.mean(np.any((x < lo) | (x > hi), axis=1)))


def check_extent(score, process, lo, hi, target=None, draws: int = 4000) -> dict:
    """The grid box [lo, hi] must hold the bulk of the data (p(x, t) at the start of the
    time grid, from `draws` draws of the score model's `sample_marginal` where it has one)
    and of the replay's start (the stationary law N(0, v I), exactly): below EXTENT_REFUSE
    of either an `ActivegenError` (a grid away from the data replays as NaN), below
    EXTENT_WARN a `CoarseGridWarning` (outside the grid the force is extrapolated
    linearly). Returns {"data": fraction inside or None, "start": fraction inside}."""
    import warnings

    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    sd = math.sqrt(process.stationary_variance)
    inside = {"start": _gaussian_box_mass(np.zeros((1, len(lo))), np.full((1, len(lo)), sd),
                                          [1.0], lo, hi), "data": None}
    if target is not None and hasattr(target, "covs"):  # a mixture: its exact marginals
        sds = np.sqrt(np.diagonal(np.asarray(target.covs, float), axis1=1, axis2=2))
        inside["data"] = _gaussian_box_mass(np.asarray(target.means, float), sds,
                                            np.asarray(target.weights, float), lo, hi)
    elif hasattr(score, "sample_marginal"):
        t = max(float(getattr(score, "config", {}).get("t_min", 0.0)), 1e-6)
        x = score.sample_marginal(jax.random.key(20240), draws, t)
        inside["data"] = 1.0 - _outside_box(x, lo, hi)
    low = {k: v for k, v in inside.items() if v is not None and v < EXTENT_WARN}
    if not low:
        return inside
    box = " × ".join(f"[{a:g}, {b:g}]" for a, b in zip(lo, hi))
    what = " and ".join(
        f"{v:.1%} of the " + ("data (p(x, t) near t = 0)" if k == "data" else
                               f"start (the stationary law N(0, {sd ** 2:.3g} I))")
        for k, v in low.items())
    if target is not None:
        dlo, dhi = default_extent(process, target)
        hint = ("; the default extent " + " × ".join(f"[{a:.3g}, {b:.3g}]" for a, b in
                                                      zip(dlo, dhi))
                + " holds the target's 4σ box and 5 sd of the start")
    else:
        hint = f"; cover at least ±{5 * sd:.3g} (5 sd of the start) and the data"
    msg = f"the grid's extent {box} holds only {what}"
    if min(low.values()) < EXTENT_REFUSE:
        raise ActivegenError(
            f"{msg}: a protocol's grid must hold the bulk of the data and of the start (at "
            f"least {EXTENT_REFUSE:.0%}, {EXTENT_WARN:.0%} without a warning; away from them "
            f"the extrapolated force gives NaN or wrong samples){hint}")
    warnings.warn(f"{msg} (< {EXTENT_WARN:.0%}): outside the grid the force is extrapolated "
                  f"linearly and the samples may be poor{hint}", CoarseGridWarning,
                  stacklevel=3)
    return inside


def spatial_grid(lo, hi, spacing: float):
    """(lo', spacing (d,), shape): a regular grid of the given spacing covering [lo, hi]
    (lo' = lo rounded down to a multiple of the spacing)."""
    spacing = check_positive("spacing", spacing)
    lo = np.round(np.floor(np.asarray(lo, float) / spacing) * spacing, 12)
    shape = np.ceil((np.asarray(hi, float) - lo) / spacing - 1e-9).astype(int) + 1
    if np.any(shape < 2):
        raise ActivegenError("the spatial grid needs at least 2 points per axis")
    if np.prod(shape) > 4_000_000:
        raise ActivegenError(
            f"the spatial grid has {int(np.prod(shape))} points; use a larger spacing"
        )
    return lo, np.full(len(lo), spacing), tuple(int(s) for s in shape)
