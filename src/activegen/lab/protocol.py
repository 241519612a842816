"""The effective potential as a lab protocol: V(x, t) and F = −∇V tabulated on a grid.

Export (THEORY.md §2): for a method whose force has a potential (fox: F_F = −∇V_F, ucn,
naive, or one added with `register_force`) and a score (a Gaussian-mixture target's analytic score, or a score model), V and F are evaluated
on a regular spatial grid (d = 1 or 2) × a time grid in *forward* time t ∈ [0, T]. The
generating particle at reverse time s feels F(x, T − s).

Replay: an active particle driven by the tabulated force alone, no score or target,

    dx = F̂(x, T − s) ds + η ds + √(2D_T) dW̄,   τ dη = −η ds + √(2D_A) dW̄',

with F̂ the multilinear interpolation of the table in x (linear extrapolation from the edge
cell outside the grid: exact for a force that is affine there, as a Gaussian-mixture
force is far from the data) and linear in t (clamped to the first/last time). The start is
the forward process's stationary law x ~ N(0, (D_T/β + D_A/(β(1+βτ))) I), η ~ N(0, D_A/τ)
independent of x, as in the direct samplers (THEORY.md §2 E); it differs from p(x, T) only
by the data's trace e^{−βT} (2.5·10⁻³ at the default βT = 6).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ActivegenError, check_count, check_positive
from ..physics.processes import ActiveOU

FORMAT = "activegen-protocol"
#: 2: the metadata carry `checksum` (sha256 of the tables and the parameters), verified on load.
VERSION = 2
#: Default number of time points and spatial spacing in units of the narrowest mode width
#: σ_min (docs/protocol.md: at these the replay of the 2D mixture is within the direct
#: sampler's error); DEFAULT_SPACING when σ_min is unknown (a score model).
DEFAULT_TIME_POINTS = 50
SPACING_PER_MIN_STD = 0.25
DEFAULT_SPACING = 0.1
TIME_CONVENTION = (
    "times are forward times t in [0, T]; the generating particle at reverse time s "
    "(0 -> T) feels F(x, T - s); potential[k] and force[k] are V(x, times[k]) and "
    "F(x, times[k]) = -grad V; grid axis i is lo[i] + spacing[i] * arange(shape[i])"
)
OUTSIDE_GRID = (
    "multilinear in x, linearly extrapolated from the edge cell outside the grid; "
    "linear in t, clamped outside [times[0], times[-1]]"
)
START = "x ~ N(0, stationary_variance I), eta ~ N(0, D_A/tau I) independent (stationary laws)"
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
#: The most numbers (times × points × (d + 2): V, F, ‖∇F₀‖) a table may hold.
MAX_TABLE_ENTRIES = 100_000_000


class CoarseGridWarning(UserWarning):
    """The protocol's grid is coarse against the target's narrowest length scale, or does
    not hold the bulk of the data and the start: the tabulated force will be poor."""


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A tabulated time-dependent potential. lo, spacing: (d,) grid origin and spacing;
    times: (n_t,) increasing forward times; potential: (n_t, n_1, …, n_d);
    force: (n_t, n_1, …, n_d, d); meta: method, process parameters, T, source;
    jacobian_norm: ‖∇F₀‖ (n_t, n_1, …, n_d) of an export in memory (the validity
    diagnostic's norm; not written to the file, None for a loaded protocol)."""

    lo: np.ndarray
    spacing: np.ndarray
    times: np.ndarray
    potential: np.ndarray
    force: np.ndarray
    meta: dict
    jacobian_norm: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return len(self.lo)

    @property
    def shape(self) -> tuple:
        return tuple(self.potential.shape[1:])

    @property
    def axes(self) -> list[np.ndarray]:
        return [self.lo[i] + self.spacing[i] * np.arange(n) for i, n in enumerate(self.shape)]

    @property
    def hi(self) -> np.ndarray:
        return self.lo + self.spacing * (np.asarray(self.shape) - 1)

    @property
    def t_final(self) -> float:
        return float(self.meta["t_final"])

    @property
    def process(self) -> ActiveOU:
        m = self.meta
        return ActiveOU(m["beta"], m["d_thermal"], m["d_active"], m["tau"])

    def points(self) -> np.ndarray:
        """The grid points, shape (n_1, …, n_d, d)."""
        return np.stack(np.meshgrid(*self.axes, indexing="ij"), axis=-1)

    def force_field(self, dtype=None):
        """field(t, x) -> (F̂ (N, d), None): the interpolated force (jax-traceable), in the
        form `samplers.sample_field` takes."""
        table = self._table(self.force, dtype)

        def field(t, x):
            return interpolate(table, t, x), None

        return field

    def interpolator(self, which: str = "force", dtype=None):
        """A jitted f(t, x (N, d)) -> V̂ (N,) (which="potential") or F̂ (N, d) ("force");
        build it once and call it many times (the table is transferred once)."""
        table = self._table(self.potential if which == "potential" else self.force, dtype)
        return lambda t, x: _interpolate_jit(table, t, x)

    def potential_at(self, t, x, dtype=None):
        """V̂(x, t) (N,), interpolated like the force."""
        return self.interpolator("potential", dtype)(t, jnp.asarray(x))

    def force_at(self, t, x, dtype=None):
        """F̂(x, t) (N, d)."""
        return self.interpolator("force", dtype)(t, jnp.asarray(x))

    def _table(self, values, dtype):
        dtype = dtype or jnp.result_type(float)
        return (jnp.asarray(self.times, dtype), jnp.asarray(self.lo, dtype),
                jnp.asarray(self.spacing, dtype), jnp.asarray(values, dtype))


