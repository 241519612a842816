"""Compiled engine programs kept on disk, so that a repeated run skips tracing as well as
compiling (docs/performance.md, "Fixed costs").

JAX's persistent cache (the CLI's `~/.cache/activegen/xla`) is keyed by the lowered program:
a repeated command still traces and lowers the sampler (0.5–1 s) before it finds its
executable. Here the serialised executables (`jax.experimental.serialize_executable`) are
keyed by what the program is built from instead:

    key = sha256(the request: method, options, target, process, driver, dtype, grid, …;
                 the engine's layout: n, block, lanes, frames per call;
                 JAX, jaxlib, XLA_FLAGS, x64, the device, and activegen's own source files
                 (paths, sizes, modification times))

Only for built-in methods and forces on a `GaussianMixture` target (a user's force or a
learned model may change under the same name: `fingerprint` returns None and the run traces
as before), and only where JAX's persistent cache is switched on (the files go into
`<jax_compilation_cache_dir>/activegen-programs/`). A file that cannot be read or loaded is
ignored (the run traces and compiles); writing is atomic (`files.atomic_path`).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

#: The folder under JAX's persistent-cache folder that holds the programs.
FOLDER = "activegen-programs"


def _source_stamp() -> str:
    """Paths, sizes and modification times of activegen's .py files (stat only)."""
    root = Path(__file__).resolve().parents[1]
    parts = []
    for p in sorted(root.rglob("*.py")):
        st = p.stat()
        parts.append(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _builtin(fn) -> bool:
    return getattr(fn, "__module__", "").startswith("activegen.")


def fingerprint(spec, req, plan) -> str | None:
    """What a run's compiled programs are built from (module doc), or None where that is
    not known from the request alone (a user's method or force, a score model other than
    a Gaussian mixture, a driver defined outside activegen)."""
    from ..physics.targets import GaussianMixture

    force = getattr(spec, "force", None)
    if (type(req.target) is not GaussianMixture or not _builtin(spec.build)
            or (force is not None and not (_builtin(force.force) and _builtin(force.potential)))
            or (req.driver is not None and not _builtin(type(req.driver)))):
        return None
    grid = plan.grid
    steps = (grid.h, grid.n_steps) if grid.uniform else hashlib.sha256(
        grid.s.tobytes()).hexdigest()
    return repr((spec.name, sorted(req.options.items()), req.target.to_dict(),
                 req.process, plan.process, req.driver, req.driver_correction,
                 req.closed_form, req.energetics, req.t_final, req.t_min, str(req.dtype),
                 steps, sorted(plan.info.items())))


def _path(key) -> Path | None:
    import jax

    base = jax.config.jax_compilation_cache_dir
    if not base or key is None:
        return None
    dev = jax.devices()[0]
    env = (jax.__version__, getattr(jax.lib, "__version__", ""), os.environ.get("XLA_FLAGS"),
           jax.config.jax_enable_x64, dev.platform, dev.device_kind, _source_stamp())
    digest = hashlib.sha256(repr((key, env)).encode()).hexdigest()
    return Path(base) / FOLDER / f"{digest}.pkl"


def load(key):
    """(the compiled programs, meta) stored under key (as `store` was given them), or
    None."""
    path = _path(key)
    if path is None or not path.is_file():
        return None
    try:
        from jax.experimental.serialize_executable import deserialize_and_load

        items, meta = pickle.loads(path.read_bytes())
        return tuple(deserialize_and_load(*item) for item in items), meta
    except Exception:  # a stale or damaged file: trace and compile as without it
        return None


def store(key, compiled, meta=None) -> None:
    """Keep the compiled programs (a tuple) and meta (a picklable value) under key
    (atomically)."""
    path = _path(key)
    if path is None:
        return
    try:
        from jax.experimental.serialize_executable import serialize

        from ..files import atomic_path

        blob = pickle.dumps(([serialize(c) for c in compiled], meta))
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(blob)
    except Exception:  # a full disk, a program that cannot be serialised: not kept
        return
