"""The score network N_θ and its conditioning: the model's configuration (`DEFAULTS`), the
time embedding, the network (`ScoreNet`), the per-time state (`time_state`) and the
per-point energy and score (`energy_at`, `vector_score_at`), the process a configuration
names and the optimiser its training uses (Adam; its state is part of a checkpoint).

Parametrisations (`kind`), both with the Gaussian part of the marginal of the training data,
Σ_t = m²Σ + v·I, built in and the network input whitened by Σ_t^(−1/2):

* "energy": a scalar E_θ(x,t) = ½yᵀP_t y + (σ̄_t/√v) N_θ(A_t y, t) ≈ −log p(x,t) + const
  (y = x − m(t)μ); S = −∇E, and ∇S, ∇(∇·S) by autodiff of −E (`scores.autodiff_derivs`) or
  the batched pass (`derivatives`): the force built from it is a true gradient, the
  potentials V_F, V_U are available, ∇S is symmetric.
* "vector": S_θ(x,t) = −P_t y − N_θ(A_t y, t)/√v with a d-vector output; ∇S and ∇(∇·S) by
  autodiff of S_θ (∇S not symmetric, no log p: log_p is reported as 0).

The Ψ head (`psi`, energy models of the x-marginal; THEORY.md §5, docs/learned.md): a second
network of the same shape, Ψ_θ(x,t) = |P_t y|² − tr P_t + M_θ(A_t y, t)/v (the Gaussian
part's Δp/p plus a learned residual), fitted to Ψ = Δp/p = E[|x − m y|²/v² − d/v | x]
(`training.dsm_loss`). With it the effective potential needs no third derivative of E. It
is a separate network (ScoreNet.psi_net, its own time biases and optimiser state), so E
trains exactly as without it.

N_θ is an MLP with SiLU activations (smooth: the effective potential needs third x-derivatives
of E) on fixed random Fourier features [z, sin Bz, cos Bz] of its input (frequencies up to
`fourier_max` = 4: without them the MLP's spectral bias left modes of width ~0.1 unresolved,
relative score error 0.5 at small t on eight Gaussians, 0.01 with them; much higher
frequencies blow up the third derivatives fox needs), and every hidden layer gets a bias
from a Fourier embedding of log t. `prepare(t)` (`time_state`) computes these time biases
and scalings once per time step; the per-point function only sees x.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..physics.processes import ActiveOU

KINDS = ("energy", "vector")
MARGINALS = ("x", "joint")

DEFAULTS = dict(
    kind="energy", marginal="x", width=16, depth=2, n_freq=6,
    t_min=1e-3, t_max=6.0, batch=512, lr=2e-3, warmup=100, steps=3000, chunk=100,
    seed=0, hutchinson=0, n_fourier=16, fourier_max=4.0, psi=None,
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
    h ← SiLU(W h + U emb(t) + b); output width 1 (energy) or d (vector). psi: a second
    network of the same shape for the Ψ head (`psi_net`, its key folded from `key`)."""

    layers: list
    time_layers: list
    out: eqx.nn.Linear
    freqs: jax.Array
    psi_net: "ScoreNet | None" = None

    def __init__(self, dim: int, kind: str, width: int, depth: int, n_freq: int, key,
                 n_fourier: int = 0, fourier_max: float = 16.0, psi: bool = False):
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
        self.psi_net = (ScoreNet(dim, "energy", width, depth, n_freq, jax.random.fold_in(key, 1),
                                 n_fourier, fourier_max) if psi else None)

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
    psi_scale: jax.Array | None = None
    psi_biases: list | None = None


def variance_fn(process: ActiveOU, marginal: str):
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


def time_state(net, cfg, process, t, key=None, cond=None) -> TimeState:
    """Σ_t = m²Σ + var I = Q diag(m²λ + var) Qᵀ: P_t = Q diag(1/(m²λ + var)) Qᵀ,
    A_t = Q diag((m²λ + var)^(−1/2)) Qᵀ, out_scale = σ̄_t/√var (energy) or 1/√var (vector)
    with σ̄_t² = m² mean(λ) + var (μ = 0, Σ = I: the old σ_t² = m² + var); psi_scale = 1/var."""
    t = jnp.asarray(t)
    mu, q, lam = conditioning(cfg) if cond is None else cond
    var = variance_fn(process, cfg["marginal"])(t)
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
    psi_b = None if net.psi_net is None else net.psi_net.time_biases(emb)
    return TimeState(net, net.time_biases(emb), m * jnp.asarray(mu, dt), prec, whiten, scale, key,
                     1.0 / var, psi_b)


def psi_state(st: TimeState) -> TimeState:
    """The state of the Ψ head's network M_θ (its weights and time biases in place of N_θ's)."""
    return st._replace(net=st.net.psi_net, biases=st.psi_biases)


def energy_at(st: TimeState, x):
    """E_θ(x,t) = ½ yᵀP_t y + out_scale · N_θ(A_t y, t), y = x − m(t)μ  (≈ −log p + const)."""
    y = x - st.center
    return 0.5 * jnp.dot(y, st.prec @ y) + st.out_scale * st.net.apply(st.biases, st.whiten @ y)[0]


def energy_psi_at(st: TimeState, x):
    """(E_θ, Ψ_θ) at one point: E_θ as `energy_at`,
    Ψ_θ(x,t) = |P_t y|² − tr P_t + M_θ(A_t y, t)/var  (≈ Δp/p; models with the Ψ head)."""
    y = x - st.center
    py = st.prec @ y
    z = st.whiten @ y
    return (0.5 * jnp.dot(y, py) + st.out_scale * st.net.apply(st.biases, z)[0],
            jnp.dot(py, py) - jnp.trace(st.prec)
            + st.psi_scale * st.net.psi_net.apply(st.psi_biases, z)[0])


def has_psi(cfg) -> bool:
    """Whether a model configuration has the Ψ head (energy models of the x-marginal trained
    with psi, the default since it existed; older models have none)."""
    return bool(cfg.get("psi", False)) and cfg["kind"] == "energy" and cfg["marginal"] == "x"


def vector_score_at(st: TimeState, x):
    """S_θ(x,t) = −P_t y − N_θ(A_t y, t)/√v, y = x − m(t)μ."""
    y = x - st.center
    return -st.prec @ y - st.out_scale * st.net.apply(st.biases, st.whiten @ y)


def score_at(kind):
    if kind == "energy":
        return lambda st, x: -jax.grad(energy_at, argnums=1)(st, x)
    return vector_score_at


def make_optimizer(cfg):
    """Adam, warm-up then cosine decay to 1% over cfg['steps'], gradient clipping at 1; with
    the Ψ head, E's network and the Ψ network each clipped and stepped on their own (E then
    trains exactly as in a model without the head)."""
    warm = min(cfg["warmup"], max(1, cfg["steps"] // 10))
    sched = optax.warmup_cosine_decay_schedule(
        0.0, cfg["lr"], warm, max(cfg["steps"], warm + 1), end_value=0.01 * cfg["lr"]
    )
    base = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(sched))
    if not has_psi(cfg):
        return base

    def labels(params):
        lab = jax.tree.map(lambda _: "e", params)
        return eqx.tree_at(lambda p: p.psi_net, lab,
                           replace_fn=lambda sub: jax.tree.map(lambda _: "psi", sub))

    return optax.multi_transform({"e": base, "psi": base}, labels)


def process_of(cfg) -> ActiveOU:
    return ActiveOU(**cfg["process"])
