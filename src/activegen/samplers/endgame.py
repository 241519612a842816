"""The diffusion-model end game: stop generating at a small forward time t_min > 0, then one
denoising step with the score (`sample(..., t_min=...)`, `activegen sample --t-min`).

At t_min the x-marginal is the data smoothed by the forward kernel, x_t = m(t) x_0 + √v(t) ξ
(`ActiveOU.mean_scale`, `ActiveOU.variance`: Gaussian for the active OU process as for the
passive one), so the posterior mean of the data point given x_t is Tweedie's formula

    x̂_0 = E[x_0 | x_t] = (x_t + v(t) S(x_t, t)) / m(t).

Why: near t = 0 the score of data on a thin manifold (images) has ∇S ~ 1/v(t) in the
degenerate directions, so τ‖∇F‖ grows without bound and the first-order potential fails
for any fixed τ; stopped at t_min the run never enters that regime.

What it costs physically: the last step is not a force acting over time but an
instantaneous displacement of every particle by (v S + (1 − m) x_t)/m, a jump of length
≈ √v(t_min) per coordinate. In a trap experiment it is a measure-and-move (or the limit of a
potential −v log p switched on for an instant); it does no work the Sekimoto energetics
count, so `energetics=True` is refused with it.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .engine import derivs_at

#: the end game's default: stop where τ times the rms eigenvalue of ∇F_0 on the model's own
#: marginal reaches this (`LearnedScore.end_game_t_min`; chosen on digits, docs/learned.md)
END_GAME_THRESHOLD = 1.0


def default_t_min(spec, target, energetics: bool, t_final: float) -> float:
    """t_min when none is given: 0, except for a first-order method stepped on a uniform grid
    on a score model that scans its own validity (`end_game_t_min`, a learned model) and no
    energetics (the jump does no work the energetics could count); 0 also where the scan
    finds nothing to guard (its first point, the training t_min: data of full rank, which run
    to t = 0 as before) or its time is not below t_final."""
    scan = getattr(target, "end_game_t_min", None)
    if scan is None or energetics or not spec.first_order or spec.analytic_only:
        return 0.0
    t_min = scan(END_GAME_THRESHOLD)
    first = float(getattr(target, "config", {}).get("t_min", 0.0))
    return t_min if first * (1 + 1e-6) < t_min < t_final else 0.0


def tweedie_denoise(score, process, t: float, x, dtype):
    """x̂_0 = (x + v(t) S(x, t)) / m(t) for samples x (n, d) at forward time t; returns
    (x̂_0 (n, d) numpy, the mean jump length |x̂_0 − x|)."""
    xs = jnp.asarray(x, dtype).T
    s = derivs_at(score, score.prepare(t, dtype), xs, 0).score
    m, v = float(process.mean_scale(t)), float(process.variance(t))
    out = np.asarray((xs + v * s) / m).T
    jump = float(np.mean(np.linalg.norm(out - np.asarray(x), axis=-1)))
    return out, jump
