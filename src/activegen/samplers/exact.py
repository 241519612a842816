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
import jax.numpy as jnp

from ..physics.drivers import OUDriver
from ..errors import ActivegenError
from ..physics.stepping import joint_ou_matrices, thermal_amplitude, thermal_kick
from .api import uniform_grid
from .engine import Stepper, batched
from .registry import Method, Plan, register_method
from .schemes import SCHEMES, check_scheme


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


def exact_strang_stepper(score, p, t_final: float, dtype, inner: str = "heun",
                         normal=jax.random.normal) -> Stepper:
    """Scheme "strang": the reverse joint process split into its linear part, an OU process
    dz = Lz ds + dB in z = (x, η) per coordinate (L = [[β, −1], [0, −1/τ]], Cov dB =
    diag(2D_T, 2D_A/τ²) ds; `stepping.joint_ou_matrices` gives its exact step Φ, C), and
    the score part N(z, t) = (2D_T ∇_x log p, (2D_A/τ²) r), r = ∇_η log p + ητ/D_A:

        z½ = Φ_{h/2} z + C_{h/2} ξ;   z′ = z½ + ½h [N(z½) + N(z½ + h N(z½))];
        z_new = Φ_{h/2} z′ + C_{h/2} ξ′          (N at t − h/2)

    the score flow by Heun (inner="heun", two joint-score evaluations per step: the
    composition is symmetric to second order) or by one Euler step (inner="euler", one
    evaluation, first order in N's own flow). Uniform grids only (h a Python float).
    normal(key, shape, dtype): the normal draws (tests pass probes to read off the step's
    affine map on a Gaussian target)."""
    if p.tau == 0:
        raise ActivegenError("tau must be > 0 for method 'exact' (use 'passive' at tau = 0)")
    var = p.d_active / p.tau
    cache = {}

    def half(h):
        if h not in cache:
            phi, C = joint_ou_matrices(p.beta, p.tau, p.d_thermal, p.d_active, 0.5 * h)
            cache[h] = [float(v) for v in (phi[0, 0], phi[0, 1], phi[1, 1],
                                           C[0, 0], C[0, 1], C[1, 1])]
        return cache[h]

    def linear(x, eta, m, key):
        p00, p01, p11, c00, c01, c11 = m
        k1, k2 = jax.random.split(key)
        xi_e = normal(k2, eta.shape, eta.dtype)
        xi_x = normal(k1, x.shape, x.dtype) if c00 > 0 else 0.0
        return p00 * x + p01 * eta + c00 * xi_x + c01 * xi_e, p11 * eta + c11 * xi_e

    def flow(js, x, eta):
        sx, seta = batched(score, "joint_score", js, x, eta)
        return 2.0 * p.d_thermal * sx, (2.0 * p.d_active / p.tau**2) * (seta + eta / var)

    def init(key, n):
        x, eta = score.sample_joint(key, n, t_final, dtype)
        return {"x": x.T, "eta": eta.T}

    def step(c, i, s, h, key):
        m = half(h)
        k1, k2 = jax.random.split(key)
        x, eta = linear(c["x"], c["eta"], m, k1)
        t = t_final - s - 0.5 * h
        js = score.prepare_joint(t, dtype)
        nx, ne = flow(js, x, eta)
        if inner == "heun":
            nx1, ne1 = flow(js, x + h * nx, eta + h * ne)
            nx, ne = 0.5 * (nx + nx1), 0.5 * (ne + ne1)
        x, eta = linear(x + h * nx, eta + h * ne, m, k2)
        return {"x": x, "eta": eta}

    return Stepper(init, step)


def exact_lawson_stepper(score, p, t_final: float, dtype, normal=jax.random.normal) -> Stepper:
    """Scheme "lawson": the linear part's exact step Φ_h, C_h over the whole step (two normals
    per coordinate), the score part N (as in `exact_strang_stepper`) by the trapezoid on
    e^{L(h−u)} N (Heun in integrating-factor form, weak order 2 for additive noise):

        ζ = C_h ξ;   z̃ = Φ_h (z + h N(z, t)) + ζ;   z′ = Φ_h z + ½h [Φ_h N(z, t) + N(z̃, t − h)] + ζ

    two joint-score evaluations and two normals per step (strang: four), the normals drawn
    one step ahead and carried (docs/performance.md: a draw fused into the score's loop is
    slow)."""
    if p.tau == 0:
        raise ActivegenError("tau must be > 0 for method 'exact' (use 'passive' at tau = 0)")
    var = p.d_active / p.tau
    cache = {}

    def full(h):
        if h not in cache:
            phi, C = joint_ou_matrices(p.beta, p.tau, p.d_thermal, p.d_active, h)
            cache[h] = [float(v) for v in (phi[0, 0], phi[0, 1], phi[1, 1],
                                           C[0, 0], C[0, 1], C[1, 1])]
        return cache[h]

    def flow(t, x, eta):
        sx, seta = batched(score, "joint_score", score.prepare_joint(t, dtype), x, eta)
        return 2.0 * p.d_thermal * sx, (2.0 * p.d_active / p.tau**2) * (seta + eta / var)

    def draw(key, shape):  # the step's normals, drawn one step ahead (as passive's ξ)
        k1, k2 = jax.random.split(key)
        return jnp.stack([normal(k2, shape, dtype), normal(k1, shape, dtype)])

    def init(key, n):
        k1, k2 = jax.random.split(key)
        x, eta = score.sample_joint(k1, n, t_final, dtype)
        return {"x": x.T, "eta": eta.T, "xi": draw(k2, x.T.shape)}

    def step(c, i, s, h, key):
        p00, p01, p11, c00, c01, c11 = full(h)
        x, eta = c["x"], c["eta"]
        t = t_final - s
        xi_e, xi_x = c["xi"][0], c["xi"][1]
        zx = c01 * xi_e + c00 * xi_x
        ze = c11 * xi_e
        nx, ne = flow(t, x, eta)
        lx, le = p00 * x + p01 * eta, p11 * eta                     # Φ z
        mx, me = p00 * nx + p01 * ne, p11 * ne                      # Φ N(z)
        px, pe = lx + h * mx + zx, le + h * me + ze                 # z̃
        nx1, ne1 = flow(t - h, px, pe)
        return {"x": lx + 0.5 * h * (mx + nx1) + zx, "eta": le + 0.5 * h * (me + ne1) + ze,
                "xi": draw(key, x.shape)}

    return Stepper(init, step)


def _default_dt(req) -> float:
    return SCHEMES[req.options["scheme"]].default_dt(req.process.tau)


def _build(req) -> Plan:
    scheme = check_scheme(req.options["scheme"], ("euler", "strang", "strang-euler", "lawson"))
    if scheme == "euler":
        stepper = exact_stepper(req.score, req.process, req.t_final, req.dtype)
    elif scheme == "lawson":
        stepper = exact_lawson_stepper(req.score, req.process, req.t_final, req.dtype)
    else:
        stepper = exact_strang_stepper(req.score, req.process, req.t_final, req.dtype,
                                       "euler" if scheme == "strang-euler" else "heun")
    return Plan(stepper,
                uniform_grid(req),
                info=dict(driver="OUDriver", driver_correction=False, scheme=scheme),
                tau_steps=SCHEMES[scheme].tau_steps(req.process.tau))


register_method(Method(
    "exact", _build, carries_eta=True, needs_joint=True,
    options={"scheme": "lawson"}, default_dt=_default_dt,
    summary="reverse of the joint (x, eta) process (velocity score): the exact reference",
))
