"""Baseline: a plain vectorised numpy implementation of the `fox` sampler (float64).

Same dynamics as activegen's `fox` with the OU driver (THEORY.md §2):
    dx = F_F(x, T−s) ds + η ds,   τ dη = −η ds + √(2D_A) dW   (exact OU step),
    F_F = βx + (D̄ + βτD_A) S + τD_A D̄ [∇(∇·S) + (∇S)S],
with the Gaussian-mixture score and its derivatives in closed form, arrays (N, K) per
coordinate (the fastest numpy layout we found: ~5× the (N, K, d, d) einsum form). Kept in benchmarks/ only, as the reference point for the speed-up; the
process's scalar coefficients v(t), D̄(t) come from activegen's ActiveOU.
"""

from __future__ import annotations

import time

import numpy as np


def fox_numpy(target, process, n: int, n_steps: int, t_final: float, seed: int = 0):
    """Run n particles for n_steps of h = T/n_steps from the exact law at T; returns x."""
    rng = np.random.default_rng(seed)
    p, h = process, t_final / n_steps
    w, mu, cov = target.weights, target.means, target.covs
    k, d = mu.shape
    x = np.asarray(target.sample_marginal(_jax_key(seed), n, p, t_final), np.float64)
    eta = rng.normal(size=(n, d)) * np.sqrt(p.eta_variance)
    decay = np.exp(-h / p.tau)
    kick = np.sqrt(p.eta_variance * (1 - decay**2))
    ta = p.tau * p.d_active
    for i in range(n_steps):
        t = t_final - i * h
        scale, var, db = float(p.mean_scale(t)), float(p.variance(t)), float(p.d_bar(t))
        c = cov * scale**2 + var * np.eye(d)
        prec = np.linalg.inv(c)                                     # (K, d, d)
        const = np.log(w) - 0.5 * (np.linalg.slogdet(c)[1] + d * np.log(2 * np.pi))
        m = mu * scale
        diff = [x[:, j, None] - m[None, :, j] for j in range(d)]    # (N, K) each
        g = [-sum(prec[None, :, a, j] * diff[j] for j in range(d)) for a in range(d)]
        comp = const + 0.5 * sum(diff[a] * g[a] for a in range(d))
        comp -= comp.max(1, keepdims=True)
        r = np.exp(comp)
        r /= r.sum(1, keepdims=True)
        s = [(r * g[a]).sum(1) for a in range(d)]
        hess = [[(r * (g[a] * g[b] - prec[None, :, a, b])).sum(1) - s[a] * s[b]
                 for b in range(d)] for a in range(d)]
        lap_k = sum(g[a] ** 2 for a in range(d)) - np.trace(prec, axis1=1, axis2=2)
        hs = [sum(hess[a][b] * s[b] for b in range(d)) for a in range(d)]
        grad_div = [(r * ((g[a] - s[a][:, None]) * lap_k
                          - 2 * sum(prec[None, :, a, b] * g[b] for b in range(d)))).sum(1)
                    - 2 * hs[a] for a in range(d)]
        f = np.stack([p.beta * x[:, a] + (db + p.beta * ta) * s[a]
                      + ta * db * (grad_div[a] + hs[a]) for a in range(d)], 1)
        x = x + (f + eta) * h
        eta = eta * decay + kick * rng.normal(size=(n, d))
    return x


def _jax_key(seed):
    import jax

    return jax.random.key(seed)


def rate(target, process, n: int, n_steps: int, t_final: float) -> float:
    """Particle-steps per second of the numpy baseline. A one-step warm-up first: the start
    is drawn with activegen (JAX), whose first call compiles."""
    fox_numpy(target, process, n, 1, t_final / n_steps)
    t0 = time.perf_counter()
    fox_numpy(target, process, n, n_steps, t_final)
    return n * n_steps / (time.perf_counter() - t0)