def interpolate(table, t, x):
    """Linear in t, multilinear in x of values (n_t, n_1, …, n_d, *rest) at points x (N, d).

    Inside the grid: Σ over the 2^(d+1) corners of the enclosing cell of the product of
    the hat weights; outside: the edge cell's multilinear form, i.e. linear extrapolation
    in x (exact for affine fields) and clamping in t.
    """
    times, lo, spacing, values = table
    d = x.shape[-1]
    n = jnp.asarray(values.shape[1: d + 1])
    it = jnp.clip(jnp.searchsorted(times, t, side="right") - 1, 0, times.shape[0] - 2)
    wt = jnp.clip((t - times[it]) / (times[it + 1] - times[it]), 0.0, 1.0)
    u = (x - lo) / spacing
    i = jnp.clip(jnp.floor(u), 0, n - 2).astype(jnp.int32)
    f = u - i
    rest = values.ndim - d - 1
    out = 0.0
    for ct in (0, 1):
        w_t = wt if ct else 1.0 - wt
        for corner in itertools.product((0, 1), repeat=d):
            w = w_t
            for k, c in enumerate(corner):
                w = w * (f[:, k] if c else 1.0 - f[:, k])
            idx = (it + ct,) + tuple(i[:, k] + c for k, c in enumerate(corner))
            out = out + w.reshape(w.shape + (1,) * rest) * values[idx]
    return out


_interpolate_jit = jax.jit(interpolate)


# -- grids ------------------------------------------------------------------------
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


# -- export -----------------------------------------------------------------------
def _check_dim(dim: int):
    if dim not in (1, 2):
        raise ActivegenError(
            f"a protocol is tabulated on a grid in d = 1 or 2 only; this target has d = {dim}"
        )


