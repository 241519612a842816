"""A twin of the feedback loop that imposes a protocol (docs/lab.md, "The loop").

The lab cannot apply F̂(x(s), T − s) at every instant. Its loop measures the position at the
update times s_n = nΔ (period Δ), y_n = x(s_n) + σ ξ_n (localisation noise σ), computes
f_n = clip(F̂(y_n, T − s_n)) (|f| at most the actuator's limit), and applies f_n from
s_n + δ (latency δ) until the next force arrives, s_{n+1} + δ (zero-order hold). Between
steps the applied force is constant and the bead moves with its own noises,

    dx = f ds + η ds + √(2D_T) dW,     τ dη = −η ds + √(2D_A) dW′,

which the twin propagates exactly (`stepping.ou_integral_step`: η and ∫η jointly; the
thermal displacement √(2D_T h) ξ). Its steps are of one length h with Δ = m h and δ = l h
(integers m >= 1, l >= 0; the last step ends at T), so the twin is exact in law for the OU
bath whatever h: what it adds to the ideal replay is only the loop. Before the first delayed
force arrives (s < δ) the force of the start position is held.

Several loops run side by side in one compiled program (`lab check`'s scan): loop v's
particles are the rows v·d … v·d + d − 1 of the engine's (V·d, N) state, each with its own
period, latency, localisation noise and force limit and all with the same noises (the start,
η, the thermal and the localisation draws: common random numbers, so that the loops differ
by their imperfections alone).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ActivegenError, check_nonnegative, check_positive
from ..physics.stepping import (
    ou_integral_coefficients,
    ou_integral_step,
    thermal_amplitude,
    thermal_kick,
)
from .lookup import clip_norm
from .protocol import Protocol, interpolate

#: The most sub-steps per update period tried to make the latency a whole number of steps.
MAX_SUBSTEPS = 64


@dataclasses.dataclass(frozen=True)
class Loop:
    """One loop in model units (s, µm, µm/s): update period Δ, latency δ >= 0,
    localisation noise σ >= 0, force limit cap (None: none)."""

    period: float
    latency: float = 0.0
    noise: float = 0.0
    cap: float | None = None

    def __post_init__(self):
        check_positive("update_period_s", self.period)
        check_nonnegative("latency_s", self.latency)
        check_nonnegative("position_noise_um", self.noise)
        if self.cap is not None:
            check_positive("max_force_pN", self.cap)


def loop_step(loops) -> float:
    """The step h: the shortest period over the smallest m <= MAX_SUBSTEPS that makes every
    period and latency a whole number of steps (to 10⁻⁶), else over MAX_SUBSTEPS (the
    latencies then rounded to the step: `Loop`s' effective values are in the run's info)."""
    base = min(lp.period for lp in loops)
    for m in range(1, MAX_SUBSTEPS + 1):
        h = base / m
        if all(abs(v / h - round(v / h)) < 1e-6 for lp in loops for v in (lp.period,
                                                                          lp.latency)):
            return h
    return base / MAX_SUBSTEPS


def step_grid(t_final: float, h: float) -> np.ndarray:
    """Reverse times 0, h, 2h, …, T (the last step ends at T, shorter where T/h is not whole)."""
    k = int(math.floor(t_final / h * (1 + 1e-12)))
    s = np.arange(k + 1) * h
    if t_final - s[-1] > 1e-9 * h:
        s = np.append(s, t_final)
    s[-1] = t_final
    return s


def loop_stepper(protocol: Protocol, s_grid, loops, dtype):
    """The engine's stepper of V loops side by side (module doc), on the step grid s_grid
    (steps of h = s_1: Δ = m h, δ = l h, rounded)."""
    from ..samplers.engine import Stepper

    p, d, nv = protocol.process, protocol.dim, len(loops)
    t_final = protocol.t_final
    ftab = protocol._table(protocol.force, dtype)
    h = np.diff(s_grid)
    coef = np.array([ou_integral_coefficients(float(hi), p.tau, p.d_active / p.tau)
                     for hi in h]).T
    coef = tuple(jnp.asarray(c, dtype) for c in coef)
    amp = jnp.asarray(thermal_amplitude(p.d_thermal, h), dtype)
    m = np.array([max(1, round(lp.period / h[0])) for lp in loops], np.int32)
    l_ = np.array([round(lp.latency / h[0]) for lp in loops], np.int32)
    slots = int(np.max(l_ // m)) + 2
    rows = lambda a: jnp.asarray(np.repeat(np.asarray(a), d)[:, None])  # noqa: E731
    m_r, l_r = rows(m), rows(l_)
    noise_r = rows(np.array([lp.noise for lp in loops], float)).astype(dtype)
    cap = np.array([np.inf if lp.cap is None else lp.cap for lp in loops])
    cap_pts = None if np.all(np.isinf(cap)) else jnp.asarray(cap, dtype)
    x_sd, eta_sd = math.sqrt(p.stationary_variance), math.sqrt(p.d_active / p.tau)

    def tiled(z):  # one draw (d, N) shared by every loop (common random numbers)
        return jnp.tile(z, (nv, 1))

    def loop_force(x, s, key):  # x (V·d, N) -> each loop's computed force, (V·d, N)
        n = x.shape[1]
        y = x + noise_r * tiled(jax.random.normal(key, (d, n), x.dtype))
        pts = y.reshape(nv, d, n).transpose(0, 2, 1).reshape(nv * n, d)
        f = interpolate(ftab, t_final - s, pts)
        if cap_pts is not None:
            f = clip_norm(f, jnp.repeat(cap_pts, n)[:, None], jnp)
        return f.reshape(nv, n, d).transpose(0, 2, 1).reshape(nv * d, n)

    def init(key, n):
        k1, k2, k3 = jax.random.split(key, 3)
        x = tiled(x_sd * jax.random.normal(k1, (d, n), dtype))
        f0 = loop_force(x, 0.0, k3)
        return {"x": x, "eta": eta_sd * jax.random.normal(k2, (d, n), dtype), "f": f0,
                "buf": jnp.broadcast_to(f0, (slots,) + x.shape)}

    def step(c, i, s, hi, key):
        k_meas, k_eta, k_th = jax.random.split(key, 3)
        x = c["x"]
        new = loop_force(x, s, k_meas)
        write = ((i % m_r) == 0) & (jnp.arange(slots)[:, None, None] == (i // m_r) % slots)
        buf = jnp.where(write, new[None], c["buf"])
        late = i - l_r
        slot = jnp.broadcast_to((jnp.maximum(late, 0) // m_r) % slots, x.shape)
        due = jnp.take_along_axis(buf, slot[None], axis=0)[0]
        f = jnp.where((late >= 0) & (late % m_r == 0), due, c["f"])
        eta_new, inc = ou_integral_step(c["eta"], tuple(cf[i] for cf in coef), k_eta)
        if p.d_thermal > 0:
            inc = thermal_kick(inc, amp[i], k_th)
        return {"x": x + f * hi + tiled(inc), "eta": eta_new, "f": f, "buf": buf}

    effective = [dict(update_period=float(mi * h[0]), latency=float(li * h[0]),
                      position_noise=lp.noise, max_force=lp.cap)
                 for mi, li, lp in zip(m, l_, loops)]
    return Stepper(init, step), effective


def loop_replay(protocol: Protocol, loops, n: int, key=None, *, seed: int | None = None,
                save_every: int | None = None, dtype=None, progress: bool = False):
    """n samples of the protocol imposed by each of the `Loop`s (module doc), side by side in
    one run. Returns a `Sampled` whose samples are (n, V·d): loop v's are the columns
    v·d … v·d + d − 1 (`split_loops`); info["loops"]: each loop's effective period and
    latency (whole steps), info["step"]: h."""
    from ..samplers.active import field_method
    from ..samplers.api import Request, check_run, execute
    from ..samplers.engine import StepGrid
    from ..samplers.registry import Plan

    loops = list(loops)
    t_final = protocol.t_final
    for lp in loops:
        for name, v in (("update_period_s", lp.period), ("latency_s", lp.latency)):
            if v > t_final:
                raise ActivegenError(f"{name} must be <= the protocol's T = {t_final:g} s, "
                                     f"got {v:g}")
    n, t_final, _, key, save_every, _ = check_run(n, t_final, None, key, seed, save_every,
                                                  None)
    dtype = dtype or jnp.result_type(float)
    h = loop_step(loops)
    s = step_grid(t_final, h)
    stepper, effective = loop_stepper(protocol, s, loops, dtype)
    spec = field_method()
    req = Request(None, None, protocol.process, n, t_final, None, dtype, None, False,
                  {"scheme": "euler"}, method=spec)
    plan = Plan(stepper, StepGrid(s), info={"loops": effective, "step": h,
                                            "scheme": "exact between steps (held force)"})
    res = execute(spec, plan, req, key, save_every=save_every, progress=progress,
                  chunk_size=None, warn=False, desc=f"loop ({protocol.meta['method']})",
                  d=protocol.dim * len(loops))
    res.info.update(d=protocol.dim, protocol={k: protocol.meta.get(k) for k in
                                              ("method", "grid", "time_grid", "source")})
    return res


def split_loops(samples, dim: int) -> list[np.ndarray]:
    """The (n, d) samples of each loop from `loop_replay`'s (n, V·d)."""
    x = np.asarray(samples)
    return [x[:, v * dim:(v + 1) * dim] for v in range(x.shape[1] // dim)]


def zoh_stationary_variance(k: float, period: float, latency: float, d_thermal: float,
                            tau: float, d_active: float, noise: float = 0.0) -> float:
    """The exact stationary variance of x at the update times under the loop with the
    harmonic force F = −k x (docs/lab.md, "The loop in a harmonic trap").

    δ = qΔ + r (0 <= r < Δ). Over period n the force −k y_{n−q−1} acts for r and −k y_{n−q}
    for Δ − r (y_j = x_j + σ ξ_j the measurements), and the OU noise is propagated exactly:

        x_{n+1} = x_n − k r y_{n−q−1} − k(Δ − r) y_{n−q} + I_n + √(2D_TΔ) ξ,
        η_{n+1} = a η_n + σ_η ξ1,   I_n = w (η_n + η_{n+1}) + c2 ξ2 = w(1 + a) η_n + wσ_η ξ1 + c2 ξ2

    (`stepping.ou_integral_coefficients` at h = Δ). With z_n = (x_n, η_n, y_{n−1}, …,
    y_{n−q−1}) this is z_{n+1} = M z_n + G w_n, w_n ~ N(0, I), and the stationary
    covariance solves P = M P Mᵀ + G Gᵀ (discrete Lyapunov); returns P_xx."""
    from scipy.linalg import solve_discrete_lyapunov

    q = int(math.floor(latency / period * (1 + 1e-12)))
    r = max(latency - q * period, 0.0)
    nz = 3 + q
    M, G = np.zeros((nz, nz)), np.zeros((nz, 4))
    a, sd, w, c2 = ou_integral_coefficients(period, tau, d_active / tau)
    m, c1 = w * (1.0 + a), w * sd
    M[0, 0], M[0, 1] = 1.0, m
    G[0, 1:] = c1, c2, thermal_amplitude(d_thermal, period)
    w_new, w_old = k * (period - r), k * r
    if q == 0:  # y_{n−q} = y_n = x_n + σ ξ_n, measured now
        M[0, 0] -= w_new
        G[0, 0] -= w_new * noise
    else:
        M[0, 2 + q - 1] -= w_new
    M[0, 2 + q] -= w_old
    M[1, 1], G[1, 1] = a, sd
    M[2, 0], G[2, 0] = 1.0, noise  # the buffer: y_n in, the oldest out
    for j in range(1, q + 1):
        M[2 + j, 2 + j - 1] = 1.0
    if np.max(np.abs(np.linalg.eigvals(M))) >= 1.0:
        raise ActivegenError(f"the loop is unstable at k = {k:g}, period {period:g}, "
                             f"latency {latency:g} (no stationary variance)")
    return float(solve_discrete_lyapunov(M, G @ G.T)[0, 0])


def default_period(protocol: Protocol) -> float:
    """The update period of a loop whose lab gives none: the ideal replay's default step
    (`schemes.active_heun_default_dt(τ)`, at most `validity.trap_step_limit(β)`)."""
    from ..samplers.schemes import active_heun_default_dt
    from ..samplers.validity import trap_step_limit

    p = protocol.process
    return min(active_heun_default_dt(p.tau), trap_step_limit(p.beta), protocol.t_final)


def lab_loop(protocol: Protocol, lab) -> Loop:
    """The `Loop` of a lab's feedback block in model units (µm, s; the force limit over γ);
    an absent period is `default_period`."""
    fb = lab.feedback
    return Loop(period=fb.update_period_s or default_period(protocol),
                latency=fb.latency_s or 0.0, noise=fb.position_noise_um or 0.0,
                cap=None if fb.max_force_pN is None else fb.max_force_pN / lab.gamma)
