"""Learned scores: time-conditioned networks trained by denoising score matching (DSM).

With data instead of an analytic density, p(x,t) is learned from samples through the exact
Gaussian conditional of the forward x-marginal (THEORY.md §1):

    x_t = m(t) x_0 + √v(t) ε,   m = e^{−βt},   ε ~ N(0, I),   ∇ log p(x_t | x_0) = −ε/√v.

DSM loss (λ(t) = v(t) weighting, i.e. noise prediction):

    L(θ) = E_{t, x_0, ε} | √v(t) S_θ(x_t, t) + ε |²

with t drawn half uniform on [t_min, T] and half log-uniform (the small-t region, where the
score varies fastest and the sampler ends, gets more samples). Minimisers satisfy
S_θ = ∇ log p(·, t) for every t.

Parametrisations (`kind`), both with the Gaussian part of the marginal of standardised data,
σ_t² = m² + v, built in and the network input scaled by 1/σ_t:

* "energy": a scalar E_θ(x,t) = |x|²/(2σ_t²) + (σ_t/√v) N_θ(x/σ_t, t) ≈ −log p(x,t) + const;
  S = −∇E, and ∇S, ∇(∇·S) by autodiff of −E (`scores.autodiff_derivs`): the force built from
  it is a true gradient, the potentials V_F, V_U are available, ∇S is symmetric.
* "vector": S_θ(x,t) = −x/σ_t² − N_θ(x/σ_t, t)/√v with a d-vector output; ∇S and
  ∇(∇·S) by autodiff of S_θ (∇S not symmetric, no log p: log_p is reported as 0).

N_θ is an MLP with SiLU activations (smooth: the effective potential needs third x-derivatives
of E) on fixed random Fourier features [z, sin Bz, cos Bz] of its input (frequencies up to
`fourier_max` = 4: without them the MLP's spectral bias left modes of width ~0.1 unresolved,
relative score error 0.5 at small t on eight Gaussians, 0.01 with them; much higher
frequencies blow up the third derivatives fox needs), and every hidden layer gets a bias
from a Fourier embedding of log t. `prepare(t)`
computes these time biases and scalings once per time step; the per-point function only sees x.

Joint score (for method `exact`): the joint conditional of (x_t, η_t) | x_0 is Gaussian with
means (m x_0, 0) and per-coordinate covariance [[v, c], [c, D_A/τ]]. With k = cτ/D_A,
z = x − kη is independent of η, z | x_0 ~ N(m x_0, u I), u = v − c²τ/D_A, so
log p(x, η, t) = log N(η; 0, D_A/τ) + log p_z(x − kη, t) and

    ∇_x log p = S_z(x − kη),   ∇_η log p = −ητ/D_A − k S_z(x − kη).

With this (exact) parametrisation the joint DSM loss on (x_t, η_t) equals (1 + k²) times the
DSM loss of S_z on z_t = m x_0 + √u ε, which is what is minimised (`marginal="joint"`: the
same network, variance u(t) in place of v(t)).

Data are standardised (`datasets.Standardizer`): the model, the process and the samplers
live in standardised coordinates; `LearnedScore.to_data` maps samples back (the CLI and the
gallery do this). `sample_marginal` starts the samplers from m(T)·(draws of the stored
standardised training set) + √v(T)·noise: the exact marginal of the empirical data law.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._fastmath import sincos
from .datasets import IMAGE_SHAPES, RANGE_MARGIN, Standardizer, check_data, out_of_range
from ..errors import ActivegenError, check_count, check_positive
from ..physics.processes import ActiveOU
from ..physics.scores import ScoreDerivs, autodiff_derivs

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.eqx"
OPT_FILE = "opt_state.eqx"
DATA_FILE = "data.npy"
LOSS_FILE = "loss.csv"
KINDS = ("energy", "vector")
#: order-1 requests (∇S for the validity diagnostic only) use probes above this dimension
EXACT_HESSIAN_MAX_D = 8
#: particles per tile of the batched pass (`tiled`) where a unit carries more than
#: TILE_CHANNELS channel-width products (C·W); at or below it the whole block at once: the
#: tiles run one after another and lose the second core, which pays only where the block's
#: channel arrays leave the cache (measured, docs/learned.md: 2D fox, C·W = 128, 13.9×
#: analytic untiled against 19.1× tiled, back to back; 8D fox, C·W = 848, 10.5× tiled
#: against 13.8×)
TILE = 512
TILE_CHANNELS = 256
#: probes for the diagnostic's ‖∇S‖_F² and ∇·S when ∇S is not formed
DIAG_PROBES = 2
#: probes of ∇(∇·S) when d > EXACT_HESSIAN_MAX_D and no --hutchinson was given (the exact
#: pass would carry d(d+1)/2 + 2d + 1 channels per unit: 2 209 at d = 64)
AUTO_PROBES = 4
MARGINALS = ("x", "joint")

DEFAULTS = dict(
    kind="energy", marginal="x", width=16, depth=2, n_freq=6,
    t_min=1e-3, t_max=6.0, batch=512, lr=2e-3, warmup=100, steps=3000, chunk=100,
    seed=0, hutchinson=0, n_fourier=16, fourier_max=4.0,
)

#: the training options `activegen train` uses when not given (`data_defaults`)
TRAIN_DEFAULTS = {k: DEFAULTS[k] for k in ("width", "depth", "n_fourier", "batch", "lr", "t_max",
                                          "steps")}
#: the 8×8 digits (d = 64): a plain MLP energy (Fourier features of 64 pixels do not pay),
#: T = 3 (the start is the exact diffused marginal at any T; e^{-2T} = 0.0025)
DIGITS_TRAIN_DEFAULTS = dict(TRAIN_DEFAULTS, width=256, depth=3, n_fourier=0, batch=256,
                             lr=1e-3, t_max=3.0, steps=20000)


def data_defaults(source: str) -> dict:
    """The default training options for a data source (digits: DIGITS_TRAIN_DEFAULTS)."""
    return dict(DIGITS_TRAIN_DEFAULTS if str(source) == "digits" else TRAIN_DEFAULTS)


# -- network ---------------------------------------------------------------------
def time_embedding(t, t_min: float, t_max: float, n_freq: int):
    """[γ, sin(πkγ), cos(πkγ)]_{k=1..n_freq}, γ = log t rescaled to [−1, 1] on [t_min, t_max]."""
    g = 2.0 * (jnp.log(t) - math.log(t_min)) / (math.log(t_max) - math.log(t_min)) - 1.0
    k = jnp.arange(1, n_freq + 1, dtype=jnp.result_type(g))
    return jnp.concatenate([g[None], jnp.sin(jnp.pi * k * g), jnp.cos(jnp.pi * k * g)])


class ScoreNet(eqx.Module):
    """MLP N_θ(z, t) on the input features φ(z) = [z, sin Bz, cos Bz] (fixed random Fourier
    features, frequencies log-spaced up to `fourier_max`: smooth, and they lift the MLP's
    spectral bias so that modes narrower than the data scale are resolved); hidden layers
    h ← SiLU(W h + U emb(t) + b); output width 1 (energy) or d (vector)."""

    layers: list
    time_layers: list
    out: eqx.nn.Linear
    freqs: jax.Array

    def __init__(self, dim: int, kind: str, width: int, depth: int, n_freq: int, key,
                 n_fourier: int = 0, fourier_max: float = 16.0):
        keys = jax.random.split(key, 2 * depth + 2)
        n_emb = 2 * n_freq + 1
        scales = jnp.geomspace(1.0, fourier_max, n_fourier) if n_fourier else jnp.ones((0,))
        self.freqs = jax.random.normal(keys[-2], (n_fourier, dim)) * scales[:, None]
        sizes = [dim + 2 * n_fourier] + [width] * depth
        self.layers = [eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys[:depth])]
        self.time_layers = [eqx.nn.Linear(n_emb, width, use_bias=False, key=k)
                            for k in keys[depth:2 * depth]]
        out = eqx.nn.Linear(width, 1 if kind == "energy" else dim, key=keys[-1])
        # start near the Gaussian part: a small output layer
        self.out = eqx.tree_at(lambda m: m.weight, out, out.weight * 0.1)

    def time_biases(self, emb):
        """Per-layer biases U_l emb(t) + b_l (computed once per time)."""
        return [tl(emb) + l.bias for tl, l in zip(self.time_layers, self.layers)]

    def apply(self, biases, z):
        """N_θ at one point z (d,) with precomputed time biases."""
        if self.freqs.shape[0]:
            bz = jax.lax.stop_gradient(self.freqs) @ z
            h = jnp.concatenate([z, jnp.sin(bz), jnp.cos(bz)])
        else:
            h = z
        for lin, b in zip(self.layers, biases):
            h = jax.nn.silu(lin.weight @ h + b)
        return self.out(h)


def n_params(net) -> int:
    return int(sum(a.size for a in jax.tree.leaves(eqx.filter(net, eqx.is_array))))


class TimeState(NamedTuple):
    """What `prepare(t)` computes once per time: the network, its time biases, the
    Gaussian part of the marginal (centre m(t)μ, precision P_t = Σ_t⁻¹, whitening
    A_t = Σ_t^{−1/2}, Σ_t = m²Σ + var·I), the output scale and the probes' key."""

    net: ScoreNet
    biases: list
    center: jax.Array
    prec: jax.Array
    whiten: jax.Array
    out_scale: jax.Array
    key: jax.Array


