"""`exact`: the reverse of the joint (x, η) process, started from the joint law,

    dx = [βx − η + 2D_T ∇_x log p(x,η)] ds + √(2D_T) dW̄
    dη = [η/τ + (2D_A/τ²) ∇_η log p(x,η)] ds + (√(2D_A)/τ) dW̄'

(the velocity-score sampler, Lamtyugina et al. arXiv:2411.07233: the accuracy reference).
Writing ∇_η log p = −ητ/D_A + r, the η equation is τ dη = −η ds + (2D_A/τ) r ds + √(2D_A)
dW̄', stepped with the exact OU update plus the exponential-integrator term
(1 − e^{−h/τ})(2D_A/τ) r.
"""

from __future__ import annotations

import math

import jax

from ..drivers import OUDriver
from ..errors import ActivegenError
from ..stepping import thermal_amplitude, thermal_kick
from .api import uniform_grid
from .engine import Stepper, batched
from .registry import Method, Plan, register_method


def exact_stepper(score, p, t_final: float, dtype) -> Stepper:
    if p.tau == 0:
        raise ActivegenError("tau must be > 0 for method 'exact' (use 'passive' at tau = 0)")
    drv = OUDriver(p.tau, p.d_active)

    def init(key, n):
        x, eta = score.sample_joint(key, n, t_final, dtype)
        return {"x": x.T, "eta": eta.T}

    def step(c, i, s, h, key):
        t = t_final - s
        x, eta = c["x"], c["eta"]
        js = score.prepare_joint(t, dtype)
        sx, seta = batched(score, "joint_score", js, x, eta)
        r = seta + eta / drv.variance
        k1, k2 = jax.random.split(key)
        x_new = x + (p.beta * x - eta + 2.0 * p.d_thermal * sx) * h
        if p.d_thermal > 0:
            x_new = thermal_kick(x_new, thermal_amplitude(p.d_thermal, h), k1)
        kick = -math.expm1(-h / p.tau) * 2.0 * p.d_active / p.tau
        return {"x": x_new, "eta": drv.step(eta, h, k2) + kick * r}

    return Stepper(init, step)


def _build(req) -> Plan:
    return Plan(exact_stepper(req.score, req.process, req.t_final, req.dtype),
                uniform_grid(req), info=dict(driver="OUDriver", driver_correction=False),
                tau_steps=req.process.tau)


register_method(Method(
    "exact", _build, carries_eta=True, needs_joint=True,
    summary="reverse of the joint (x, eta) process (velocity score): the exact reference",
))
