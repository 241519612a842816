"""`passive`: the reverse SDE of the exact x-marginal equation ∂_t p = β∇·(xp) + D_eff Δp,

    dx = [βx + 2D_eff(T−s) S(x, T−s)] ds + √(2D_eff) dW̄

(at τ = 0 the standard score-based model with D = D_T + D_A). The carry holds the step's
noise ξ, drawn one step ahead: then the draw is not fused into the score's loop (XLA
emitted that fusion, inverse-erf and reductions together, as scalar code: 2.5× slower;
docs/performance.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._linalg import dot0
from ..energetics import Energetics
from .api import uniform_grid
from .engine import Stepper, batched
from .registry import Method, Plan, register_method


def passive_stepper(score, p, t_final: float, dtype) -> Stepper:
    def init(key, n):
        k1, k2 = jax.random.split(key)
        x = score.sample_marginal(k1, n, t_final, dtype).T
        return {"x": x, "xi": jax.random.normal(k2, x.shape, dtype)}

    def step(c, i, s, h, key):
        t = t_final - s
        x = c["x"]
        sc = batched(score, "score", score.prepare(t, dtype), x)
        de = p.d_eff(t)
        return {"x": x + (p.beta * x + 2.0 * de * sc) * h + jnp.sqrt(2.0 * de * h) * c["xi"],
                "xi": jax.random.normal(key, x.shape, dtype)}

    return Stepper(init, step)


def _build(req) -> Plan:
    return Plan(passive_stepper(req.score, req.process, req.t_final, req.dtype),
                uniform_grid(req), info=dict(driver="OUDriver", driver_correction=False))


def passive_energetics(req, plan) -> Energetics:
    """U = −½β|x|² − 2D_eff log p (the drift βx + 2D_eff S = −∇U), its bath D_eff(T − s)
    and s_sys = −log p(x, T − s) (`activegen.energetics`)."""
    score, p, t_final, dtype = req.score, req.process, req.t_final, req.dtype

    def log_density(s, x):
        t = t_final - s
        return batched(score, "derivs", score.prepare(t, dtype), x).log_p

    def u(i, s, x, carry):
        t = t_final - s
        return -0.5 * p.beta * dot0(x, x) - 2.0 * p.d_eff(t) * log_density(s, x)

    return Energetics(u, None, temperature=lambda s: p.d_eff(t_final - s),
                      log_density=log_density)


register_method(Method(
    "passive", _build, energetics=passive_energetics,
    summary="reverse SDE of the exact x-marginal (D_eff(t)); exact for every tau; needs S",
))
