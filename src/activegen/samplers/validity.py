"""Warnings on a run's validity: the first-order scale τ‖∇F‖ and a coarse step.

VALIDITY_THRESHOLD: τ·‖∇F‖ (ensemble mean, largest over the run) above which the
first-order expansion is flagged as unreliable. Calibrated by `activegen experiment
validity-map` (docs/results.md): on the 1D mixtures σ = (s, 1.5s), s = 0.3–0.8, τ =
0.025–0.2, fox is worse than naive in every cell above 0.6 and better in every cell below
0.28; 0.3 is the conservative end of that gap (the first cell where fox exceeds 3× the
exact sampler's error, still no worse than naive, sits at 0.24).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import FirstOrderWarning

VALIDITY_THRESHOLD = 0.3

#: The remedies the first-order warning names for the methods on V_F, V_U, F_0.
DEFAULT_REMEDY = ("lower tau, or use method 'refined' (fox-sc: no velocity score) or "
                  "'exact'")


def warn_first_order(value: float, *, diagnostic: str | None = None,
                     remedy: str | None = None, stacklevel: int = 3) -> bool:
    """FirstOrderWarning when the recorded τ‖∇F‖ exceeds VALIDITY_THRESHOLD; True if so."""
    if value is None or not value > VALIDITY_THRESHOLD:
        return False
    how = f" with {diagnostic}" if diagnostic else ""
    warnings.warn(
        f"tau*|grad F| reached {value:.2f} (> {VALIDITY_THRESHOLD}){how}: the first-order "
        "effective potential is unreliable here (modes too narrow for this persistence "
        "time: tau*D/sigma^2 not small; past this value fox did worse than the "
        f"zeroth-order force 'naive' in calibration); {remedy or DEFAULT_REMEDY}",
        FirstOrderWarning,
        stacklevel=stacklevel,
    )
    return True


def warn_coarse_step(steps, tau_steps, stacklevel: int = 3) -> bool:
    """Warn when a step exceeds the local persistence time / 10 (the active noise is then
    under-resolved); steps and tau_steps scalars or per step. True if warned."""
    h = np.broadcast_to(np.asarray(steps, float), np.shape(tau_steps) or np.shape(steps))
    tau = np.broadcast_to(np.asarray(tau_steps, float), h.shape)
    bad = h > tau / 10 * (1 + 1e-9)
    if not np.any(bad):
        return False
    warnings.warn(
        f"dt = {float(np.max(h[bad])):g} exceeds the largest resolved step "
        f"{float(np.min(tau[bad])) / 10:g} (tau/10 for scheme 'euler'): "
        "the active noise is under-resolved",
        stacklevel=stacklevel,
    )
    return True
