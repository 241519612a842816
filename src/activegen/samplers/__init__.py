"""Generative (reverse) samplers, run in reverse time s = T − t (docs/architecture.md).
Above physics and cluster; nothing here imports learning, lab, analysis or studies.

    engine     one jit + lax.scan over a step grid; a method is a stepper (init, step)
    registry   every method described once (`Method`), `register_method`, `get_method`
    api        `sample(target, method, process, n, …, **options)`, `sample_field`
    schemes    the time-stepping schemes (option `scheme`) and their default steps
    validity   the first-order and coarse-step warnings
    endgame    the diffusion-model end game (`t_min`: stop early, one denoising step)
    cluster    `sample(..., client=...)`: ranges of blocks as Dask tasks, shard directories
    passive, ode, exact, active (fox, ucn, naive, `register_force`), projected (fox-sc),
    schedule (fox-schedule)
               the built-in methods, registered in this order (the order of METHODS)

Inside the engine an ensemble is stored particles last, x and η of shape (d, N) per block
(docs/performance.md: XLA CPU vectorises the fused force loops over particles only in this
layout); samples, trajectories and user fields are (N, d) at the boundaries. S is
evaluated at forward time t = T − s.
"""

from ..physics.stepping import default_dt
# registration order is the order of METHODS and the CLI's choices
from . import passive, ode, exact, active, projected, schedule  # noqa: F401, I001  (register the methods)
from .active import active_stepper, force_method, register_force, sample_field, score_field
from .api import (
    Sampled,
    build_plan,
    check_driver,
    check_run,
    default_driver,
    execute,
    run_info,
    sample,
    uniform_grid,
)
from .engine import BLOCK, StepGrid, Stepper, batched, derivs_at
from .projected import FIT_MIN_PER_COEF
from .registry import (
    Method,
    Plan,
    Request,
    get_method,
    method_names,
    methods,
    register_method,
    unregister_method,
)
from .validity import VALIDITY_THRESHOLD, warn_coarse_step, warn_first_order

#: `refined`: the most accurate force that needs no velocity score (docs/beyond_first_order.md).
REFINED = get_method("refined").name

__all__ = [
    "BLOCK", "FIT_MIN_PER_COEF", "METHODS", "ACTIVE_METHODS", "Method", "Plan", "REFINED",
    "Request", "Sampled", "StepGrid", "Stepper", "VALIDITY_THRESHOLD", "active_stepper",
    "batched", "build_plan", "derivs_at", "check_driver", "check_run", "default_driver", "default_dt", "execute",
    "force_method", "get_method", "method_names", "methods", "register_force",
    "register_method", "run_info", "sample", "sample_field", "score_field", "uniform_grid",
    "unregister_method", "warn_coarse_step", "warn_first_order",
]


def __getattr__(name):
    """METHODS (every name and alias) and ACTIVE_METHODS (those that take a driver), read
    from the registry when asked: a method registered later is listed."""
    if name == "METHODS":
        return method_names()
    if name == "ACTIVE_METHODS":
        return method_names(where=lambda m: m.active)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
