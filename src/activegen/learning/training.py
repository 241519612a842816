"""Training a score model by denoising score matching (DSM): `train`.

With data instead of an analytic density, p(x,t) is learned from samples through the exact
Gaussian conditional of the forward x-marginal (THEORY.md §1):

    x_t = m(t) x_0 + √v(t) ε,   m = e^{−βt},   ε ~ N(0, I),   ∇ log p(x_t | x_0) = −ε/√v.

DSM loss (λ(t) = v(t) weighting, i.e. noise prediction):

    L(θ) = E_{t, x_0, ε} | √v(t) S_θ(x_t, t) + ε |²

with t drawn half uniform on [t_min, T] and half log-uniform (the small-t region, where the
score varies fastest and the sampler ends, gets more samples). Minimisers satisfy
S_θ = ∇ log p(·, t) for every t.

The Ψ head (THEORY.md §5) is fitted in the same loss by second-order Tweedie regression:
Ψ = Δp/p = E[|x_t − m x_0|²/v² − d/v | x_t] = E[(|ε|² − d)/v | x_t], so with the same
weighting by v (the target's variance is 2d/v²)

    L_Ψ(θ) = E | v Ψ_θ(x_t, t) − (|ε|² − d) |²,

whose minimiser is Ψ_θ = Δp/p (a posterior mean, learned exactly as the score is). Its
target's noise does not shrink with t (the posterior of x_0 at small t is nearly the
prior's noise: the signal vΨ is O(v), the noise O(√(2d))), so small t is also fitted to
the energy's own Δp/p = |∇E|² − ΔE (exact trace up to d = EXACT_TRACE_MAX_D, one
Rademacher probe above; not differentiated: it teaches Ψ, not E):

    L_C(θ) = E (v/d) |Ψ_θ − [|∇E_θ|² − ΔE_θ]|²,     L = L_S + ½ (L_Ψ + L_C),

weighted by v, not v² as L_Ψ: at time t the fit is the mean of the two targets weighted
1/(vd) for L_C against 1 for L_Ψ, so L_C decides as t → 0. Ψ_θ is a network of its own
(`network.ScoreNet.psi_net`, its own optimiser), so L_Ψ and L_C do not change E's training.

Ψ_θ then carries the energy's second derivatives where the regression is blind, and the
force needs only its gradient, not E's third derivatives (docs/learned.md).

The joint score (marginal="joint", for method exact; `model`): with the exact
parametrisation of the joint law through z = x − kη, the joint DSM loss on (x_t, η_t) equals
(1 + k²) times the DSM loss of S_z on z_t = m x_0 + √u ε, which is what is minimised (the
same network, variance u(t) in place of v(t)).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..errors import ActivegenError, check_count, check_positive
from ..physics.processes import ActiveOU
from .checkpoint import (
    CONFIG_FILE,
    load_state,
    read_config,
    save_checkpoint,
    skeleton,
    write_config,
)
from .datasets import IMAGE_SHAPES, Standardizer, check_data
from .derivatives import EXACT_HESSIAN_MAX_D
from .model import LearnedScore
from .network import (
    DEFAULTS,
    KINDS,
    MARGINALS,
    make_optimizer,
    has_psi,
    n_params,
    process_of,
    energy_psi_at,
    score_at,
    time_state,
    variance_fn,
)

def _sample_times(key, n, t_min, t_max):
    """Half uniform on [t_min, T], half log-uniform."""
    k1, k2, k3 = jax.random.split(key, 3)
    u = jax.random.uniform(k1, (n,), minval=t_min, maxval=t_max)
    lg = jnp.exp(jax.random.uniform(k2, (n,), minval=math.log(t_min), maxval=math.log(t_max)))
    return jnp.where(jax.random.bernoulli(k3, 0.5, (n,)), u, lg)


#: the weight of the Ψ terms in the loss (module doc)
PSI_WEIGHT = 0.5
#: the energy's own Δp/p in the consistency term: the exact Hessian trace up to this d, one
#: Rademacher probe above
EXACT_TRACE_MAX_D = 8


def dsm_loss(net, cfg, process, x0, key):
    """L = mean |√var(t) S_θ(x_t, t) + ε|² (+ ½ mean |var Ψ_θ − (|ε|² − d)|² with the Ψ
    head), x_t = m x_0 + √var ε (var = v, or u for the joint model's z); one t per data
    point."""
    n = x0.shape[0]
    kt, ke = jax.random.split(key)
    t = _sample_times(kt, n, cfg["t_min"], cfg["t_max"])
    eps = jax.random.normal(ke, x0.shape, x0.dtype)
    var = variance_fn(process, cfg["marginal"])(t)
    xt = process.mean_scale(t)[:, None] * x0 + jnp.sqrt(var)[:, None] * eps
    if has_psi(cfg):
        d = x0.shape[1]
        probes = jax.random.rademacher(jax.random.fold_in(key, 1), x0.shape, x0.dtype)

        def one(ti, xi, zi):  # S = −∇E and Ψ from one pass; the energy's own Δp/p
            st = time_state(net, cfg, process, ti)
            grad_e = lambda y: jax.grad(energy_psi_at, argnums=1, has_aux=True)(st, y)  # noqa: E731
            if d <= EXACT_TRACE_MAX_D:
                g, psi = grad_e(xi)
                lap = jnp.trace(jax.jacfwd(lambda y: grad_e(y)[0])(xi))
            else:
                (g, psi), (hz, _) = jax.jvp(grad_e, (xi,), (zi,))
                lap = jnp.dot(zi, hz)
            return -g, psi, jax.lax.stop_gradient(jnp.dot(g, g) - lap)

        s, psi, own = jax.vmap(one)(t, xt, probes)
        target = jnp.sum(eps * eps, -1) - d
        loss_psi = PSI_WEIGHT * (jnp.mean((var * psi - target) ** 2)
                                 + jnp.mean(var * (psi - own) ** 2) / d)
    else:
        score_fn = score_at(cfg["kind"])
        s = jax.vmap(lambda ti, xi: score_fn(time_state(net, cfg, process, ti), xi))(t, xt)
        loss_psi = 0.0
    return jnp.mean(jnp.sum((jnp.sqrt(var)[:, None] * s + eps) ** 2, -1)) + loss_psi


_STEP_CACHE: dict = {}


def _make_step_cached(cfg, process):
    """The compiled step for one (architecture, optimisation, process) configuration, reused
    across train calls (e.g. a resume in the same session)."""
    keys = ("kind", "marginal", "width", "depth", "n_freq", "t_min", "t_max", "batch", "lr",
            "warmup", "steps", "seed", "data", "n_fourier", "fourier_max", "psi")
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
    cfg["psi"] = has_psi(cfg)
    if isinstance(cfg["hutchinson"], bool) or int(cfg["hutchinson"]) < 0:
        raise ActivegenError(f"hutchinson must be an integer >= 0, got {cfg['hutchinson']!r}")


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
    lr, warmup, steps = the schedule's total, chunk, seed, hutchinson, psi: the Ψ head, by
    default where the force's route needs it, d > EXACT_HESSIAN_MAX_D). With resume the
    stored configuration is used; `steps` may be raised (the cosine schedule then stretches).
    stop_at: end this call after that many steps in all (checkpointed; the schedule is
    unchanged, so a later resume continues exactly as one uninterrupted run).
    Returns (LearnedScore, report) with report = {steps, seconds, n_params, last_loss}.
    """
    if resume:
        if out is None:
            raise ActivegenError("resume needs the model folder")
        cfg = read_config(out)
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
        net, opt_state, zdata = load_state(out, cfg)
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
        if cfg["psi"] is None:  # what the force needs: Ψ where the exact pass does not reach
            cfg["psi"] = x.shape[1] > EXACT_HESSIAN_MAX_D
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
        net, opt = skeleton(cfg)
        opt_state = opt.init(eqx.filter(net, eqx.is_array))
        cfg["n_params"] = n_params(net)
        prev_seconds = 0.0
    _check_cfg(cfg)
    process = process_of(cfg)
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
        write_config(out, cfg)
    model = LearnedScore(net, cfg, zdata, path=None if out is None else str(out))
    report = {"steps": cfg["step"], "seconds": cfg["train_seconds"], "n_params": cfg["n_params"],
              "last_loss": last}
    return model, report
