"""A method's force tabulated once, then interpolated: the fast route for a learned score
in d ≤ 2 (docs/learned.md, "Tabulated force").

`sample_tabulated(target, method, process, n, ...)` evaluates F = −∇V of `method` (fox, ucn,
naive, or a force added with `register_force`) once on a grid — a regular spatial grid ×
a time grid geometric in t + t0 (`lab.export.export_protocol`) — and runs the ensemble in the
table's multilinear interpolation F̂(x, T − s) (`samplers.sample_field`), started like
`sample` from the target's p(x, T) (`sample_marginal`), not from the stationary law of a
replayed protocol. The network (or the analytic score) is evaluated at the grid's points
and times only, so the cost of the score's derivatives is paid once per grid point and
time instead of once per particle and step; a run costs the table (independent of n) plus
an interpolation per particle-step. The error is the table's interpolation error
(docs/protocol_resolution.md: at σ_min/4 and 50 times, the replay equals the direct fox).

The extent of a score model without a target covers draws of p(x, t) at the grid's first
and last times (the data and the start), padded by a tenth of the span on each side; the
default spacing is `lab.grid.default_spacing(σ_min)`, or for a model without σ_min the
largest span / DEFAULT_CELLS. The validity diagnostic's norm ‖∇F₀‖ is tabulated beside the force
(`Protocol.jacobian_norm`, from the same derivatives) and interpolated at the particles, so a
tabulated run warns where the direct one does.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ActivegenError, check_count
from .export import export_protocol
from .grid import DEFAULT_TIME_POINTS, default_extent
from .protocol import interpolate

#: Grid cells along the widest axis when the score has no narrowest scale (a learned model).
DEFAULT_CELLS = 128
#: Points drawn per time to find a score model's extent.
EXTENT_DRAWS = 4096


def model_extent(score, process, t_final: float, seed: int = 0):
    """(lo, hi) per coordinate: draws of p(x, t) at t = t_min and T, padded by 10 % of the
    span; at least the stationary law's 5 sd box (`lab.grid.default_extent`)."""
    t_min = float(getattr(score, "config", {}).get("t_min", 0.0))
    key = jax.random.key(seed)
    xs = np.concatenate([np.asarray(score.sample_marginal(jax.random.fold_in(key, i), EXTENT_DRAWS,
                                                          t), np.float64)
                         for i, t in enumerate((max(t_min, 1e-6), t_final))])
    lo, hi = xs.min(0), xs.max(0)
    pad = 0.1 * (hi - lo)
    slo, shi = default_extent(process, dim=score.dim)
    return np.minimum(lo - pad, slo), np.maximum(hi + pad, shi)


def sample_tabulated(target, method: str, process, n: int, key=None, *, seed: int | None = None,
                     t_final: float = 6.0, dt: float | None = None,
                     spacing: float | None = None, time_points: int = DEFAULT_TIME_POINTS,
                     extent=None, save_every: int | None = None, dtype=None,
                     progress: bool = False, warn: bool = True, energetics: bool = False,
                     scheme: str | None = None):
    """n samples of `target` with `method`'s force tabulated on a grid (module doc).

    target: a GaussianMixture or a score model (e.g. a learned one) in d = 1 or 2.
    spacing, time_points, extent: the table's (defaults in the module doc). scheme: as
    `sample` would choose for this target (euler for a model without σ_min, else heun).
    Returns a `Sampled` whose info adds `tabulated` (grid shape, spacing, time points,
    build_s: the table's wall time, compile included)."""
    from ..samplers import sample_field
    from ..samplers.active import marginal_start
    from ..samplers.schemes import default_scheme
    from ..physics.scores import as_score_model
    from ..physics.targets import GaussianMixture

    check_count("n", n)
    time_points = check_count("time_points", time_points)
    score = as_score_model(target, process, closed_form=True)
    if score.dim not in (1, 2):
        raise ActivegenError(
            f"a tabulated force needs d = 1 or 2; this target has d = {score.dim}")
    min_std = getattr(target, "min_std", getattr(score, "min_std", None))
    if extent is None and not isinstance(target, GaussianMixture):
        extent = model_extent(score, process, t_final)
    if spacing is None and min_std is None:
        lo, hi = extent
        spacing = float(np.max(np.asarray(hi) - np.asarray(lo))) / DEFAULT_CELLS
    dtype = dtype or jnp.result_type(float)
    t0 = time.perf_counter()
    table = export_protocol(target, method, process, t_final=t_final, spacing=spacing,
                            time_points=time_points, extent=extent, dtype=dtype,
                            progress=progress)
    if scheme is None:
        scheme = default_scheme("heun", energetics=energetics, bounded=min_std is not None)
    vtab = table._table(table.potential, dtype)
    ftab = table._table(table.force, dtype)
    jtab = table._table(table.jacobian_norm, dtype)
    build_s = time.perf_counter() - t0

    def field(t, x):
        return interpolate(ftab, t, x), interpolate(jtab, t, x)

    res = sample_field(
        field, marginal_start(score, t_final, dtype), process, n, key, seed=seed, t_final=t_final, dt=dt, save_every=save_every,
        dim=score.dim, dtype=dtype, progress=progress, warn=warn, desc=f"{method} (tabulated)",
        potential=lambda t, x: interpolate(vtab, t, x), energetics=energetics, scheme=scheme)
    g = table.meta["grid"]
    res.info.update(method=method, d=score.dim, tabulated=dict(
        shape=g["shape"], spacing=g["spacing"][0], lo=g["lo"], hi=g["hi"],
        time_points=time_points, build_s=build_s))
    return res