def _variance_fn(process: ActiveOU, marginal: str):
    return process.variance if marginal == "x" else process.conditional_variance


def conditioning(cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(μ, Q, λ): mean and eigendecomposition Σ = Q diag(λ) Qᵀ of the training data in
    the model's coordinates (config "conditioning"; absent in models trained before it
    existed, which used μ = 0, Σ = I: standardised data)."""
    d = int(cfg["data"]["d"])
    c = cfg.get("conditioning")
    if c is None:
        return np.zeros(d), np.eye(d), np.ones(d)
    lam, q = np.linalg.eigh(np.asarray(c["cov"], float).reshape(d, d))
    return np.asarray(c["mean"], float), q, np.clip(lam, 0.0, None)


def _time_state(net, cfg, process, t, key=None, cond=None) -> TimeState:
    """Σ_t = m²Σ + var I = Q diag(m²λ + var) Qᵀ: P_t = Q diag(1/(m²λ + var)) Qᵀ,
    A_t = Q diag((m²λ + var)^(−1/2)) Qᵀ, out_scale = σ̄_t/√var (energy) or 1/√var (vector)
    with σ̄_t² = m² mean(λ) + var (μ = 0, Σ = I: the old σ_t² = m² + var)."""
    t = jnp.asarray(t)
    mu, q, lam = conditioning(cfg) if cond is None else cond
    var = _variance_fn(process, cfg["marginal"])(t)
    m = process.mean_scale(t)
    dt = jnp.result_type(var)
    ev = m * m * jnp.asarray(lam, dt) + var
    qj = jnp.asarray(q, dt)
    prec = (qj / ev) @ qj.T
    whiten = (qj / jnp.sqrt(ev)) @ qj.T
    emb = time_embedding(t, cfg["t_min"], cfg["t_max"], cfg["n_freq"])
    sd = jnp.sqrt(var)
    sbar = jnp.sqrt(m * m * float(np.mean(lam)) + var)
    scale = sbar / sd if cfg["kind"] == "energy" else 1.0 / sd
    if key is None:
        key = jax.random.key(0)
    return TimeState(net, net.time_biases(emb), m * jnp.asarray(mu, dt), prec, whiten, scale, key)


def energy_at(st: TimeState, x):
    """E_θ(x,t) = ½ yᵀP_t y + out_scale · N_θ(A_t y, t), y = x − m(t)μ  (≈ −log p + const)."""
    y = x - st.center
    return 0.5 * jnp.dot(y, st.prec @ y) + st.out_scale * st.net.apply(st.biases, st.whiten @ y)[0]


def vector_score_at(st: TimeState, x):
    """S_θ(x,t) = −P_t y − N_θ(A_t y, t)/√v, y = x − m(t)μ."""
    y = x - st.center
    return -st.prec @ y - st.out_scale * st.net.apply(st.biases, st.whiten @ y)


def _score_at(kind):
    if kind == "energy":
        return lambda st, x: -jax.grad(energy_at, argnums=1)(st, x)
    return vector_score_at


# -- the batched pass: value, gradient, Hessian and ∇Δ through the MLP ------------------
def _pairs(d: int):
    return [(i, j) for i in range(d) for j in range(i, d)]


def n_channels(d: int, order: int) -> int:
    """Channels carried per hidden unit and particle: the value (order −1), + d first
    derivatives (order 0), + d(d+1)/2 second derivatives (1), + d components of ∇Δ (2)."""
    p = d * (d + 1) // 2
    return 1 + d * (order >= 0) + p * (order >= 1) + d * (order >= 2)


def _silu_series(u, n: int):
    """σ and its first n derivatives (n ≤ 3) for SiLU σ(u) = u s(u), s the logistic
    function: σ' = s(1 + u(1−s)), σ'' = q(2 + u(1−2s)), σ''' = q[(1−2s)(3 + u(1−2s)) − 2uq],
    q = s(1−s)."""
    s = jax.nn.sigmoid(u)
    out = [u * s]
    if n >= 1:
        out.append(s * (1.0 + u * (1.0 - s)))
    if n >= 2:
        q = s * (1.0 - s)
        r = 1.0 - 2.0 * s
        out.append(q * (2.0 + u * r))
    if n >= 3:
        out.append(q * (r * (3.0 + u * r) - 2.0 * u * q))
    return out


def _activate(U, d: int, order: int):
    """Channels of a = σ(u) from those of u, U a list of C arrays (W, N) -> the same
    (chain rule):
    ∂_i a = σ' ∂_i u,  ∂_ij a = σ'' ∂_i u ∂_j u + σ' ∂_ij u,
    ∂_i Δa = σ''' ∂_i u |∇u|² + σ''(2 Σ_j ∂_j u ∂_ij u + ∂_i u Δu) + σ' ∂_i Δu.
    A list, not one stacked (W, C, N) array: the stacked form's concatenation went into the
    fused elementwise loops (≈ 20 % slower per layer, measured)."""
    sig = _silu_series(U[0], order + 1)
    out = [sig[0]]
    if order >= 0:
        g = [U[1 + i] for i in range(d)]
        out += [sig[1] * gi for gi in g]
    if order >= 1:
        pairs = _pairs(d)
        h = {pq: U[1 + d + k] for k, pq in enumerate(pairs)}
        for i, j in pairs:
            h[j, i] = h[i, j]
        out += [sig[2] * g[i] * g[j] + sig[1] * h[i, j] for i, j in pairs]
    if order >= 2:
        t0 = 1 + d + len(pairs)
        g2 = sum(gi * gi for gi in g)
        lap = sum(h[i, i] for i in range(d))
        for i in range(d):
            hg = sum(g[j] * h[i, j] for j in range(d))
            out.append(sig[3] * g[i] * g2 + sig[2] * (2.0 * hg + g[i] * lap)
                       + sig[1] * U[t0 + i])
    return out


def _first_layer_matrix(st: TimeState, d: int, order: int):
    """M (W, C, d + 2K + 1): the first layer's pre-activation channels are M · [y; sin θ;
    cos θ; 1] with θ = B A_t y and y = x − m(t)μ (A_t folded into the weights, W_l = W_z A_t,
    f = B A_t): value [W_l, W_s, W_c, b]; ∂_i: [0, −W_c f_i, W_s f_i, W_l,i];
    ∂_ij: [0, −W_s f_i f_j, −W_c f_i f_j, 0]; ∂_iΔ: [0, W_c|f|²f_i, −W_s|f|²f_i, 0]
    (|f|² = Σ_i f_i² per frequency)."""
    net = st.net
    k = net.freqs.shape[0]
    w1 = net.layers[0].weight
    wl = w1[:, :d] @ st.whiten
    ws, wc = w1[:, d:d + k], w1[:, d + k:]
    f = jax.lax.stop_gradient(net.freqs).astype(wl.dtype) @ st.whiten
    b = st.biases[0][:, None]
    z_d, z_1 = jnp.zeros_like(wl), jnp.zeros_like(b)
    rows = [jnp.concatenate([wl, ws, wc, b], 1)]
    if order >= 0:
        rows += [jnp.concatenate([z_d, -wc * f[:, i], ws * f[:, i], wl[:, i:i + 1]], 1)
                 for i in range(d)]
    if order >= 1:
        rows += [jnp.concatenate([z_d, -ws * (f[:, i] * f[:, j]), -wc * (f[:, i] * f[:, j]),
                                  z_1], 1) for i, j in _pairs(d)]
    if order >= 2:
        f2 = jnp.sum(f * f, 1)
        rows += [jnp.concatenate([z_d, wc * (f2 * f[:, i]), -ws * (f2 * f[:, i]), z_1], 1)
                 for i in range(d)]
    return jnp.stack(rows, 1)


def _net_channels(st: TimeState, y, order: int):
    """The channels (value, ∂_i, ∂_ij for i ≤ j, ∂_iΔ; `n_channels`) of N_θ(A_t y, t) at
    points y (d, N), particles last: every layer is a matrix product (W_out, W_in) ·
    (W_in, N) per channel, the particle axis as the matrix dimension; the nonlinearity is
    `_activate`. Returns (out, C, N), out = 1 (energy) or d (vector)."""
    d, n = y.shape
    net = st.net
    theta = jax.lax.stop_gradient(net.freqs).astype(y.dtype) @ (st.whiten @ y)
    sin, cos = sincos(theta)
    feats = jnp.concatenate([y, sin, cos, jnp.ones((1, n), y.dtype)], 0)
    m = _first_layer_matrix(st, d, order)
    h = _activate([m[:, k] @ feats for k in range(m.shape[1])], d, order)
    for lin, b in zip(net.layers[1:], st.biases[1:]):
        u = [lin.weight @ hk for hk in h]
        h = _activate([u[0] + b[:, None]] + u[1:], d, order)
    out = [net.out.weight @ hk for hk in h]
    out[0] = out[0] + net.out.bias[:, None]
    return jnp.stack(out, 1)


def _split(ch, d: int, order: int):
    """(value, [∂_i], {(i, j): ∂_ij} both orders, [∂_iΔ]) from channels (..., C, N)."""
    v = ch[..., 0, :]
    g = [ch[..., 1 + i, :] for i in range(d)] if order >= 0 else None
    h = None
    if order >= 1:
        h = {}
        for k, (i, j) in enumerate(_pairs(d)):
            h[i, j] = h[j, i] = ch[..., 1 + d + k, :]
    t = None
    if order >= 2:
        t0 = 1 + d + d * (d + 1) // 2
        t = [ch[..., t0 + i, :] for i in range(d)]
    return v, g, h, t


def _gauss(st: TimeState, xs):
    """(y, P_t y, ½yᵀP_t y) at xs (d, N), y = x − m(t)μ (unrolled over the coordinates up to
    d = EXACT_HESSIAN_MAX_D, one matrix product above: d² unrolled terms compile for minutes
    at d = 64)."""
    d = xs.shape[0]
    y = xs - st.center[:, None]
    if d > EXACT_HESSIAN_MAX_D:
        py = st.prec.astype(y.dtype) @ y
        return y, py, 0.5 * jnp.sum(y * py, 0)
    py = [sum(st.prec[i, j] * y[j] for j in range(d)) for i in range(d)]
    return y, py, 0.5 * sum(y[i] * py[i] for i in range(d))


def energy_batch(st: TimeState, xs):
    """E_θ at points xs (d, N) -> (N,): the value channel of the batched pass."""
    y, _, gauss = _gauss(st, xs)
    return gauss + st.out_scale * _net_channels(st, y, -1)[0, 0]


def energy_derivs_batch(st: TimeState, xs, order: int = 2) -> ScoreDerivs:
    """ScoreDerivs of log p = −E_θ at points xs (d, N) in one batched forward pass
    (`_net_channels`): E = ½yᵀP_t y + c N, so ∇E = P_t y + c∇N, ∇²E = P_t + c∇²N,
    ∇ΔE = c∇ΔN, and S = −∇E, ∇S = −∇²E, ∇(∇·S) = −∇ΔE. order 0: log p and S;
    1: + ∇S; 2: + ∇(∇·S). Particle axis last (log_p (N,), score (d, N), hessian
    (d, d, N), grad_div (d, N))."""
    d = xs.shape[0]
    y, py, gauss = _gauss(st, xs)
    c = st.out_scale
    v, g, h, t = _split(_net_channels(st, y, order)[0], d, order)
    log_p = -(gauss + c * v)
    score = jnp.stack([-(py[i] + c * g[i]) for i in range(d)])
    hess = grad_div = None
    if order >= 1:
        hess = jnp.stack([jnp.stack([-(st.prec[i, j] + c * h[i, j]) for j in range(d)])
                          for i in range(d)])
    if order >= 2:
        grad_div = -c * jnp.stack(t)
    return ScoreDerivs(log_p, score, hess, grad_div)


def vector_derivs_batch(st: TimeState, xs, order: int = 2) -> ScoreDerivs:
    """ScoreDerivs of S_θ = −P_t y − c N (vector network; log p reported as 0) at xs
    (d, N): ∇S_ki = −P_ki − c ∂_i N_k (the Jacobian, not symmetric), ∇(∇·S)_i =
    −c Σ_k ∂_ik N_k: the network's channels up to second order (order 2), first (1) or
    the value only (0)."""
    d = xs.shape[0]
    y, py, _ = _gauss(st, xs)
    c = st.out_scale
    net_order = {0: -1, 1: 0, 2: 1}[order]
    v, g, h, _ = _split(_net_channels(st, y, net_order), d, net_order)
    score = jnp.stack([-(py[k] + c * v[k]) for k in range(d)])
    hess = grad_div = None
    if order >= 1:
        hess = jnp.stack([jnp.stack([-(st.prec[k, i] + c * g[i][k]) for i in range(d)])
                          for k in range(d)])
    if order >= 2:
        grad_div = jnp.stack([-c * sum(h[i, k][k] for k in range(d)) for i in range(d)])
    return ScoreDerivs(jnp.zeros(xs.shape[1:], xs.dtype), score, hess, grad_div)


def probe_derivs(score_batch_fn, xs, z, order: int = 2, log_p=None) -> ScoreDerivs:
    """Probe (Hutchinson) estimates at points xs (d, N) from K probes z (K, d, N) with
    E[zzᵀ] = I, never forming ∇S: (∇S)z_k by one Jacobian-vector product of the batched
    score each; ∇·S ≈ mean_k z_k·(∇S)z_k and ‖∇S‖_F² ≈ mean_k |(∇S)z_k|² (the validity
    diagnostic); for order 2 also ∇(∇·S) ≈ ∇_x mean_k z_kᵀ(∇S)z_k (unbiased) and (∇S)S by
    one more Jacobian-vector product along S. Cost independent of d."""

    def quad(y):
        s, hz = jax.vmap(lambda zk: jax.jvp(score_batch_fn, (y,), (zk,)))(z)
        q = jnp.mean(jnp.sum(z * hz, 1), 0)  # (N,)
        return jnp.sum(q), (s[0], hz, q)

    if order >= 2:
        grad_div, (s, hz, q) = jax.grad(quad, has_aux=True)(xs)
        hs = jax.jvp(score_batch_fn, (xs,), (jax.lax.stop_gradient(s),))[1]
    else:
        _, (s, hz, q) = quad(xs)
        grad_div = hs = None
    lp = jnp.zeros(xs.shape[1:], xs.dtype) if log_p is None else log_p
    return ScoreDerivs(lp, s, None, grad_div, hs, q, jnp.mean(jnp.sum(hz * hz, 1), 0))


def tiled(fn, xs, tile: int | None):
    """fn(xs) for a batched fn of points xs (d, N) whose outputs carry the particle axis
    last, evaluated on tiles of `tile` particles one after another (lax.map; N padded to a
    multiple of tile by repeating the last point): the pass's channels (W × C × tile) then
    stay in cache. tile None or ≥ N: fn(xs) at once."""
    n = xs.shape[-1]
    if tile is None or n <= tile:
        return fn(xs)
    k = -(-n // tile)
    pad = k * tile - n
    xp = jnp.concatenate([xs, jnp.repeat(xs[:, -1:], pad, 1)], 1) if pad else xs
    xt = jnp.moveaxis(xp.reshape(xs.shape[0], k, tile), 1, 0)
    out = jax.lax.map(fn, xt)
    return jax.tree.map(lambda a: jnp.moveaxis(a, 0, -2).reshape(a.shape[1:-1] + (k * tile,))[..., :n],
                        out)


def particle_map(fn):
    """fn(state, xs) -> outputs with the particle axis last, made cheap to vmap over a
    leading axis of xs (the samplers' blocks of particles): with a custom batching rule the
    blocks are folded into the particle axis, (b, d, B) -> (d, b·B), fn runs once on the
    whole, and the outputs are unfolded back ((..., b·B) -> (b, ..., B)). Under plain vmap
    every matrix product of the pass became a batched one with a transpose of the channel
    arrays around it (4× slower, measured). Points are independent, so this is exact. A
    batched state (another t per block) falls back to vmap. Not differentiable: used only
    at the sampler's entry points, the derivatives inside are taken of fn's body."""

    @jax.custom_batching.custom_vmap
    def mapped(state, xs):
        return fn(state, xs)

    @mapped.def_vmap
    def rule(axis_size, in_batched, state, xs):
        st_b, x_b = in_batched
        if any(jax.tree.leaves(st_b)) or not x_b:
            out = jax.vmap(fn, in_axes=(jax.tree.map(lambda b: 0 if b else None, st_b),
                                        0 if x_b else None))(state, xs)
            return out, jax.tree.map(lambda _: True, out)
        b, d, n = xs.shape
        out = mapped(state, jnp.moveaxis(xs, 0, 1).reshape(d, b * n))
        out = jax.tree.map(lambda a: jnp.moveaxis(a.reshape(a.shape[:-1] + (b, n)), -2, 0), out)
        return out, jax.tree.map(lambda _: True, out)

    return mapped


# -- derivative estimators (per point; the reference routes) --------------------------
def hutchinson_grad_div(score_fn, x, key, n_probes: int):
    """Unbiased estimate of ∇(∇·S) at x: ∇_x of (1/K)Σ_k z_kᵀ(∇S)z_k with Rademacher z_k
    (E[z zᵀ] = I, so E[zᵀ(∇S)z] = ∇·S). Cost: K Jacobian-vector products and one gradient,
    independent of d (the exact route needs d)."""
    z = jax.random.rademacher(key, (n_probes,) + x.shape, dtype=x.dtype)

    def quad(y):
        jz = jax.vmap(lambda zi: jax.jvp(score_fn, (y,), (zi,))[1])(z)
        return jnp.mean(jnp.sum(z * jz, -1))

    return jax.grad(quad)(x)


def vector_derivs(score_fn, x) -> ScoreDerivs:
    """ScoreDerivs of a vector field S (no log p: 0): ∇S = jacfwd(S), ∇(∇·S) = grad(tr ∇S)
    (∇S carried out as an auxiliary value: computed once)."""

    def tr(y):
        j = jax.jacfwd(score_fn)(y)
        return jnp.trace(j), j

    grad_div, jac = jax.grad(tr, has_aux=True)(x)
    return ScoreDerivs(jnp.zeros((), x.dtype), score_fn(x), jac, grad_div)


def _point_key(key, x):
    """A key for one point at one time: fold_in of the time key with the bits of x."""
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    return jax.random.fold_in(key, jnp.sum(bits * jnp.arange(1, x.shape[0] + 1, dtype=jnp.uint32)))


def hutchinson_variance(model, t, xs, n_probes: int = 1, n_draws: int = 32, seed: int = 0) -> dict:
    """The noise of the K-probe estimate ĝ of g = ∇(∇·S) at points xs (d, N) and time t:
    relative mean-square error E|ĝ − g|²/E|g|² over n_draws independent probe draws (the
    estimator is unbiased: this is its variance, ∝ 1/K), and the same for the probe
    estimate of ‖∇S‖_F² used by the validity diagnostic. g is the exact batched pass up to
    d = EXACT_HESSIAN_MAX_D; above (where that pass does not pay), the mean over all draws
    (n_draws·K probes; "reference": "probe mean", the figure then slightly low by the
    factor 1 − 1/n_draws)."""
    st = model.prepare(t)
    d = int(xs.shape[0])

    @jax.jit
    def one(key):
        z = jax.random.rademacher(key, (n_probes,) + xs.shape, dtype=xs.dtype)
        e = probe_derivs(lambda y: model._score_inner(st, y), xs, z, 2)
        return e.grad_div, e.jac_fro2

    draws = [one(k) for k in jax.random.split(jax.random.key(seed), n_draws)]
    gs, fs = jnp.stack([a for a, _ in draws]), jnp.stack([b for _, b in draws])
    if d <= EXACT_HESSIAN_MAX_D:
        exact = energy_derivs_batch if model.kind == "energy" else vector_derivs_batch
        ex = exact(st, xs, 2)
        g, fro, ref = ex.grad_div, jnp.sum(ex.hessian**2, (0, 1)), "exact"
    else:
        g, fro, ref = gs.mean(0), fs.mean(0), "probe mean"
    return {"n_probes": n_probes, "d": d, "reference": ref,
            "grad_div_rel_mse": float(jnp.mean(jnp.sum((gs - g) ** 2, (1, 2))) / jnp.sum(g**2)),
            "fro2_rel_mse": float(jnp.mean(jnp.sum((fs - fro) ** 2, 1)) / jnp.sum(fro**2))}


# -- training ----------------------------------------------------------------------
def _sample_times(key, n, t_min, t_max):
    """Half uniform on [t_min, T], half log-uniform."""
    k1, k2, k3 = jax.random.split(key, 3)
    u = jax.random.uniform(k1, (n,), minval=t_min, maxval=t_max)
    lg = jnp.exp(jax.random.uniform(k2, (n,), minval=math.log(t_min), maxval=math.log(t_max)))
    return jnp.where(jax.random.bernoulli(k3, 0.5, (n,)), u, lg)


def dsm_loss(net, cfg, process, x0, key):
    """L = mean |√var(t) S_θ(x_t, t) + ε|², x_t = m x_0 + √var ε (var = v, or u for the
    joint model's z); one t per data point."""
    n = x0.shape[0]
    kt, ke = jax.random.split(key)
    t = _sample_times(kt, n, cfg["t_min"], cfg["t_max"])
    eps = jax.random.normal(ke, x0.shape, x0.dtype)
    var = _variance_fn(process, cfg["marginal"])(t)
    xt = process.mean_scale(t)[:, None] * x0 + jnp.sqrt(var)[:, None] * eps
    score_at = _score_at(cfg["kind"])

    def one(ti, xi):
        return score_at(_time_state(net, cfg, process, ti), xi)

    s = jax.vmap(one)(t, xt)
    return jnp.mean(jnp.sum((jnp.sqrt(var)[:, None] * s + eps) ** 2, -1))


def make_optimizer(cfg):
    """Adam, warm-up then cosine decay to 1% over cfg['steps'], gradient clipping at 1."""
    warm = min(cfg["warmup"], max(1, cfg["steps"] // 10))
    sched = optax.warmup_cosine_decay_schedule(
        0.0, cfg["lr"], warm, max(cfg["steps"], warm + 1), end_value=0.01 * cfg["lr"]
    )
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(sched))


def _process_of(cfg) -> ActiveOU:
    return ActiveOU(**cfg["process"])


_STEP_CACHE: dict = {}


def _make_step_cached(cfg, process):
    """The compiled step for one (architecture, optimisation, process) configuration, reused
    across train calls (e.g. a resume in the same session)."""
    keys = ("kind", "marginal", "width", "depth", "n_freq", "t_min", "t_max", "batch", "lr",
            "warmup", "steps", "seed", "data", "n_fourier", "fourier_max")
    sig = json.dumps({k: cfg.get(k) for k in keys + ("conditioning",)}, sort_keys=True) + repr(process)
    if sig not in _STEP_CACHE:
        if len(_STEP_CACHE) > 8:
            _STEP_CACHE.clear()
        opt = make_optimizer(cfg)
        _STEP_CACHE[sig] = (opt, _make_step(dict(cfg), process, opt))
    return _STEP_CACHE[sig]


def _make_step(cfg, process, opt):
    """One jit-compiled training step (batch and DSM key from fold_in(seed, step), so a run
    does not depend on where it was interrupted and resumed). A Python loop over jitted
    steps: on CPU, XLA runs this body ~50× slower inside lax.scan (measured)."""
    batch = cfg["batch"]
    key0 = jax.random.key(cfg["seed"])

    @eqx.filter_jit
    def step(net, opt_state, data, i):
        params, static = eqx.partition(net, eqx.is_array)
        k = jax.random.fold_in(key0, i)
        kb, kl = jax.random.split(k)
        idx = jax.random.randint(kb, (batch,), 0, data.shape[0])
        loss, g = jax.value_and_grad(
            lambda p: dsm_loss(eqx.combine(p, static), cfg, process, data[idx], kl)
        )(params)
        upd, opt_state = opt.update(g, opt_state, params)
        return eqx.combine(optax.apply_updates(params, upd), static), opt_state, loss

    return step


def _check_cfg(cfg):
    if cfg["kind"] not in KINDS:
        raise ActivegenError(f"kind must be one of {', '.join(KINDS)}, got {cfg['kind']!r}")
    if cfg["marginal"] not in MARGINALS:
        raise ActivegenError(f"marginal must be 'x' or 'joint', got {cfg['marginal']!r}")
    for k in ("width", "depth", "batch", "steps", "chunk"):
        cfg[k] = check_count(k, cfg[k])
    cfg["n_freq"] = check_count("n_freq", cfg["n_freq"])
    if isinstance(cfg["n_fourier"], bool) or int(cfg["n_fourier"]) < 0:
        raise ActivegenError(f"n_fourier must be an integer >= 0, got {cfg['n_fourier']!r}")
    cfg["fourier_max"] = check_positive("fourier_max", cfg["fourier_max"])
    for k in ("t_min", "t_max", "lr"):
        cfg[k] = check_positive(k, cfg[k])
    if cfg["t_min"] >= cfg["t_max"]:
        raise ActivegenError(f"t_min ({cfg['t_min']}) must be < t_max ({cfg['t_max']})")
    if cfg["marginal"] == "joint" and cfg["process"]["tau"] == 0:
        raise ActivegenError("a joint (x, eta) score needs tau > 0")
    if cfg["marginal"] == "joint" and cfg["kind"] != "energy":
        raise ActivegenError("the joint score is learned with kind 'energy' only")
    if isinstance(cfg["hutchinson"], bool) or int(cfg["hutchinson"]) < 0:
        raise ActivegenError(f"hutchinson must be an integer >= 0, got {cfg['hutchinson']!r}")


class LearnedScore:
    """A trained model behind the `scores` interface (and, for marginal="joint", the joint
    interface of method exact). Its coordinates are the data's own, unless it was trained
    with standardize=True (then z = (x − mean)/scale; `to_data`/`from_data` map between the
    two, the identity otherwise).

    hutchinson = K > 0 replaces the exact ∇(∇·S) by the K-probe estimator and ∇S by probe
    products (`probe_derivs`), probes drawn from a key derived from (seed, t, x).
    """

    def __init__(self, net: ScoreNet, config: dict, data, path=None, hutchinson: int | None = None):
        self.net = net
        self.config = config
        self.data = jnp.asarray(data, jnp.float32)
        self.path = path
        self.process = _process_of(config)
        self.standardizer = Standardizer.from_dict(config["standardizer"])
        # models saved before the option existed always standardised the physics
        self.standardized = bool(config.get("standardized", True))
        self.hutchinson = int(config.get("hutchinson", 0) if hutchinson is None else hutchinson)
        self._score_at = _score_at(config["kind"])
        self._cond = conditioning(config)
        self.tile = "auto"  # or an explicit tile size, None for untiled (`_tile`)
        self._score_map = particle_map(self._score_inner)
        self._derivs_map = {o: particle_map(lambda st, xs, o=o: self._derivs_inner(st, xs, o))
                            for o in (0, 1, 2)}

    #: `derivs_batch` takes `order` (the samplers ask only for what a method needs)
    derivs_orders = True

    # -- interface -----------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.config["data"]["d"])

    @property
    def kind(self) -> str:
        return self.config["kind"]

    def _need(self, marginal, what):
        if self.config["marginal"] != marginal:
            other = "an x-marginal" if marginal == "x" else "a joint (x, eta)"
            raise ActivegenError(
                f"{what} needs {other} score model; this one is {self.config['marginal']!r} "
                f"(train with{'' if marginal == 'joint' else 'out'} --joint)"
            )

    def check_process(self, process: ActiveOU):
        """Refuse process parameters other than those the model was trained for."""
        trained = self.config["process"]
        for name in ("beta", "d_thermal", "d_active", "tau"):
            a, b = float(getattr(process, name)), float(trained[name])
            if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12):
                where = f" ({self.path})" if self.path else ""
                raise ActivegenError(
                    f"the model{where} was trained for {name} = {b:g}, not {a:g}: p(x,t) "
                    "depends on the process; train a model for these parameters"
                )

    def _check_t(self, t):
        t = float(t)
        if t > self.config["t_max"] * (1 + 1e-9):
            raise ActivegenError(
                f"t_final = {t:g} exceeds the model's training range t_max = "
                f"{self.config['t_max']:g}; sample with --t-final <= {self.config['t_max']:g}"
            )

    def prepare(self, t, dtype=None) -> TimeState:
        """Per-time state; t below the training range's t_min is evaluated at t_min (the
        energy's Gaussian part is singular at t = 0, where v(0) = 0)."""
        t = jnp.maximum(t, self.config["t_min"])
        key = jax.random.fold_in(jax.random.key(self.config["seed"] + 1),
                                 jax.lax.bitcast_convert_type(jnp.asarray(t, jnp.float32), jnp.uint32))
        return _time_state(self.net, self.config, self.process, t, key, self._cond)

    def log_prob(self, state: TimeState, x):
        """−E_θ (up to a t-dependent constant); 0 for the vector parametrisation."""
        if self.kind == "energy":
            return -energy_at(state, x)
        return jnp.zeros((), x.dtype)

    # -- whole ensembles, particles last (the samplers' layout) ----------------------
    def score_batch(self, state: TimeState, xs):
        """S at points xs (d, N) -> (d, N): energy: S = −∇_x Σ_n E_θ(x_n) (one reverse
        pass through the batched network, `energy_batch`); vector: the network's value.
        The `_batch` entry points carry the block-folding batching rule (`particle_map`)
        and are not differentiable; `score`/`derivs` (one point) are."""
        self._need("x", "the score")
        return self._score_map(state, xs)

    def derivs_batch(self, state: TimeState, xs, order: int = 2) -> ScoreDerivs:
        """ScoreDerivs at points xs (d, N), particle axis last, computing only what
        `order` asks: 0 log p and S; 1 also ∇S (for the validity diagnostic); 2 also
        ∇(∇·S) (and ∇S). Exact: one batched pass carrying value, gradient, Hessian and ∇Δ
        through the network (`energy_derivs_batch`, `vector_derivs_batch`). With
        hutchinson = K > 0, and for order 1 when d > EXACT_HESSIAN_MAX_D, ∇S is not formed:
        probe estimates (`probe_derivs`) with K (at least DIAG_PROBES) Rademacher probes."""
        self._need("x", "the score derivatives")
        order = int(order)
        if order not in (0, 1, 2):
            raise ActivegenError(f"order must be 0, 1 or 2, got {order}")
        return self._derivs_map[order](state, xs)

    def _score_inner(self, state: TimeState, xs):
        if self.kind == "energy":
            return tiled(lambda x: -jax.grad(lambda y: jnp.sum(energy_batch(state, y)))(x), xs,
                         self._tile(1))
        return tiled(lambda y: vector_derivs_batch(state, y, 0).score, xs, self._tile(1))

    def _derivs_inner(self, state: TimeState, xs, order: int) -> ScoreDerivs:
        d = xs.shape[0]
        exact = energy_derivs_batch if self.kind == "energy" else vector_derivs_batch
        if order == 0 or not self.uses_probes(d):
            return tiled(lambda y: exact(state, y, order), xs,
                         self._tile(n_channels(d, order if self.kind == "energy" else order - 1)))
        k = self.probes(order)
        key = _point_key(state.key, xs[:, 0])
        z = jax.random.rademacher(key, (k,) + xs.shape, dtype=xs.dtype)
        lp = energy_batch(state, xs) if self.kind == "energy" else None
        return probe_derivs(lambda y: self._score_inner(state, y), xs, z, order,
                            None if lp is None else -lp)

    def _tile(self, channels: int):
        """The tile size of a pass carrying `channels` per unit: self.tile unless "auto"; then
        TILE above TILE_CHANNELS channel-width products, else None (untiled)."""
        if self.tile != "auto":
            return self.tile
        return TILE if channels * int(self.config["width"]) > TILE_CHANNELS else None

    def uses_probes(self, d: int | None = None) -> bool:
        """Probe estimates instead of the exact ∇S: with hutchinson = K > 0, or when
        d > EXACT_HESSIAN_MAX_D."""
        return self.hutchinson > 0 or (self.dim if d is None else d) > EXACT_HESSIAN_MAX_D

    def probes(self, order: int = 2) -> int:
        """The probe count used at this order: K if given, else DIAG_PROBES for the
        diagnostic of order 1 and AUTO_PROBES for ∇(∇·S) (order 2)."""
        if self.hutchinson > 0:
            return max(self.hutchinson, DIAG_PROBES if order == 1 else 1)
        return DIAG_PROBES if order == 1 else AUTO_PROBES

    def score(self, state: TimeState, x):
        """S at one point x (d,) (differentiable, unlike the `_batch` entry points)."""
        self._need("x", "the score")
        return self._score_inner(state, x[:, None])[:, 0]

    def derivs(self, state: TimeState, x) -> ScoreDerivs:
        """(log p, S, ∇S, ∇(∇·S)) at one point x (d,): `derivs_batch` on one particle
        (with hutchinson > 0: the probe estimate of ∇(∇·S); ∇S then by jacfwd of S)."""
        self._need("x", "the score derivatives")
        dv = jax.tree.map(lambda a: a[..., 0], self._derivs_inner(state, x[:, None], 2))
        if dv.hessian is None:  # probes: the per-point interface still returns ∇S
            jac = jax.jacfwd(lambda y: self._score_inner(state, y[:, None])[:, 0])(x)
            dv = ScoreDerivs(dv.log_p, dv.score, jac, dv.grad_div)
        return dv

    def derivs_autodiff(self, state: TimeState, x) -> ScoreDerivs:
        """The reference route at one point: nested autodiff of −E (energy) or of S_θ
        (vector), `scores.autodiff_derivs` / `vector_derivs` (tests, benchmarks)."""
        if self.kind == "energy":
            return autodiff_derivs(lambda y: -energy_at(state, y), x)
        return vector_derivs(lambda y: vector_score_at(state, y), x)

    def sample_marginal(self, key, n: int, t, dtype=None):
        """m(t)·x_0 + √v(t)·ε with x_0 drawn from the stored (standardised) training set:
        the exact p(x,t) of the empirical data law."""
        self._check_t(t)
        dtype = dtype or jnp.result_type(float)
        k1, k2 = jax.random.split(key)
        x0 = self.data[jax.random.randint(k1, (n,), 0, self.data.shape[0])].astype(dtype)
        p = self.process
        eps = jax.random.normal(k2, x0.shape, dtype)
        return p.mean_scale(t) * x0 + jnp.sqrt(p.variance(t)) * eps

    def gaussian_marginal(self, t):
        """(mean (d,), Q (d, d), variances (d,)) of the Gaussian part of p(x, t):
        N(m(t)μ, Q diag(m(t)²λ + v(t)) Qᵀ), μ, Σ = Q diag(λ) Qᵀ of the training data (the
        likelihood's p_T; exact for Gaussian data, off by the data's non-Gaussian part,
        weighted e^{−βT}, otherwise)."""
        mu, q, lam = self._cond
        m, v = float(self.process.mean_scale(t)), float(self.process.variance(t))
        return m * mu, q, m * m * lam + v

    # -- joint ---------------------------------------------------------------------
    def prepare_joint(self, t, dtype=None):
        self._need("joint", "method 'exact'")
        p = self.process
        return self.prepare(t, dtype), p.cross_cov(t) / p.eta_variance

    def joint_score(self, joint_state, x, eta):
        """∇_x log p = S_z(x − kη), ∇_η log p = −ητ/D_A − k S_z(x − kη)."""
        st, k = joint_state
        s_z = self._score_at(st, x - k * eta)
        return s_z, -eta / self.process.eta_variance - k * s_z

    def joint_score_batch(self, joint_state, xs, etas):
        """`joint_score` at points (d, N), (d, N), particles last."""
        st, k = joint_state
        s_z = self._score_map(st, xs - k * etas)
        return s_z, -etas / self.process.eta_variance - k * s_z

    def sample_joint(self, key, n: int, t, dtype=None):
        """(x, η) of the joint law of the empirical data: η ~ N(0, D_A/τ),
        x = m x_0 + √u ε + kη."""
        self._need("joint", "method 'exact'")
        self._check_t(t)
        dtype = dtype or jnp.result_type(float)
        k1, k2, k3 = jax.random.split(key, 3)
        p = self.process
        x0 = self.data[jax.random.randint(k1, (n,), 0, self.data.shape[0])].astype(dtype)
        eta = jnp.sqrt(p.eta_variance) * jax.random.normal(k2, x0.shape, dtype)
        z = p.mean_scale(t) * x0 + jnp.sqrt(p.conditional_variance(t)) * jax.random.normal(k3, x0.shape, dtype)
        return z + p.cross_cov(t) / p.eta_variance * eta, eta

    def to_dict(self) -> dict:
        """What a run's output records about its score model."""
        return {"model": self.path, "kind": self.kind, "marginal": self.config["marginal"],
                "data": self.config["data"], "process": self.config["process"],
                "steps": self.config["step"], "hutchinson": self.hutchinson,
                "probes": self.probes(2) if self.uses_probes() else 0,
                "standardized": self.standardized}

    # -- coordinates -------------------------------------------------------------------
    def to_data(self, z) -> np.ndarray:
        """Model coordinates → data coordinates: x = scale·z + mean with --standardize,
        the identity otherwise."""
        return self.standardizer.inverse(np.asarray(z))

    def from_data(self, x) -> np.ndarray:
        """Data coordinates → model coordinates (the identity unless standardized)."""
        return self.standardizer.forward(np.asarray(x))

    def training_data(self, n: int | None = None) -> np.ndarray:
        """The stored training set in data coordinates (the first n points)."""
        return self.to_data(np.asarray(self.data[:n], float))

    RANGE_MARGIN = RANGE_MARGIN
    #: warn when more than this fraction of the samples is out of range (the sampler's and
    #: the data's own tails put a few tenths of a percent there on 2D sets)
    RANGE_WARN = 0.01

    def range_report(self, x) -> tuple[float | None, str | None]:
        """(fraction of samples x (N, d), data units, outside the training data's range
        ± RANGE_MARGIN of its span, a warning line if that is above RANGE_WARN); (None,
        None) for models saved before the range was recorded."""
        rng = self.config["data"].get("range")
        if rng is None:
            return None, None
        lo, hi = rng
        m = self.RANGE_MARGIN * (hi - lo)
        frac = out_of_range(x, lo, hi, m)
        if frac <= self.RANGE_WARN:
            return frac, None
        return frac, (f"{frac:.1%} of the samples leave the training data's range "
                      f"[{lo:.4g}, {hi:.4g}] by more than {m:.3g} in some coordinate (written "
                      "as they are; the sampler is outside its range there: see "
                      "info['out_of_range'] and the validity diagnostic)")

    def units_line(self) -> str:
        """One line saying in which coordinates the process parameters act."""
        where = f"model {self.path}" if self.path else "model"
        p = self.config["process"]
        if not self.standardized:
            return (f"{where}: process (tau = {p['tau']:g}, D_A = {p['d_active']:g}, "
                    f"beta = {p['beta']:g}) in the data's own units")
        sd = self.standardizer
        return (f"{where}: trained with --standardize: tau = {p['tau']:g}, D_A = "
                f"{p['d_active']:g}, beta = {p['beta']:g} act on z = (x - mean)/{sd.scale:.4g}, "
                "not on the data's units; samples are mapped back to data units")

    @property
    def n_params(self) -> int:
        return n_params(self.net)


# -- checkpoints -------------------------------------------------------------------
def _skeleton(cfg):
    net = ScoreNet(cfg["data"]["d"], cfg["kind"], cfg["width"], cfg["depth"], cfg["n_freq"],
                   jax.random.key(cfg["seed"]), cfg["n_fourier"], cfg["fourier_max"])
    return net, make_optimizer(cfg)


def save_checkpoint(path, net, opt_state, cfg, data, losses=None):
    """Write config.json (full configuration, process, data statistics, progress),
    model.eqx (weights), opt_state.eqx (optimizer, for resuming), data.npy (standardised
    training set) and loss.csv (with `losses` appended), as one consistent set: all are
    written into PATH/.checkpoint-next, which is renamed PATH/.checkpoint-commit (the
    commit point) and then moved into place, config.json last. An interrupted checkpoint
    is dropped (before the commit) or completed (after it) by the next save or load
    (`_recover_checkpoint`): the folder always holds one whole checkpoint.
    config.json carries `checksum` (`model_checksum`: the weights, the data and the
    configuration), verified by every load. A write that fails (a full disk, a read-only
    folder) raises one ActivegenError line and leaves the previous checkpoint."""
    import os
    import shutil

    path = Path(path)
    nxt = path / _CKPT_NEXT
    try:
        path.mkdir(parents=True, exist_ok=True)
        _recover_checkpoint(path)
        nxt.mkdir()
        eqx.tree_serialise_leaves(nxt / WEIGHTS_FILE, net)
        eqx.tree_serialise_leaves(nxt / OPT_FILE, opt_state)
        if not (path / DATA_FILE).exists():
            np.save(nxt / DATA_FILE, np.asarray(data, np.float32))
        if losses:
            old = path / LOSS_FILE
            text = old.read_text() if old.exists() else "step,loss\n"
            (nxt / LOSS_FILE).write_text(text + "".join(f"{s},{v:.6g}\n" for s, v in losses))
        data_file = nxt / DATA_FILE if (nxt / DATA_FILE).exists() else path / DATA_FILE
        cfg = {**cfg, "checksum": model_checksum(nxt / WEIGHTS_FILE, data_file, cfg)}
        (nxt / CONFIG_FILE).write_text(json.dumps(cfg, indent=2))
        os.replace(nxt, path / _CKPT_COMMIT)  # the commit point
    except OSError as exc:
        shutil.rmtree(nxt, ignore_errors=True)
        raise ActivegenError(f"cannot write the checkpoint in {path}: "
                             f"{exc.strerror or exc} (the previous checkpoint is kept)") from None
    _recover_checkpoint(path)


def model_checksum(weights, data, cfg) -> str:
    """"sha256:<hex>" of the weights file, the (standardised) training data file and the
    configuration (canonical JSON without `checksum`): config.json's `checksum`."""
    import hashlib

    h = hashlib.sha256()
    for name, f in (("weights", Path(weights)), ("data", Path(data))):
        h.update(f"{name}:".encode())
        if f.is_file():
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        h.update(b";")
    rest = {k: v for k, v in cfg.items() if k != "checksum"}
    h.update(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode())
    return "sha256:" + h.hexdigest()


def _write_config(path, cfg) -> None:
    """config.json of the checkpoint in `path` (its files in place) with a new checksum."""
    from ..files import write_json

    path = Path(path)
    write_json(path / CONFIG_FILE,
               {**cfg, "checksum": model_checksum(path / WEIGHTS_FILE, path / DATA_FILE, cfg)})


def _verify_checksum(path, cfg) -> None:
    """Refuse a model whose files do not match config.json's checksum; one without a
    checksum (written before it was added) loads with a warning."""
    import warnings

    path = Path(path)
    if "checksum" not in cfg:
        warnings.warn(f"model {path} carries no checksum (written by an older activegen): "
                      "its files cannot be verified", UserWarning, stacklevel=4)
        return
    if cfg["checksum"] != model_checksum(path / WEIGHTS_FILE, path / DATA_FILE, cfg):
        raise ActivegenError(
            f"model {path} does not match its checksum: {WEIGHTS_FILE}, {DATA_FILE} or "
            f"{CONFIG_FILE} changed after training (refusing to load it; restore its files "
            "or train it again)")


_CKPT_NEXT, _CKPT_COMMIT = ".checkpoint-next", ".checkpoint-commit"


def _recover_checkpoint(path):
    """Complete a committed checkpoint (move its files into place, config.json last) and
    drop an uncommitted one (see `save_checkpoint`)."""
    import os
    import shutil

    path = Path(path)
    try:
        commit = path / _CKPT_COMMIT
        if commit.is_dir():
            for name in (WEIGHTS_FILE, OPT_FILE, DATA_FILE, LOSS_FILE, CONFIG_FILE):
                if (commit / name).exists():
                    os.replace(commit / name, path / name)
            shutil.rmtree(commit)
        if (path / _CKPT_NEXT).exists():
            shutil.rmtree(path / _CKPT_NEXT)
    except OSError as exc:
        raise ActivegenError(f"cannot complete the interrupted checkpoint in {path}: {exc}") from None


def _read_config(path) -> dict:
    path = Path(path)
    if path.is_dir():
        _recover_checkpoint(path)
    f = path / CONFIG_FILE
    if not f.is_file():
        raise ActivegenError(f"no model in {path}: {CONFIG_FILE} not found (train one first)")
    try:
        cfg = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise ActivegenError(f"{f} is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise ActivegenError(f"{f} is not a model configuration (not a JSON object)")
    missing = [k for k in ("kind", "process", "data", "standardizer", "step") if k not in cfg]
    if missing:
        raise ActivegenError(f"{f} is not a model configuration (missing {', '.join(missing)})")
    proc = cfg["process"]
    bad = [k for k in ("beta", "d_thermal", "d_active", "tau") if not isinstance(proc, dict)
           or isinstance(proc.get(k), bool) or not isinstance(proc.get(k), (int, float))]
    if bad:
        raise ActivegenError(f"{f}: 'process' must give the numbers {', '.join(bad)} "
                             "(the forward process the model was trained for)")
    if not isinstance(cfg["data"], dict) or not isinstance(cfg["data"].get("d"), int):
        raise ActivegenError(f"{f}: 'data' must give the dimension d")
    _verify_checksum(path, cfg)  # before defaults fill in keys
    for k, v in DEFAULTS.items():
        cfg.setdefault(k, v)
    return cfg


def _load_state(path, cfg):
    path = Path(path)
    net, opt = _skeleton(cfg)
    # the weights are stored in float32; under --x64 the skeleton is float64: read float32
    net = jax.tree.map(lambda a: a.astype(jnp.float32)
                       if eqx.is_array(a) and a.dtype == jnp.float64 else a, net)
    try:
        net = eqx.tree_deserialise_leaves(path / WEIGHTS_FILE, net)
        params = eqx.filter(net, eqx.is_array)
        opt_state = opt.init(params)
        if (path / OPT_FILE).exists():
            opt_state = eqx.tree_deserialise_leaves(path / OPT_FILE, opt_state)
        data = np.load(path / DATA_FILE)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ActivegenError(f"cannot load the model in {path}: {exc}") from None
    return net, opt_state, data


def load_model(path, hutchinson: int | None = None) -> LearnedScore:
    """The LearnedScore stored in MODEL_DIR (see `save_checkpoint`)."""
    cfg = _read_config(path)
    net, _, data = _load_state(path, cfg)
    return LearnedScore(net, cfg, data, path=str(path), hutchinson=hutchinson)


#: The largest data dimension `train` takes: the model holds d × d matrices (the data's
#: covariance in config.json, its eigenvectors, the precision and whitening of each time)
#: and a step costs O(batch·d²) (the 8×8 digits: d = 64).
MAX_TRAIN_DIM = 1024
#: |x| above which data are refused without standardize: the model computes in float32,
#: where squares of the data (the covariance, the quadratic part of the energy) must fit
#: (float32 holds up to 3.4e38: |x| <= 1.8e19; measured, training and fox sampling work
#: at 1e19 and overflow at 1e20; a decade of headroom).
MAX_TRAIN_SCALE = 1e18


def check_training_data(x, standardize: bool = False) -> np.ndarray:
    """Refuse, before any work, data that training cannot hold (one line naming the
    sizes): d > MAX_TRAIN_DIM (e.g. a transposed file: 4 rows × 20 000 columns), more
    memory than `errors.memory_limit()`, or (without standardize) a scale beyond
    MAX_TRAIN_SCALE, where float32 overflows."""
    from ..errors import memory_limit

    n, d = x.shape
    shape = f"{n} rows × {d} columns" + ("; a transposed file?" if n < d else "")
    if d > MAX_TRAIN_DIM:
        raise ActivegenError(
            f"the data have d = {d} coordinates ({shape}): train takes d <= {MAX_TRAIN_DIM} "
            "(the model holds d × d matrices and a step costs batch × d² operations)")
    need = 8 * 8 * d * d + 4 * 8 * n * d  # d × d float64 matrices, copies of the data
    limit = memory_limit()
    if need > limit:
        raise ActivegenError(
            f"training on {shape} would hold about {need / 1e9:.3g} GB, above the memory "
            f"limit {limit / 1e9:.3g} GB (ACTIVEGEN_MAX_MEMORY or half the machine's memory)")
    big = float(np.max(np.abs(x)))
    if not standardize and big > MAX_TRAIN_SCALE:
        raise ActivegenError(
            f"the data reach |x| = {big:.3g}, beyond what training in float32 holds (its "
            f"range is ~3.4e38, and squares of the data must fit: |x| <= "
            f"{MAX_TRAIN_SCALE:.0e}); rescale the data or train with --standardize")
    return x


def train(
    data=None,
    out=None,
    *,
    process: ActiveOU | None = None,
    resume: bool = False,
    progress: bool = False,
    source: str = "array",
    standardize: bool = False,
    stop_at: int | None = None,
    **options,
) -> tuple[LearnedScore, dict]:
    """Train (or, with resume=True, continue training) a score model by DSM.

    data: (N, d) array in data coordinates. The forward process, the samplers and the
    process parameters live in these coordinates (the network whitens its input by the data's
    mean and covariance diffused to time t, which is conditioning, not physics); with
    standardize=True the data are first mapped to z = (x − mean)/scale and the process acts
    on z (τ, D_A, β then mean other things: recorded as config["standardized"]);
    out: model folder (checkpoints after every chunk of steps), or None (in memory).
    options: any of DEFAULTS (kind, marginal, width, depth, n_freq, t_min, t_max, batch,
    lr, warmup, steps = the schedule's total, chunk, seed, hutchinson). With resume the
    stored configuration is used; `steps` may be raised (the cosine schedule then stretches).
    stop_at: end this call after that many steps in all (checkpointed; the schedule is
    unchanged, so a later resume continues exactly as one uninterrupted run).
    Returns (LearnedScore, report) with report = {steps, seconds, n_params, last_loss}.
    """
    if resume:
        if out is None:
            raise ActivegenError("resume needs the model folder")
        cfg = _read_config(out)
        if process is not None:
            LearnedScore(None, cfg, np.zeros((1, cfg["data"]["d"]))).check_process(process)
        bad = [k for k in options if k not in ("steps",) and options[k] != cfg.get(k)]
        if bad:
            raise ActivegenError(
                f"cannot change {', '.join(bad)} when resuming (stored in {out}/{CONFIG_FILE})"
            )
        if "steps" in options:
            steps = check_count("steps", options["steps"])
            if steps < cfg["step"]:
                raise ActivegenError(
                    f"--steps is the total number of steps: the model in {out} has already "
                    f"trained {cfg['step']}, so give --steps > {cfg['step']} to continue "
                    f"(got {steps}; nothing changed)")
            cfg["steps"] = steps
        if cfg["step"] >= cfg["steps"]:
            raise ActivegenError(
                f"the model in {out} has already trained all its {cfg['steps']} steps: give "
                f"--steps > {cfg['step']} (the new total) to continue; nothing changed")
        net, opt_state, zdata = _load_state(out, cfg)
        prev_seconds = cfg.get("train_seconds", 0.0)
    else:
        unknown = sorted(set(options) - set(DEFAULTS))
        if unknown:
            raise ActivegenError(f"unknown training options: {', '.join(unknown)}")
        if out is not None and (Path(out) / CONFIG_FILE).exists():
            raise ActivegenError(
                f"{out} already holds a model; use --resume to continue it or another --out"
            )
        x = check_training_data(check_data(data), standardize)
        process = process or ActiveOU()
        std = Standardizer.fit(x) if standardize else Standardizer.identity(x.shape[1])
        zdata = std.forward(x).astype(np.float32)
        cfg = dict(DEFAULTS)
        cfg.update(options)
        cfg["process"] = dict(beta=process.beta, d_thermal=process.d_thermal,
                              d_active=process.d_active, tau=process.tau)
        cfg["data"] = {"source": str(source), "n": int(x.shape[0]), "d": int(x.shape[1]),
                       "range": [float(x.min()), float(x.max())]}
        if str(source) in IMAGE_SHAPES:
            cfg["data"]["image_shape"] = list(IMAGE_SHAPES[str(source)])
        cfg["standardizer"] = std.to_dict()
        cfg["standardized"] = bool(standardize)
        cfg["conditioning"] = {"mean": zdata.mean(0).astype(float).tolist(),
                               "cov": np.atleast_2d(np.cov(zdata.astype(float), rowvar=False)).tolist()}
        cfg["step"] = 0
        _check_cfg(cfg)
        net, opt = _skeleton(cfg)
        opt_state = opt.init(eqx.filter(net, eqx.is_array))
        cfg["n_params"] = n_params(net)
        prev_seconds = 0.0
    _check_cfg(cfg)
    process = _process_of(cfg)
    opt, step = _make_step_cached(cfg, process)
    data_j = jnp.asarray(zdata, jnp.float32)
    start, total, chunk = cfg["step"], cfg["steps"], cfg["chunk"]
    end = total if stop_at is None else min(total, check_count("stop_at", stop_at))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc="train", unit="step")
    t0 = time.perf_counter()
    last = math.nan
    while start < end:
        n_live = min(chunk, end - start)
        losses = []
        for i in range(start, start + n_live):
            net, opt_state, loss = step(net, opt_state, data_j, jnp.asarray(i, jnp.int32))
            losses.append(loss)
        losses = np.asarray(jnp.stack(losses))
        if not np.all(np.isfinite(losses[:n_live])):
            lo, hi = cfg["data"].get("range", (0.0, 0.0))
            big = max(abs(float(lo)), abs(float(hi)))
            raise ActivegenError(
                f"training diverged (non-finite loss near step {start}); lower --lr"
                + (f", or train with --standardize (the data reach |x| = {big:.3g})"
                   if not cfg.get("standardized") and big > 1e3 else "")
            )
        last = float(losses[:n_live].mean())
        start += n_live
        cfg["step"] = start
        cfg["train_seconds"] = prev_seconds + time.perf_counter() - t0
        if out is not None:
            save_checkpoint(out, net, opt_state, cfg, zdata, [(start, last)])
        if bar is not None:
            bar.update(n_live)
            bar.set_postfix(loss=f"{last:.4f}")
    if bar is not None:
        bar.close()
    cfg["train_seconds"] = prev_seconds + time.perf_counter() - t0
    if out is not None:
        _write_config(out, cfg)
    model = LearnedScore(net, cfg, zdata, path=None if out is None else str(out))
    report = {"steps": cfg["step"], "seconds": cfg["train_seconds"], "n_params": cfg["n_params"],
              "last_loss": last}
    return model, report