def export_protocol(
    model,
    method: str,
    process: ActiveOU,
    *,
    t_final: float = 6.0,
    spacing: float | None = None,
    time_points: int = DEFAULT_TIME_POINTS,
    extent=None,
    t0: float | None = None,
    source: dict | None = None,
    dtype=None,
    progress: bool = False,
) -> Protocol:
    """Tabulate V and F = −∇V of a method's force (fox, ucn, naive, or one added with
    `register_force`) on a grid (see module doc).

    model: a GaussianMixture (analytic score) or a score model (`prepare`, `derivs`, `dim`).
    extent: (lo, hi) per coordinate (default `default_extent`; required for a score model
    without a target). spacing: default `default_spacing(σ_min)`. t0: the time grid's scale
    (default `time_scale`).
    """
    from ..samplers import get_method, method_names
    from ..physics.scores import as_score_model
    from ..physics.targets import GaussianMixture

    names = method_names(where=lambda m: m.force is not None)
    spec = get_method(method) if method in names else None
    if spec is None:
        raise ActivegenError(f"method must be one of {', '.join(names)}; got {method!r}")
    if process.tau <= 0:
        raise ActivegenError("tau must be > 0: a protocol drives an active particle")
    t_final = check_positive("t_final", t_final)
    time_points = check_count("time_points", time_points)
    score = as_score_model(model, process, closed_form=True)
    _check_dim(score.dim)
    target = model if isinstance(model, GaussianMixture) else getattr(model, "target", None)
    if extent is None:
        if target is None and not hasattr(model, "extent"):
            raise ActivegenError("give the grid's extent (this score model has no target)")
        if target is None:
            lo, hi = (np.asarray(a, float) for a in model.extent())
        else:
            lo, hi = default_extent(process, target)
    else:
        lo, hi = (np.broadcast_to(np.asarray(a, float), (score.dim,)) for a in extent)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi > lo)):
            raise ActivegenError(f"the extent must have finite lo < hi, got {lo} .. {hi}")
        check_extent(score, process, lo, hi, target)
    min_std = getattr(target, "min_std", getattr(model, "min_std", None))
    if spacing is None:
        spacing = default_spacing(min_std)
    else:
        warn_coarse_spacing(check_positive("spacing", spacing), min_std,
                            float(np.max(np.asarray(hi) - np.asarray(lo))))
    lo, step, shape = spatial_grid(lo, hi, spacing)
    if time_points < 2:
        raise ActivegenError(f"time_points must be >= 2, got {time_points}")
    # the table's size before anything is allocated (a time grid of 1e9 points is 8 GB)
    per_time = int(np.prod(shape)) * (len(shape) + 2)  # V, F, ‖∇F₀‖ at each point
    entries = time_points * per_time
    if entries > MAX_TABLE_ENTRIES:
        raise ActivegenError(
            f"the table would hold {entries:.2e} numbers ({time_points} times × "
            f"{'×'.join(map(str, shape))} points × {len(shape) + 2}; > {MAX_TABLE_ENTRIES:.0e}, "
            f"{entries * 4 / 1e9:.1f} GB in float32): use a larger --spacing or fewer "
            f"--time-points (at most {max(2, MAX_TABLE_ENTRIES // per_time)} on this grid)")
    if t0 is None:
        t0 = time_scale(process, min_std)
    times = time_grid(t_final, time_points, t0)
    dtype = dtype or jnp.result_type(float)
    force, potential = spec.force.force, spec.force.potential
    axes = [lo[i] + step[i] * np.arange(n) for i, n in enumerate(shape)]
    pts = jnp.asarray(np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(shape)),
                      dtype)

    from ..physics.forces import force_jacobian_norm
    from ..samplers.engine import derivs_at

    batched = getattr(score, "derivs_orders", False)  # e.g. a learned model's batched pass

    def at_time(t):
        st = score.prepare(t, dtype)
        if batched:  # one pass over all points, particles last (the forces take (d, N))
            dv = derivs_at(score, st, pts.T, spec.force.order)
            return (potential(process, t, pts.T, dv), force(process, t, pts.T, dv).T,
                    force_jacobian_norm(process, t, dv))
        dv = jax.vmap(score.derivs, in_axes=(None, 0))(st, pts)
        f = jax.vmap(force, in_axes=(None, None, 0, 0))(process, t, pts, dv)
        v = jax.vmap(potential, in_axes=(None, None, 0, 0))(process, t, pts, dv)
        return v, f, jax.vmap(force_jacobian_norm, in_axes=(None, None, 0))(process, t, dv)

    if batched:  # every time in one compiled call
        v, f, jn = jax.jit(lambda ts: jax.lax.map(at_time, ts))(jnp.asarray(times, dtype))
        potential_arr = np.asarray(v, np.float32).reshape((len(times),) + shape)
        force_arr = np.asarray(f, np.float32).reshape((len(times),) + shape + (len(shape),))
        jn_arr = np.asarray(jn, np.float32).reshape((len(times),) + shape)
    else:
        at_time = jax.jit(at_time)
        vs, fs, js = [], [], []
        it = times
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(times, desc=f"export {method}", unit="t", leave=False)
        for t in it:
            v, f, jn = at_time(jnp.asarray(t, dtype))
            vs.append(np.asarray(v, np.float32).reshape(shape))
            fs.append(np.asarray(f, np.float32).reshape(shape + (len(shape),)))
            js.append(np.asarray(jn, np.float32).reshape(shape))
        potential_arr, force_arr, jn_arr = np.stack(vs), np.stack(fs), np.stack(js)
    if not (np.all(np.isfinite(potential_arr)) and np.all(np.isfinite(force_arr))):
        raise ActivegenError(
            "the potential is not finite on the grid (a too large extent for float32? "
            "try --x64 or a smaller extent)"
        )
    meta = dict(
        format=FORMAT, version=VERSION, method=method, dim=len(shape),
        beta=process.beta, tau=process.tau, d_active=process.d_active,
        d_thermal=process.d_thermal, t_final=t_final,
        grid=dict(lo=lo.tolist(), spacing=step.tolist(), shape=list(shape),
                  hi=np.round(lo + step * (np.asarray(shape) - 1), 12).tolist()),
        time_grid=dict(n=time_points, kind="geometric in t + t0", t0=t0),
        time_convention=TIME_CONVENTION, interpolation=OUTSIDE_GRID, start=START,
        stationary_variance=process.stationary_variance,
        source=source or ({"kind": "target", "target": target.to_dict()} if target is not None
                          else {"kind": "model"}),
    )
    return Protocol(lo, step, times, potential_arr, force_arr, meta, jn_arr)


