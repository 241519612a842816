"""The learned score's derivatives: the batched pass and the per-point reference routes.

The batched pass carries the value, gradient, Hessian and ∇Δ of the network through every
layer for a whole ensemble at once, particles last (`energy_derivs_batch`,
`vector_derivs_batch`; `n_channels` per hidden unit); `probe_derivs` gives Hutchinson
estimates that never form ∇S; `tiled` runs a pass on tiles of particles, `particle_map`
folds the samplers' blocks into one pass. The per-point routes (`hutchinson_grad_div`,
`vector_derivs`) are the references the tests and benchmarks compare against.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._fastmath import sincos
from ..physics.scores import ScoreDerivs, psi_derivs
from .network import TimeState, psi_state

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


def energy_psi_batch(st: TimeState, xs):
    """(E_θ, Ψ_θ) at points xs (d, N) -> ((N,), (N,)) from one value pass of a model with
    the Ψ head (`network.energy_psi_at`): Ψ_θ = |P_t y|² − tr P_t + N_θ,2/var."""
    y, py, gauss = _gauss(st, xs)
    pyy = sum(p * p for p in py) if isinstance(py, list) else jnp.sum(py * py, 0)
    return (gauss + st.out_scale * _net_channels(st, y, -1)[0, 0],
            pyy - jnp.trace(st.prec) + st.psi_scale * _net_channels(psi_state(st), y, -1)[0, 0])


def psi_derivs_batch(st: TimeState, xs, probe=None) -> ScoreDerivs:
    """ScoreDerivs at xs (d, N) from E_θ and the Ψ head, no third derivative
    (THEORY.md §5, `scores.psi_derivs`).

    d ≤ EXACT_HESSIAN_MAX_D: batched forward passes carrying value, gradient and Hessian
    channels of E (`_net_channels` at order 1: S and ∇S exact, so the diagnostic and ucn have
    it) and value and gradient channels of the Ψ network (order 0: Ψ and ∇Ψ). Above: S = −∇E and ∇Ψ by two reverse passes sharing one forward
    pass, (∇S)S by one Hessian-vector product (a Jacobian-vector product of S along S);
    ∇S is not formed. probe (d, M), M ≤ N, if given: ‖∇S‖_F² ≈ |(∇S)z|² at the first M
    points, with E zzᵀ = I (the validity diagnostic), repeated to N: only its ensemble mean
    means something."""
    d, n = xs.shape
    if d <= EXACT_HESSIAN_MAX_D:
        y, py, gauss = _gauss(st, xs)
        c, cp = st.out_scale, st.psi_scale
        v, g, h, _ = _split(_net_channels(st, y, 1)[0], d, 1)
        pv, pg, _, _ = _split(_net_channels(psi_state(st), y, 0)[0], d, 0)
        ppy = [sum(st.prec[i, j] * py[j] for j in range(d)) for i in range(d)]
        score = jnp.stack([-(py[i] + c * g[i]) for i in range(d)])
        hess = jnp.stack([jnp.stack([-(st.prec[i, j] + c * h[i, j]) for j in range(d)])
                          for i in range(d)])
        psi = sum(q * q for q in py) - jnp.trace(st.prec) + cp * pv
        grad_psi = jnp.stack([2.0 * ppy[i] + cp * pg[i] for i in range(d)])
        hs = jnp.stack([sum(hess[i, j] * score[j] for j in range(d)) for i in range(d)])
        return psi_derivs(-(gauss + c * v), score, grad_psi, hs, psi)._replace(hessian=hess)

    def grads(u):
        (e, psi), pull = jax.vjp(lambda w: energy_psi_batch(st, w), u)
        one, zero = jnp.ones_like(e), jnp.zeros_like(e)
        return -pull((one, zero))[0], pull((zero, one))[0], e, psi

    score, grad_psi, e, psi = grads(xs)
    grad_s = lambda u: grads(u)[0]  # noqa: E731
    hs = jax.jvp(grad_s, (xs,), (score,))[1]
    fro2 = None
    if probe is not None:
        m = probe.shape[1]
        hz = jax.jvp(grad_s, (xs[:, :m],), (probe,))[1]
        fro2 = jnp.resize(jnp.sum(hz * hz, 0), (n,))
    return psi_derivs(-e, score, grad_psi, hs, psi, fro2)


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


def point_key(key, x):
    """A key for one point at one time: fold_in of the time key with the bits of x."""
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    return jax.random.fold_in(key, jnp.sum(bits * jnp.arange(1, x.shape[0] + 1, dtype=jnp.uint32)))
