"""`export_protocol`: a method's effective potential V and force F = −∇V tabulated on a
regular spatial grid (d = 1 or 2) × a time grid in forward time (`lab.protocol` for the
format and its replay, `lab.grid` for the grids)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ActivegenError, check_count, check_positive
from ..physics.processes import ActiveOU
from .grid import (
    DEFAULT_TIME_POINTS,
    check_extent,
    default_extent,
    default_spacing,
    spatial_grid,
    time_grid,
    time_scale,
    warn_coarse_spacing,
)
from .protocol import FORMAT, OUTSIDE_GRID, START, TIME_CONVENTION, VERSION, Protocol, check_dim

#: The most numbers (times × points × (d + 2): V, F, ‖∇F₀‖) a table may hold.
MAX_TABLE_ENTRIES = 100_000_000


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
    check_dim(score.dim)
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
