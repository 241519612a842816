"""Stochastic energetics (Sekimoto) along a generating run, per particle (docs/thermodynamics.md).

A generating particle at reverse time s moves in the potential U(x, s) = V(x, T − s) (V as
THEORY.md writes it: log p the normalised log-density, no constant dropped), driven by its
self-propulsion η and its thermal bath:

    dx = [F + η] ds + √(2D_T) dW̄,    F = −∇U.

Along a path, in the Stratonovich sense,

    W     = ∫ ∂_s U(x_s, s) ds          protocol work (the field changing in time)
    W_act = ∫ η ∘ dx                    active work (the self-propulsion's)
    Q     = ∫ (F + η) ∘ dx              heat to the bath
    ΔU    = U(x_T, T) − U(x_0, 0),      ΔU = W + W_act − Q (first law).

A step from (x, s, η) to (x′, s′ = s + h, η′) of a stepper whose position update moves x by
ē h with η (ē = ½(η + η′) for the trapezoid update, η for the left point), with U₀ = U(x, s),
U_m = U(x′, s) (the step's own field) and U₁ = U(x′, s′), adds

    ΔW     = U₁ − U_m                              (the field's change at the new position)
    ΔW_act = ē·(x′ − x − ē h) + ½h(|η|² + |η′|²)
    ΔQ     = ΔW_act − (U_m − U₀)                  (U_m − U₀ = −∫F·dx along the step: exact)

so the first law holds per particle and per step by construction (to rounding). The η·η part
of ΔW_act is the trapezoid rule on |η(u)|², whose mean over a step is exact for a stationary
noise; the naive ē·ē h would carry a relative bias h/(2τ) (E|½(η + η′)|² = (D_A/τ)(1 + e^{−h/τ})/2
per coordinate). The remaining parts converge at first order in h.

Passive particle (`passive`): dx = b ds + √(2D_eff) dW̄ with b = βx + 2D_eff S = −∇U,
U = −½β|x|² − 2D_eff log p; W_act = 0 and Q = ∫ b ∘ dx. Its total entropy production is

    Σ = Δs_sys + ∫ dQ / D_eff(T − s),      s_sys = −log p(x, T − s),

(`Energetics.temperature`, `Energetics.log_density`); its mean rate is E|βx + D_eff S|²/D_eff ≥ 0.

Active particle at D_T = 0 (fox, ucn, naive, a replayed protocol; `Energetics.force`): the
entropy production of the x-path, with x even and ẋ odd under time reversal (the path
ratio of Fodor et al. 2016 / η even in Dabelow–Bo–Eichhorn 2019). With η = ẋ − F, the OU
path weight exp(−(1/4D_A)∫|τη̇ + η|² ds) and the time-reversed path under the reversed
protocol (the Jacobians of η ↦ x cancel between the two),

    Σ_path = (1/D_A) ∫ (F − τẍ)·(ẋ − τḞ) ds       (Ḟ = dF(x_s, s)/ds along the path)
           = (1/D_A) [∫F∘dx − (τ/2)Δ|F|² − (τ/2)Δ|ẋ|² + τ²∫|Ḟ|² ds + τ²∫Ḟ∘dη],

using ẍ = Ḟ + η̇. Every term is finite at D_T = 0 (x is C¹); per step ∫F∘dx = −(U_m − U₀)
exactly, Ḟ h = F(x′, s′) − F(x, s), ∫Ḟ∘dη ≈ (ΔF/h)·Δη (the step average of Ḟ against the
increment: Stratonovich). The reverse process starts from the forward end law with ẋ
flipped, so the boundary term is Δs_sys = log p_start(x_0, η_0) − log p_end(x_T, η_T), with
p_start = p(x, T) N(η; 0, D_A/τ) (the samplers' start) and p_end = p(x, 0) N(η; 0, D_A/τ),
the law of ideal generation (exact for `exact`, approximate for the first-order methods);
entropy_production = Δs_sys + Σ_path. In a time-independent harmonic trap the extensive
parts cancel (Σ_path is a boundary term: no entropy production for linear forces, as Fodor
et al. find). The Q/D_T definition (Mandal–Klymko–DeWeese 2017) diverges as D_T → 0.

The wrapper `with_energetics(stepper, energetics)` adds the accumulators to a stepper's carry
under "extras" (per-particle arrays the engine returns) and carries U(x, s) under "energy_u".
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp

from .._linalg import dot0

#: Per-particle entries `sample(..., energetics=True)` adds to Sampled.info.
ENERGETIC_KEYS = ("work", "active_work", "heat", "potential_change")
#: The passive particle's entropy entries (s_sys change, medium entropy ∫dQ/D_eff, total).
ENTROPY_KEYS = ("system_entropy_change", "medium_entropy", "entropy_production")


def path_entropy_step(f0, f1, eta, eta_new, u0, u_mid, h, tau, d_active):
    """The extensive part of one step's Σ_path (module doc) (N,):
    (1/D_A)[−(U_m − U₀) + τ²(|ΔF|²/h + ΔF·Δη/h)]."""
    df = f1 - f0
    return (-(u_mid - u0) + tau * tau * (dot0(df, df) + dot0(df, eta_new - eta)) / h) / d_active


def path_entropy_boundary(f, eta, tau):
    """−(τ/2)(|F|² + |ẋ|²), ẋ = F + η, at one point of the path: its change from start to
    end, over D_A, is Σ_path's boundary part (module doc)."""
    v = f + eta
    return -0.5 * tau * (dot0(f, f) + dot0(v, v))


