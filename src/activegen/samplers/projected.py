"""`fox-sc` (alias `refined`): the self-consistent effective potential.

Exactly, the x-marginal of dx = (F + η) ds + √(2D_T) dW̄ runs the forward marginal
backwards when F = βx + (D_eff + D_T) S − E[η | x]. fox-sc takes
F_SC = βx + (D_eff + D_T) S − Σ_j θ_j(s) φ_j(x) with V_F's features φ = (S, (∇S)S,
∇(∇·S), x, 1) and θ fitted at every step, per block of particles, as the least-squares
projection of the particles' own η (`forces.fit_projection`): F_SC = −∇V_SC, no velocity
score. It does not rest on the small-τ expansion: its τ‖∇F‖ is reported, not warned on.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..physics.energetics import Energetics
from ..errors import ActivegenError
from ..physics.forces import (
    fit_projection,
    force_jacobian_norm,
    force_projected,
    potential_projected_gauged,
    projection_features,
    projection_potentials,
)
from .active import active_default_dt, marginal_start, scheme_stepper
from .api import default_driver, uniform_grid
from .engine import batched, derivs_at
from .schemes import SCHEMES, check_scheme
from .registry import Method, Plan, register_method

#: fox-sc needs at least this many particles per fitted coefficient.
FIT_MIN_PER_COEF = 20


def projected_field(score, p, dtype, swimmer: bool):
    """field(t, x, η) -> (F_SC, ‖∇F_0‖): θ fitted to the (x, η) of the particles it is
    called with (one block: blocks stay independent, so chunking changes nothing);
    `swimmer` adds the non-Gaussian driver's feature (Δp/p)S."""

    def field(t, x, eta):
        dv = derivs_at(score, score.prepare(t, dtype), x, 2)
        theta = fit_projection(projection_features(x, dv, swimmer), eta)
        return force_projected(p, t, x, dv, theta), force_jacobian_norm(p, t, dv)

    return field


def _build(req) -> Plan:
    drv = req.driver or default_driver(req.process)
    field = projected_field(req.score, req.process, req.dtype,
                            getattr(drv, "kappa", 0.0) != 0.0)
    scheme = check_scheme(req.options["scheme"])
    stepper = scheme_stepper(scheme)(field, marginal_start(req.score, req.t_final, req.dtype),
                   req.process, req.t_final, req.dtype, drv)
    info = dict(driver=type(drv).__name__ if req.driver is not None else "OUDriver",
                driver_correction=False, scheme=scheme)
    return Plan(stepper, uniform_grid(req), info=info,
                tau_steps=SCHEMES[scheme].tau_steps(req.process.tau))


def _energetics(req, plan) -> Energetics:
    """U = V_SC(x, T − s) with θ fitted to the carry's ensemble (x, η): at a step's start the
    θ of that step, at its end the next step's; in V_F's gauge, its constant set so that its
    mean over that ensemble is V_F's (`forces.potential_projected_gauged`: without it float32
    loses V_SC's differences to the ill-determined coefficients' huge constant)."""
    drv = req.driver or default_driver(req.process)
    if getattr(drv, "kappa", 0.0) != 0.0:
        raise ActivegenError(
            f"energetics needs a force with a potential; fox-sc with {type(drv).__name__} "
            "fits the swimmer feature, which is not a gradient"
        )
    score, p, t_final, dtype = req.score, req.process, req.t_final, req.dtype

    def u(i, s, x, carry):
        t = t_final - s
        st = score.prepare(t, dtype)
        dv_c = batched(score, "derivs", st, carry["x"])
        theta = fit_projection(projection_features(carry["x"], dv_c), carry["eta"])
        psi_ref = jnp.mean(projection_potentials(carry["x"], dv_c), axis=-1)
        return potential_projected_gauged(p, t, x, batched(score, "derivs", st, x), theta,
                                          psi_ref)

    return Energetics(u)


register_method(Method(
    "fox-sc", _build, energetics=_energetics, aliases=("refined",), active=True, carries_eta=True,
    min_n=lambda d: FIT_MIN_PER_COEF * (d + 5), validity_map=True,
    options={"scheme": "heun"}, default_dt=active_default_dt,
    summary="V_F's features with coefficients refitted each step to E[eta | x] "
            "(beyond first order, no velocity score); needs S, grad S, grad(div S)",
))
