"""Warnings on a run's validity: the first-order scale τ‖∇F‖, a coarse step and the
Euler bias of the linear drift βx far from the origin.

A step h is coarse (`warn_coarse_step`, every method on a step grid) when it exceeds any of
    τ/10            the persistence time (methods whose state holds η),
    σ_min²/(2D)     one step's diffusion √(2Dh) then exceeds the narrowest mode width
                    (D = D_T + D_A, the largest D_eff; a Gaussian-mixture target's σ_min),
    0.1/β           the trap's relaxation time / 10 (the Euler step of βx).
`ode` integrates adaptively (its dt only sets --save-every's spacing): it warns on a coarse
tolerance ode_rtol > ODE_RTOL_MAX instead. `warn_euler_bias`: the explicit step of βx
shifts samples by about EULER_BIAS·β·h·|μ| (measured: 4.6·10⁻⁴·|μ| at h = 0.002, β = 1);
warned when that exceeds 0.1 σ_min.

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


#: ode warns when its relative tolerance is above this.
ODE_RTOL_MAX = 1e-3
#: The Euler bias of βx, in units of β·h·|μ| (module doc), and the tolerated shift / σ_min.
EULER_BIAS = 0.25
EULER_BIAS_MAX = 0.1


class CoarseStepWarning(UserWarning):
    """A step (or ode's tolerance) too coarse for the run: samples are biased."""


def diffusion_step_limit(diffusivity=None, min_std=None) -> float:
    """σ_min²/(2D): the largest step whose diffusion √(2Dh) stays within the narrowest mode
    (inf where the target has no σ_min or D = 0)."""
    if min_std is None or not diffusivity:
        return float("inf")
    return float(min_std) ** 2 / (2.0 * float(diffusivity))


def trap_step_limit(beta=None) -> float:
    """0.1/β: a tenth of the trap's relaxation time (inf at β = 0)."""
    return 0.1 / float(beta) if beta else float("inf")


def warn_coarse_step(steps, tau_steps=None, stacklevel: int = 3, *, beta=None,
                     diffusivity=None, min_std=None) -> bool:
    """Warn when a step exceeds τ/10 (tau_steps: the persistence time, scalar or per step;
    None: no persistent noise), σ_min²/(2D) or 0.1/β (module doc). True if warned."""
    reasons = coarse_step_reasons(steps, tau_steps, beta=beta, diffusivity=diffusivity,
                                  min_std=min_std)
    if not reasons:
        return False
    warnings.warn("; ".join(reasons) + " (use a smaller --dt)", CoarseStepWarning,
                  stacklevel=stacklevel)
    return True


def coarse_step_reasons(steps, tau_steps=None, *, beta=None, diffusivity=None,
                        min_std=None) -> list[str]:
    """Why the step is coarse (`warn_coarse_step`'s criteria), one phrase each; [] if not."""
    h = np.asarray(steps, float)
    reasons = []
    if tau_steps is not None:
        hb = np.broadcast_to(h, np.shape(tau_steps) or np.shape(h))
        tau = np.broadcast_to(np.asarray(tau_steps, float), hb.shape)
        bad = hb > tau / 10 * (1 + 1e-9)
        if np.any(bad):
            reasons.append(f"dt = {float(np.max(hb[bad])):g} exceeds tau/10 = "
                           f"{float(np.min(tau[bad])) / 10:g}: the active noise is "
                           "under-resolved")
    hmax = float(np.max(h))
    lim = diffusion_step_limit(diffusivity, min_std)
    if hmax > lim * (1 + 1e-9):
        reasons.append(f"dt = {hmax:g} exceeds sigma_min^2/(2D) = {lim:.3g}: one step "
                       "diffuses further than the narrowest mode is wide")
    lim = trap_step_limit(beta)
    if hmax > lim * (1 + 1e-9):
            reasons.append(f"dt = {hmax:g} exceeds 0.1/beta = {lim:.3g}: the trap's drift is "
                           "under-resolved")
    return reasons


def nonfinite_hint(*, steps=None, tau_steps=None, beta=None, diffusivity=None, min_std=None,
                   first_order: bool = False, tau_grad_force=None,
                   learned: bool = False) -> str:
    """The advice for a run whose samples are not finite, matched to its cause: a coarse
    step (`coarse_step_reasons`: a smaller --dt), else a first-order force that diverged
    (τ‖∇F‖ above VALIDITY_THRESHOLD or not finite: stop earlier, a method beyond first
    order, a smaller τ; a smaller step does not cure it), else a learned score, else the
    inputs' scale. (A target beyond the dtype's range is refused before the run.)"""
    if steps is not None:
        reasons = coarse_step_reasons(steps, tau_steps, beta=beta, diffusivity=diffusivity,
                                      min_std=min_std)
        if reasons:
            return "; ".join(reasons) + ": use a smaller --dt"
    if first_order and tau_grad_force is not None and not tau_grad_force <= VALIDITY_THRESHOLD:
        value = float(tau_grad_force)
        reached = f"reached {value:.3g}" if np.isfinite(value) else "became non-finite"
        return (f"the first-order force diverged (tau*|grad F| {reached}, > "
                f"{VALIDITY_THRESHOLD}: the modes are too narrow for this persistence time "
                "near the end of generation; a smaller --dt does not cure it): stop earlier "
                "with --t-min, use method 'refined' or 'exact', or a smaller tau")
    if learned:
        return ("the learned score is not finite along the run (particles far outside the "
                "model's training range, or a model that needs more training): check the "
                "model (train longer, --standardize), stop earlier with --t-min, or try a "
                "smaller --dt")
    return (("not a coarse step (dt within tau/10, sigma_min^2/(2D) and 0.1/beta) nor a "
             "first-order divergence" if steps is not None else "not a first-order divergence")
            + ": check the inputs' scale (float32 holds |x| up to 3.4e38; --x64 computes in "
            "float64)")


def warn_euler_bias(steps, beta, means, min_std, stacklevel: int = 3) -> bool:
    """Warn when the Euler step of βx shifts samples by more than EULER_BIAS_MAX·σ_min
    (estimated EULER_BIAS·β·h·max|μ|: a target far from the origin)."""
    if means is None or min_std is None or beta is None:
        return False
    far = float(np.max(np.linalg.norm(np.atleast_2d(np.asarray(means, float)), axis=-1)))
    h = float(np.max(np.asarray(steps, float)))
    shift = EULER_BIAS * float(beta) * h * far
    if not shift > EULER_BIAS_MAX * float(min_std):
        return False
    warnings.warn(
        f"the target lies far from the origin (|mu| up to {far:.3g}, sigma_min = "
        f"{float(min_std):.3g}): the Euler step of the drift beta*x biases the samples by "
        f"about {shift:.2g} (> {EULER_BIAS_MAX} sigma_min) at dt = {h:g}; centre the data "
        "(subtract its mean) or use a smaller --dt or method 'ode'",
        CoarseStepWarning, stacklevel=stacklevel)
    return True