def eta_log_density(eta, tau, d_active):
    """log N(η; 0, (D_A/τ) I) per particle, η (d, N)."""
    var = d_active / tau
    d = eta.shape[0]
    return -0.5 * dot0(eta, eta) / var - 0.5 * d * jnp.log(2 * jnp.pi * var)


class Energetics(NamedTuple):
    """How a method's particle moves in a potential.

    potential(i, s, x, carry) -> U(x, s) (N,): x (d, N); i the step index (s = s_i, or
    s_{i+1} with i + 1); carry the stepper's carry whose ensemble sets any fitted coefficient
    (fox-sc's θ). eta_mean: "trapezoid" (x moves by ½(η + η′) h, as every active method's
    `stepping.active_update`) or None (no self-propulsion: passive). temperature(s) -> D of
    the bath for the medium entropy ∫dQ/D (passive) and log_density(s, x) -> log p(x, T − s) (N,) for s_sys; None where no
    entropy production is defined (docs/thermodynamics.md). force(i, s, x, carry) -> F (d, N)
    and active_noise = (τ, D_A): the active particle's x-path entropy production (module doc;
    D_T = 0 only); with log_density also its boundary term."""

    potential: Callable
    eta_mean: str | None = "trapezoid"
    temperature: Callable | None = None
    log_density: Callable | None = None
    force: Callable | None = None
    active_noise: tuple | None = None


def eta_displacement_rate(eta, eta_new, rule: str | None):
    """ē: the velocity η contributes to a step's position update."""
    if rule is None:
        return None
    if rule == "trapezoid":
        return 0.5 * (eta + eta_new)
    raise ValueError(f"eta_mean must be 'trapezoid' or None, got {rule!r}")


def step_increments(u0, u_mid, u1, x, x_new, eta, eta_new, h, rule: str | None):
    """(ΔW, ΔW_act, ΔQ, ΔU) of one step (module doc); all (N,)."""
    dux = u_mid - u0
    dw = u1 - u_mid
    ebar = eta_displacement_rate(eta, eta_new, rule)
    if ebar is None:
        dwa = jnp.zeros_like(dw)
    else:
        dwa = dot0(ebar, x_new - x - ebar * h) + 0.5 * h * (dot0(eta, eta)
                                                           + dot0(eta_new, eta_new))
    return dw, dwa, dwa - dux, u1 - u0


