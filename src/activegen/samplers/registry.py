"""The registry of sampling methods: each method described once.

A `Method` says what a method is (active, needs a joint score, rests on the first-order
expansion, its smallest ensemble, its extra options, the force it applies if it has a
potential) and how to build it: `build(request) -> Plan` (a stepper on a step grid, or a
`solve` for methods with their own integrator). Methods are added with `register_method`
(the built-in ones in this package's modules, user methods through the public API); every
list of names (`method_names()`, the CLI choices, the exportable forces, the validity map)
is read from here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from ..errors import ActivegenError

_REGISTRY: dict[str, "Method"] = {}
_ALIASES: dict[str, str] = {}


@dataclasses.dataclass(frozen=True)
class Method:
    """A sampling method.

    name, aliases; build(request) -> Plan; summary: one line for --help and docs.
    active: a real active particle in an external force (accepts `driver=`);
    carries_eta: the state includes the active noise η (a step above τ/10 is warned about);
    needs_joint: needs a joint score on (x, η); first_order: rests on the small-τ expansion
    (warns when τ‖∇F‖ exceeds VALIDITY_THRESHOLD); min_n(dim) -> the smallest ensemble;
    options: extra keyword options of `sample()` with their defaults; force: the
    `forces.Force` (F and V) for a method whose force has a potential (exportable as a
    protocol); analytic_only: needs a GaussianMixture target; validity_map: shown in
    `activegen experiment validity-map` (against `exact`); default_dt(request) -> the
    method's own default step (None: `stepping.default_dt(τ)`; `api.uniform_grid`).
    """

    name: str
    build: Callable[[Any], Any]
    summary: str = ""
    aliases: tuple[str, ...] = ()
    active: bool = False
    carries_eta: bool = False
    needs_joint: bool = False
    first_order: bool = False
    min_n: Callable[[int], int] | None = None
    options: dict = dataclasses.field(default_factory=dict)
    force: Any = None
    analytic_only: bool = False
    validity_map: bool = False
    energetics: Callable[[Any, Any], Any] | None = None
    default_dt: Callable[[Any], float] | None = None


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Add `method` (and its aliases) to the registry; a taken name is refused unless
    replace=True."""
    names = (method.name,) + tuple(method.aliases)
    for nm in names:
        if not isinstance(nm, str) or not nm:
            raise ActivegenError(f"a method name must be a non-empty string, got {nm!r}")
        taken = nm in _REGISTRY or nm in _ALIASES
        owner = _ALIASES.get(nm, nm)
        if taken and not (replace and owner == method.name):
            raise ActivegenError(f"method name {nm!r} is taken (by {owner!r})")
    _REGISTRY[method.name] = method
    for a in method.aliases:
        _ALIASES[a] = method.name
    return method


def unregister_method(name: str) -> None:
    """Remove a method and its aliases (user methods; e.g. in tests)."""
    m = _REGISTRY.pop(get_method(name).name)
    for a in m.aliases:
        _ALIASES.pop(a, None)


def get_method(name) -> Method:
    """The method of a name or alias; an unknown name is refused with the list."""
    if isinstance(name, Method):
        return name
    key = _ALIASES.get(name, name) if isinstance(name, str) else None
    if key not in _REGISTRY:
        raise ActivegenError(
            f"method must be one of {', '.join(method_names())}; got {name!r}"
        )
    return _REGISTRY[key]


def method_names(*, aliases: bool = True, where: Callable[[Method], bool] | None = None):
    """Names in registration order (each followed by its aliases), optionally filtered."""
    out = []
    for m in _REGISTRY.values():
        if where is None or where(m):
            out.append(m.name)
            if aliases:
                out.extend(m.aliases)
    return tuple(out)


def methods() -> tuple[Method, ...]:
    return tuple(_REGISTRY.values())


@dataclasses.dataclass(frozen=True)
class Request:
    """A validated sampling request, handed to `Method.build`.

    target: as the user gave it; score: the score model built from it for `process`
    (None for an analytic_only method, which builds its own); dt: the step asked for
    (None: the method's default); options: the method's options, defaults filled in;
    energetics: accumulate the run's stochastic energetics (`Method.energetics`); method:
    the `Method` being built (its default_dt sets the step when dt is None); t_min: the run
    stops at forward time t_min (the end game, `samplers.endgame`): the grid covers
    s ∈ [0, T − t_min]."""

    target: Any
    score: Any
    process: Any
    n: int
    t_final: float
    dt: float | None
    dtype: Any
    driver: Any
    driver_correction: bool
    options: dict
    closed_form: bool = True
    energetics: bool = False
    method: Any = None
    t_min: float = 0.0

    @property
    def dim(self) -> int:
        return self.target.dim


@dataclasses.dataclass
class Plan:
    """What `Method.build` returns.

    stepper on grid (the engine runs it), or solve(key, save_every, chunk_size) -> (x,
    trajectory, times, info) for a method with its own integrator. info: entries for
    `Sampled.info`; process: the process actually run (default: the request's);
    tau_steps: the persistence time on each step (scalar or per step) for the coarse-step
    warning (None: no persistent noise); remedy: the first-order warning's advice;
    diagnostic: how the recorded τ‖∇F‖ is formed (for the warning's text). With a solve:
    frames(save_every) -> the number of trajectory frames (for the memory check), notes:
    warnings to give before the solve (e.g. ode's coarse tolerance); log_density_end(x
    (n, d)) -> log p(x, 0): set with energetics that have an entropy production (Δs_sys)."""

    stepper: Any = None
    grid: Any = None
    solve: Callable | None = None
    info: dict = dataclasses.field(default_factory=dict)
    process: Any = None
    tau_steps: Any = None
    remedy: str | None = None
    diagnostic: str | None = None
    frames: Callable | None = None
    notes: tuple = ()
    log_density_end: Callable | None = None
