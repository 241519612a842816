"""sin and cos of a float32 array as one vectorisable polynomial (the learned pass's
Fourier features).

XLA's CPU sin and cos do not vectorise: on a (16, 20 000) float32 array the pair took
3.6 ms against 0.30 ms for this polynomial (timed side by side, docs/learned.md "Speed"),
and they were half the cost of a learned energy's value. The argument is reduced by Cody–Waite,
r = θ − 2πk (k = round(θ/2π), 2π split in two parts), folded into [−π/2, π/2] by
sin(r) = sin(±π − r), cos(r) = −cos(±π − r), and the Taylor series to u¹³ (sin) and
u¹⁶ (cos) is summed by Horner: max error ≈ 2·10⁻⁷ (2 ulp at 1) for |θ| ≲ 10⁴, against
the float64 values. float64 arrays use jnp.sin/jnp.cos (the tests compare the batched
derivatives with autodiff at 10⁻¹¹ there).
"""

import math

import jax.numpy as jnp

_2PI_HI = 6.28125                      # 2π to 8 bits: k·_2PI_HI is exact in float32
_2PI_LO = 2 * math.pi - _2PI_HI
_SIN = [(-1) ** k / math.factorial(2 * k + 1) for k in range(7)]   # u, u³, …, u¹³
_COS = [(-1) ** k / math.factorial(2 * k) for k in range(9)]       # 1, u², …, u¹⁶


def _horner(u2, coefs):
    acc = jnp.full_like(u2, coefs[-1])
    for c in reversed(coefs[:-1]):
        acc = acc * u2 + c
    return acc


def sincos(theta):
    """(sin θ, cos θ), elementwise; the polynomial above for float32 and lower, jnp's own
    functions for float64."""
    if theta.dtype == jnp.float64:
        return jnp.sin(theta), jnp.cos(theta)
    k = jnp.round(theta * (1.0 / (2 * math.pi)))
    r = (theta - k * _2PI_HI) - k * _2PI_LO
    hi, lo = r > 0.5 * math.pi, r < -0.5 * math.pi
    u = jnp.where(hi, math.pi - r, jnp.where(lo, -math.pi - r, r))
    u2 = u * u
    sign = jnp.where(hi | lo, -1.0, 1.0).astype(theta.dtype)
    return u * _horner(u2, _SIN), sign * _horner(u2, _COS)