def with_energetics(stepper, en: Energetics):
    """The stepper with per-particle accumulators of W, W_act, Q, ΔU (and the passive
    entropy terms where `en` defines them) in carry["extras"]."""
    entropy = en.temperature is not None and en.log_density is not None

    active = en.force is not None and en.active_noise is not None
    own = ("energy_u", "extras", "energy_f")

    def init(key, n):
        c = stepper.init(key, n)
        u = en.potential(0, 0.0, c["x"], c)
        z = jnp.zeros_like(u)
        ex = {k: z for k in ENERGETIC_KEYS}
        if entropy:
            ex.update(medium_entropy=z, log_p_start=en.log_density(0.0, c["x"]))
        out = {**c, "energy_u": u, "extras": ex}
        if active:
            ex.update(path_entropy=z, eta_log_change=z)
            if en.log_density is not None:
                ex["log_p_start"] = en.log_density(0.0, c["x"])
            out["energy_f"] = en.force(0, 0.0, c["x"], c)
        return out

    def step(c, i, s, h, key):
        inner = {k: v for k, v in c.items() if k not in own}
        new = stepper.step(inner, i, s, h, key)
        x, x_new = c["x"], new["x"]
        u_mid = en.potential(i, s, x_new, inner)
        u1 = en.potential(i + 1, s + h, x_new, new)
        dw, dwa, dq, du = step_increments(c["energy_u"], u_mid, u1, x, x_new,
                                          c.get("eta"), new.get("eta"), h, en.eta_mean)
        ex = dict(c["extras"])
        for k, v in zip(ENERGETIC_KEYS, (dw, dwa, dq, du)):
            ex[k] = ex[k] + v
        if entropy:
            ex["medium_entropy"] = ex["medium_entropy"] + dq / en.temperature(s)
        out = {**new, "energy_u": u1, "extras": ex}
        if active:
            tau, d_a = en.active_noise
            f0, f1 = c["energy_f"], en.force(i + 1, s + h, x_new, new)
            eta, eta_new = c["eta"], new["eta"]
            ex["path_entropy"] = ex["path_entropy"] + path_entropy_step(
                f0, f1, eta, eta_new, c["energy_u"], u_mid, h, tau, d_a) + (
                path_entropy_boundary(f1, eta_new, tau) - path_entropy_boundary(f0, eta, tau)
            ) / d_a
            ex["eta_log_change"] = ex["eta_log_change"] + (
                eta_log_density(eta_new, tau, d_a) - eta_log_density(eta, tau, d_a))
            out["energy_f"] = f1
        return out

    return type(stepper)(init, step)


def finish(extras: dict, log_density_end=None) -> dict:
    """The info entries from the gathered extras: W, W_act, Q, ΔU and, with the passive
    entropy terms, Δs_sys = −log p(x_T, 0) + log p(x_0, T) (log_density_end: log p(x_T, 0)
    (N,)), the medium entropy and their sum."""
    import numpy as np

    out = {k: np.asarray(extras[k]) for k in ENERGETIC_KEYS}
    if "path_entropy" in extras:
        sig = np.asarray(extras["path_entropy"])
        out["path_entropy"] = sig
        if "log_p_start" in extras and log_density_end is not None:
            ds = (np.asarray(extras["log_p_start"]) - np.asarray(log_density_end)
                  - np.asarray(extras["eta_log_change"]))
            out.update(system_entropy_change=ds, entropy_production=ds + sig)
    if "medium_entropy" in extras and log_density_end is not None:
        ds = np.asarray(extras["log_p_start"]) - np.asarray(log_density_end)
        med = np.asarray(extras["medium_entropy"])
        out.update(system_entropy_change=ds, medium_entropy=med, entropy_production=ds + med)
    return out