# -- files --------------------------------------------------------------------------
def sidecar_path(path) -> Path:
    return Path(path).with_suffix(".json")


_TABLES = ("times", "lo", "spacing", "potential", "force")


def checksum(arrays: dict, meta: dict) -> str:
    """"sha256:<hex>" of the tables (dtype, shape and bytes of times, lo, spacing,
    potential, force) and of the metadata (canonical JSON, without `checksum` and the
    sidecar's `arrays`): ties the tables to their parameters (β, τ, D_A, D_T, T, method,
    grid, source)."""
    h = hashlib.sha256()
    for name in _TABLES:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    rest = {k: v for k, v in meta.items() if k not in ("checksum", "arrays")}
    h.update(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode())
    return "sha256:" + h.hexdigest()


def save_protocol(protocol: Protocol, path) -> tuple[Path, Path]:
    """Write PROTOCOL.npz (times, lo, spacing, potential, force, meta as JSON text) and the
    JSON sidecar PROTOCOL.json (the same metadata, plus the array shapes)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ActivegenError(f"a protocol file must end in .npz, got {str(path)!r}")
    from ..files import atomic_path, write_json

    tables = {k: np.asarray(getattr(protocol, k)) for k in _TABLES}
    meta = dict(protocol.meta, version=VERSION)
    meta["checksum"] = checksum(tables, meta)
    meta["arrays"] = {"times": list(protocol.times.shape),
                      "potential": list(protocol.potential.shape),
                      "force": list(protocol.force.shape)}
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **tables, meta=json.dumps(meta))
    side = write_json(sidecar_path(path), meta)
    return path, side


def load_protocol(path) -> Protocol:
    """Read and validate a protocol .npz (the sidecar is not needed)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ActivegenError(f"a protocol file must end in .npz, got {str(path)!r}")
    if not path.is_file():
        raise ActivegenError(f"protocol file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise ActivegenError(f"{path} is not an .npz archive (not an activegen protocol)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in ("times", "lo", "spacing", "potential",
                                                     "force", "meta")}
        meta = json.loads(str(arrays.pop("meta")))
    except KeyError as exc:
        raise ActivegenError(f"{path} is not an activegen protocol (missing {exc})") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:  # not a zip / JSON
        raise ActivegenError(f"{path} is not a readable protocol: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ActivegenError(f"{path} is not an activegen protocol (format mismatch)")
    if "checksum" not in meta:
        raise ActivegenError(
            f"protocol {path} carries no checksum (written by an older activegen, or "
            "edited): export it again")
    if meta["checksum"] != checksum(arrays, meta):
        raise ActivegenError(
            f"protocol {path} does not match its checksum: its tables or parameters were "
            "changed after export (refusing to replay it; export it again)")
    for key in ("method", "beta", "tau", "d_active", "d_thermal", "t_final"):
        if key not in meta:
            raise ActivegenError(f"protocol {path} lacks '{key}' in its metadata")
    if not isinstance(meta["method"], str):
        raise ActivegenError(f"protocol {path}: 'method' must be a name, got {meta['method']!r}")
    for key in ("beta", "tau", "d_active", "d_thermal", "t_final"):
        if isinstance(meta[key], bool) or not isinstance(meta[key], (int, float)):
            raise ActivegenError(
                f"protocol {path}: '{key}' must be a number, got {meta[key]!r}")
    for key in ("source", "grid", "time_grid"):
        if key in meta and not isinstance(meta[key], dict):
            raise ActivegenError(
                f"protocol {path}: '{key}' must be a JSON object, got {type(meta[key]).__name__}")
    src = meta.setdefault("source", {"kind": "unknown"})
    if "target" in src and not isinstance(src["target"], dict):
        raise ActivegenError(f"protocol {path}: source.target must be a JSON object")
    times, lo, sp = arrays["times"], arrays["lo"], arrays["spacing"]
    pot, force = arrays["potential"], arrays["force"]
    d = lo.shape[0] if lo.ndim == 1 else -1
    _check_dim(d)
    if (sp.shape != (d,) or times.ndim != 1 or times.size < 2 or pot.ndim != d + 1
            or pot.shape[0] != times.size or force.shape != pot.shape + (d,)
            or any(s < 2 for s in pot.shape[1:])):
        raise ActivegenError(f"protocol {path} has inconsistent array shapes")
    for name, a in (("times", times), ("lo", lo), ("spacing", sp), ("potential", pot),
                    ("force", force)):
        if not np.all(np.isfinite(a)):
            raise ActivegenError(f"protocol {path}: '{name}' holds NaN or inf")
    if np.any(np.diff(times) <= 0) or np.any(sp <= 0):
        raise ActivegenError(f"protocol {path}: times must increase and spacings be > 0")
    proto = Protocol(lo.astype(float), sp.astype(float), times.astype(float), pot, force, meta)
    if proto.process.tau <= 0:  # .process validates β, τ, D_A, D_T
        raise ActivegenError(f"protocol {path}: tau must be > 0")
    check_positive("t_final", proto.t_final)
    return proto


# -- replay -------------------------------------------------------------------------
def stationary_init(process: ActiveOU, dim: int, dtype=None):
    """init_x(key, n): x ~ N(0, (D_T/β + D_A/(β(1+βτ))) I), the forward stationary law."""
    sd = math.sqrt(process.stationary_variance)

    def init_x(key, n):
        return sd * jax.random.normal(key, (n, dim), dtype or jnp.result_type(float))

    return init_x


def replay(protocol: Protocol, n: int, key=None, *, seed: int | None = None,
           dt: float | None = None, save_every: int | None = None, dtype=None,
           progress: bool = False, energetics: bool = False, scheme: str | None = None):
    """Generate n samples from the protocol alone (module doc): `samplers.sample_field`
    with the interpolated force and the stationary start (scheme: as there, default heun).
    Returns a `Sampled`.
    energetics: add the run's energetics in the interpolated potential V̂ (the heat's force
    part is −∇V̂ along each step, which differs from the interpolated F̂ by the grid's
    interpolation error)."""
    from ..samplers import sample_field

    p = protocol.process
    vtab = protocol._table(protocol.potential, dtype)
    res = sample_field(
        protocol.force_field(dtype), stationary_init(p, protocol.dim, dtype), p, n, key,
        seed=seed, t_final=protocol.t_final, dt=dt, save_every=save_every, dim=protocol.dim,
        dtype=dtype, progress=progress, desc=f"protocol ({protocol.meta['method']})",
        potential=lambda t, x: interpolate(vtab, t, x), energetics=energetics, scheme=scheme,
    )
    res.info.update(d=protocol.dim, protocol={k: protocol.meta.get(k) for k in
                                              ("method", "grid", "time_grid", "source")})
    return res
