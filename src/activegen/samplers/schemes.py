"""The time-stepping schemes a method can be run with (its option `scheme`) and their
default steps (issue 17; docs/theory.md, "Time stepping"; docs/performance.md, the
measured error against Δs). Each method declares its default scheme in its registry entry
(`Method.options["scheme"]`): "heun" for passive and the active methods, "lawson" for
exact; "euler" stays available everywhere and is the default of energetics runs and of
score models without a narrowest scale σ_min (learned models: near t = 0 their ∇S grows like
1/v(t) in the data's degenerate directions, and the corrector's evaluation at t − h → 0
makes the second-order step unstable there; measured on digits: heun diverges at every
step from 0.002 to 0.0167, euler does not).

    "euler"  the first-order steps (before issue 17): Euler for βx and the force/score,
             η's trapezoid mean (active), one evaluation per step, Δs = min(τ/20, 0.002)
    "heun"   βx exactly, the force/score by a predictor–corrector (trapezoid), the exact
             joint (η, ∫η) of the OU driver: second order, two evaluations per step
    "strang" (`exact`) the joint (x, η) linear part exactly over two half steps, the score
             flow between them by Heun: second order, two evaluations per step;
             "strang-euler" the same with one Euler step of the score flow (one
             evaluation, first order)
    "lawson" (`exact`) the linear part's exact step over the whole step, the score by the
             trapezoid in integrating-factor form: second order, two evaluations and half
             strang's normal draws per step

The coarse-step warning fires above τ/10 for "euler"; with the OU increment drawn exactly
the second-order schemes resolve η at larger steps: it fires above τ/2 for them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from ..errors import ActivegenError
from ..physics.stepping import default_dt, tau_step

#: Default second-order step: Δs = min(τ/HEUN_STEPS_PER_TAU, HEUN_DT_MAX) (measured,
#: docs/performance.md "Accuracy per step").
HEUN_STEPS_PER_TAU = 4
HEUN_DT_MAX = 0.0125


def heun_default_dt(tau: float) -> float:
    """Δs = min(τ/4, 0.0125) (0.0125 at τ = 0): the default step of passive's heun and of
    exact's strang (at τ = 0.05: 240 steps of T = 3, 480 evaluations against the old 1500)."""
    return tau_step(tau, HEUN_STEPS_PER_TAU, HEUN_DT_MAX)


#: The active methods' heun step: Δs = min(τ/3, 0.02) (measured, docs/performance.md: fox and
#: fox-sc within 1.15× (+ ½ floor) of the fine Euler step at τ/3 … τ/2.5, τ = 0.05 and 0.1).
ACTIVE_HEUN_STEPS_PER_TAU = 3
ACTIVE_HEUN_DT_MAX = 0.02


def active_heun_default_dt(tau: float) -> float:
    """Δs = min(τ/3, 0.02): the default heun step of an active method with the OU driver (at
    τ = 0.05: 180 steps of T = 3, 360 force evaluations against the old 1500)."""
    return tau_step(tau, ACTIVE_HEUN_STEPS_PER_TAU, ACTIVE_HEUN_DT_MAX)


#: exact's lawson step: Δs = min(τ/2.5, 0.02) (measured, docs/performance.md: at the W1 floor
#: of 10⁶ particles at τ/2.5 and τ/2 on the broad 1D mixture; 2.5× an Euler step's cost).
LAWSON_STEPS_PER_TAU = 2.5
LAWSON_DT_MAX = 0.02


def lawson_default_dt(tau: float) -> float:
    """Δs = min(τ/2.5, 0.02) (0.02 at τ = 0): the default step of exact's lawson scheme
    (at τ = 0.05: 150 steps of T = 3, 300 evaluations against the old 1500)."""
    return tau_step(tau, LAWSON_STEPS_PER_TAU, LAWSON_DT_MAX)


@dataclasses.dataclass(frozen=True)
class Scheme:
    """name; evals: score/force evaluations per step; per_tau: the coarse-step warning
    fires above τ/per_tau; default_dt(τ)."""

    name: str
    evals: int
    per_tau: float
    default_dt: Callable[[float], float]

    def tau_steps(self, tau: float) -> float:
        """The Plan's tau_steps: the warning (h > tau_steps/10) fires above τ/per_tau."""
        return tau * 10.0 / self.per_tau


SCHEMES = {
    "euler": Scheme("euler", 1, 10.0, default_dt),
    "heun": Scheme("heun", 2, 2.0, heun_default_dt),
    "strang": Scheme("strang", 2, 2.0, heun_default_dt),
    "strang-euler": Scheme("strang-euler", 1, 2.0, heun_default_dt),
    "lawson": Scheme("lawson", 2, 2.0, lawson_default_dt),
}


#: The scheme energetics runs use when none is asked for: `physics.energetics` accumulates
#: the Sekimoto increments of the first-order steps only.
ENERGETICS_SCHEME = "euler"


def default_scheme(declared: str, *, energetics: bool, bounded: bool = True) -> str:
    """The scheme a run uses when none is asked for: the method's declared one, or
    ENERGETICS_SCHEME for an energetics run (its increments are the first-order steps') and
    for a score without a narrowest scale (bounded=False, a learned model: no bound on its
    stiffness as t → 0, where the corrector's evaluation at t − h diverges; module doc)."""
    return ENERGETICS_SCHEME if energetics or not bounded else declared


def check_scheme(scheme, allowed=("euler", "heun")) -> str:
    if scheme not in allowed:
        raise ActivegenError(f"scheme must be one of {', '.join(map(repr, allowed))}; "
                             f"got {scheme!r}")
    return scheme