# -- closed-form means for a Gaussian target ------------------------------------------------
def gaussian_means(mean: float, std: float, process, t_final: float, potential, *,
                   passive: bool = False, rtol: float = 1e-9) -> dict:
    """Continuum means of W, W_act, Q, ΔU (and, passive, the entropy terms) per particle for
    a 1D Gaussian target N(mean, std²), by the moment (Lyapunov) equations.

    potential(t, x) -> V(x, t) for x of shape (1, N) (float64), quadratic in x for a Gaussian
    target: U(x, s) = A x² + B x + C with A, B, C read off at x = −1, 0, 1, F = −2A x − B.
    Reverse time s from 0 to T, x(0) ~ p(x, T), η stationary and independent:

        dm/ds = a m + b,  dΣ_xx/ds = 2aΣ_xx + 2Σ_xη + 2D_T,  dΣ_xη/ds = (a − 1/τ)Σ_xη + D_A/τ
        (a = −2A, b = −B; passive: dΣ_xx/ds = 2aΣ_xx + 2D_eff, no η)
        dE[W]/ds = A′E[x²] + B′m + C′,   dE[W_act]/ds = aΣ_xη + D_A/τ,
        dE[Q]/ds = dE[W + W_act]/ds − dE[U]/ds,   dE[medium entropy]/ds = dE[Q]/ds / D_eff.

    Active particle at D_T = 0, the x-path entropy production (module doc), with
    Ḟ = c x + aη + e (c = ȧ + a², e = ḃ + ab; dots d/ds) and the Stratonovich mean
    E[Ḟ∘dη]/ds = −E[Ḟη]/τ + aD_A/τ² = −cΣ_xη/τ:

        D_A dE[Σ_path]/ds = E[F²] + aΣ_xη + τ²E[Ḟ²] − τcΣ_xη,
        boundary −(τ/2)Δ(2E[F²] + 2aΣ_xη) / D_A,
        E[Δs_sys] = E[log p(x_0, T)] − E[log p(x_T, 0)]   (η stationary: its parts cancel).
    """
    import numpy as np
    from scipy.integrate import solve_ivp

    import jax

    p = process
    pts = jnp.array([[-1.0, 0.0, 1.0]])

    @jax.jit
    def coef3(s3):  # (A, B, C) at three reverse times in one call
        u = jnp.stack([potential(t_final - si, pts) for si in s3])
        um, u0, up = u[:, 0], u[:, 1], u[:, 2]
        return jnp.stack([(up + um) / 2 - u0, (up - um) / 2, u0], 1)

    def coefs(s, eps=1e-5):
        lo, hi = max(s - eps, 0.0), min(s + eps, t_final)
        c = np.asarray(coef3(jnp.array([s, lo, hi])), np.float64)
        return c[0], (c[2] - c[1]) / (hi - lo)

    def coef(s):
        return coefs(s)[0]

    def mean_f2(a, b, m, sxx):  # E|F|², F = a x + b
        return a * a * (sxx + m * m) + 2 * a * b * m + b * b

    def rhs(s, y):
        m, sxx, sxe = y[:3]
        (A, B, _), (dA, dB, dC) = coefs(s)
        a, b = -2.0 * A, -B
        dm = a * m + b
        if passive:
            de = float(p.d_eff(t_final - s))
            dsxx, dsxe, dwa = 2 * a * sxx + 2 * de, 0.0, 0.0
        else:
            dsxx = 2 * a * sxx + 2 * sxe + 2 * p.d_thermal
            dsxe = (a - 1.0 / p.tau) * sxe + p.d_active / p.tau
            dwa = a * sxe + p.d_active / p.tau
        dw = dA * (sxx + m * m) + dB * m + dC
        du = dA * (sxx + m * m) + A * (dsxx + 2 * m * dm) + dB * m + B * dm + dC
        dq = dw + dwa - du
        dmed = dq / float(p.d_eff(t_final - s)) if passive else 0.0
        dsig = 0.0
        if not passive:
            c, e = -2.0 * dA + a * a, -dB + a * b
            fd2 = mean_f2(c, e, m, sxx) + a * a * p.d_active / p.tau + 2 * c * a * sxe
            f2 = mean_f2(a, b, m, sxx)
            dsig = (f2 + a * sxe + p.tau**2 * fd2 - p.tau * c * sxe) / p.d_active
        return [dm, dsxx, dsxe, dw, dwa, dq, dmed, dsig]

    def boundary(s, m, sxx, sxe):  # E[−(τ/2)(|F|² + |ẋ|²)] less its constant −τD_A/(2τ)
        A, B, _ = coef(s)
        a, b = -2.0 * A, -B
        return -p.tau * (mean_f2(a, b, m, sxx) + a * sxe)

    e = float(np.exp(-p.beta * t_final))
    var_t = std**2 * e * e + float(p.variance(t_final))
    m0 = mean * e
    sol = solve_ivp(rhs, (0.0, t_final), [m0, var_t, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                    method="RK45", rtol=rtol, atol=1e-10)
    m, sxx, sxe, w, wa, q, med, sig = sol.y[:, -1]
    A0, B0, C0 = coef(0.0)
    A1, B1, C1 = coef(t_final)
    du = (A1 * (sxx + m * m) + B1 * m + C1) - (A0 * (var_t + m0 * m0) + B0 * m0 + C0)
    out = dict(work=w, active_work=wa, heat=q, potential_change=du, mean_end=m, var_end=sxx)
    if passive:
        # q = p exactly: Δs_sys = H(p(·, 0)) − H(p(·, T)) for Gaussians
        ds = 0.5 * np.log(std**2 / var_t)
        out.update(system_entropy_change=ds, medium_entropy=med, entropy_production=ds + med)
    elif p.d_thermal == 0.0:
        sig += (boundary(t_final, m, sxx, sxe) - boundary(0.0, m0, var_t, 0.0)) / p.d_active
        ds = (-0.5 * np.log(2 * np.pi * np.e * var_t)
              + (sxx + (m - mean) ** 2) / (2 * std**2) + 0.5 * np.log(2 * np.pi * std**2))
        out.update(path_entropy=sig, system_entropy_change=ds, entropy_production=ds + sig)
    return {k: float(v) for k, v in out.items()}
