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
from ..physics.energetics import Energetics
from ..physics.stepping import linear_coefficients
from .api import uniform_grid
from .engine import Stepper, batched, score_log_density
from .registry import Method, Plan, register_method
from .schemes import SCHEMES, check_scheme


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


def passive_heun_stepper(score, p, t_final: float, dtype) -> Stepper:
    """Scheme "heun": βx exactly, the score term g = 2D_eff S by the explicit weak order-2
    scheme for additive noise (Kloeden & Platen §15.1, in exponential form), with
    A = e^{βh}, φ = (e^{βh} − 1)/(βh), ψ = (e^{2βh} − 1)/(2βh):

        ζ  = √(2 D_eff(t − h/2) h ψ) ξ
        x̃  = A x + φ h g(x, t) + ζ
        x′ = A x + ½h [A g(x, t) + g(x̃, t − h)] + ζ

    two score evaluations per step; ξ drawn one step ahead as in `passive_stepper`."""

    def init(key, n):
        k1, k2 = jax.random.split(key)
        x = score.sample_marginal(k1, n, t_final, dtype).T
        return {"x": x, "xi": jax.random.normal(k2, x.shape, dtype)}

    def g(t, x, d_eff):
        return 2.0 * d_eff * batched(score, "score", score.prepare(t, dtype), x)

    def step(c, i, s, h, key):
        t = t_final - s
        x = c["x"]
        a, phi, psi = linear_coefficients(p.beta, h)
        g0 = g(t, x, p.d_eff(t))
        base = a * x + jnp.sqrt(2.0 * p.d_eff(t - 0.5 * h) * h * psi) * c["xi"]
        x_pred = base + (phi * h) * g0
        # D_eff at the end of the step (at t = 0 its limit t → 0⁺: at τ = 0 D_eff jumps there)
        d_end = p.d_eff(jnp.maximum(t - h, 1e-6 * h))
        x_new = base + (0.5 * h) * (a * g0 + g(t - h, x_pred, d_end))
        return {"x": x_new, "xi": jax.random.normal(key, x.shape, dtype)}

    return Stepper(init, step)


def _default_dt(req) -> float:
    return SCHEMES[req.options["scheme"]].default_dt(req.process.tau)


def _build(req) -> Plan:
    scheme = check_scheme(req.options["scheme"])
    make = passive_heun_stepper if scheme == "heun" else passive_stepper
    return Plan(make(req.score, req.process, req.t_final, req.dtype),
                uniform_grid(req),
                info=dict(driver="OUDriver", driver_correction=False, scheme=scheme))


def passive_energetics(req, plan) -> Energetics:
    """U = −½β|x|² − 2D_eff log p (the drift βx + 2D_eff S = −∇U), its bath D_eff(T − s)
    and s_sys = −log p(x, T − s) (`physics.energetics`)."""
    score, p, t_final, dtype = req.score, req.process, req.t_final, req.dtype

    log_density = score_log_density(score, t_final, dtype)

    def u(i, s, x, carry):
        t = t_final - s
        return -0.5 * p.beta * dot0(x, x) - 2.0 * p.d_eff(t) * log_density(s, x)

    return Energetics(u, None, temperature=lambda s: p.d_eff(t_final - s),
                      log_density=log_density)


register_method(Method(
    "passive", _build, energetics=passive_energetics,
    summary="reverse SDE of the exact x-marginal (D_eff(t)); exact for every tau; needs S",
    options={"scheme": "heun"}, default_dt=_default_dt,
))
