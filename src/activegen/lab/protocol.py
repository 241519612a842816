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

This module: the `Protocol` (its tables and their interpolation), its file
(`save_protocol`, `load_protocol`) and its replay; `lab.grid`: the grids, their defaults and
checks; `lab.export`: `export_protocol`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ActivegenError, check_positive
from ..physics.processes import ActiveOU
from . import lookup

FORMAT = lookup.FORMAT
#: 2: the metadata carry `checksum` (sha256 of the tables and the parameters), verified on load.
VERSION = 2

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
    """`lookup.interpolate` with jax.numpy (traceable): linear in t, multilinear in x,
    linearly extrapolated outside the grid."""
    return lookup.interpolate(table, t, x, jnp)


_interpolate_jit = jax.jit(interpolate)


def check_dim(dim: int):
    if dim not in (1, 2):
        raise ActivegenError(
            f"a protocol is tabulated on a grid in d = 1 or 2 only; this target has d = {dim}"
        )


# -- files --------------------------------------------------------------------------
def sidecar_path(path) -> Path:
    return Path(path).with_suffix(".json")


_TABLES = lookup.TABLES
checksum = lookup.checksum


def save_protocol(protocol: Protocol, path, extra: dict | None = None) -> tuple[Path, Path]:
    """Write PROTOCOL.npz (times, lo, spacing, potential, force, meta as JSON text) and the
    JSON sidecar PROTOCOL.json (the same metadata, plus the array shapes). extra: more
    arrays written beside them, not read back (a lab export's force_pN, potential_kT)."""
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
    extra = {k: np.asarray(v) for k, v in (extra or {}).items()}
    meta["arrays"].update({k: list(v.shape) for k, v in extra.items()})
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **tables, **extra, meta=json.dumps(meta))
    side = write_json(sidecar_path(path), meta)
    return path, side


def load_protocol(path) -> Protocol:
    """Read and validate a protocol .npz (the sidecar is not needed)."""
    path = Path(path)
    try:
        arrays, meta = lookup.read_protocol(path)
    except lookup.ProtocolFileError as exc:
        raise ActivegenError(str(exc)) from None
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
    check_dim(d)
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


def _clipped(field, cap):
    def clipped(t, x):
        f, jn = field(t, x)
        return lookup.clip_norm(f, cap, jnp), jn

    return clipped


# -- replay -------------------------------------------------------------------------
def stationary_init(process: ActiveOU, dim: int, dtype=None):
    """init_x(key, n): x ~ N(0, (D_T/β + D_A/(β(1+βτ))) I), the forward stationary law."""
    sd = math.sqrt(process.stationary_variance)

    def init_x(key, n):
        return sd * jax.random.normal(key, (n, dim), dtype or jnp.result_type(float))

    return init_x


def replay(protocol: Protocol, n: int, key=None, *, seed: int | None = None,
           dt: float | None = None, save_every: int | None = None, dtype=None,
           progress: bool = False, energetics: bool = False, scheme: str | None = None,
           max_force: float | None = None):
    """Generate n samples from the protocol alone (module doc): `samplers.sample_field`
    with the interpolated force and the stationary start (scheme: as there, default heun).
    Returns a `Sampled`.
    energetics: add the run's energetics in the interpolated potential V̂ (the heat's force
    part is −∇V̂ along each step, which differs from the interpolated F̂ by the grid's
    interpolation error). max_force: |F̂| clipped to it (model units; an actuator's limit,
    `lookup.clip_norm`: unchanged, bit for bit, where |F̂| <= max_force)."""
    from ..samplers import sample_field

    p = protocol.process
    vtab = protocol._table(protocol.potential, dtype)
    field = protocol.force_field(dtype)
    if max_force is not None:
        field = _clipped(field, max_force)
    res = sample_field(
        field, stationary_init(p, protocol.dim, dtype), p, n, key,
        seed=seed, t_final=protocol.t_final, dt=dt, save_every=save_every, dim=protocol.dim,
        dtype=dtype, progress=progress, desc=f"protocol ({protocol.meta['method']})",
        potential=lambda t, x: interpolate(vtab, t, x), energetics=energetics, scheme=scheme,
    )
    res.info.update(d=protocol.dim, protocol={k: protocol.meta.get(k) for k in
                                              ("method", "grid", "time_grid", "source")})
    return res
