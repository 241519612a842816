"""The model's likelihood of data: the probability-flow ODE with the change of variables.

The forward x-marginal obeys ∂_t p = β∇·(xp) + D_eff(t) Δp exactly (THEORY.md §2), so the
deterministic flow

    dx/dt = f(x, t) = −βx − D_eff(t) S(x, t)

carries p(·, 0) to p(·, T), and along it d log p(x_t, t)/dt = −∇·f. Hence, integrating from a
data point x_0 to t = T,

    log p_0(x_0) = log p_T(x_T) + ∫_0^T ∇·f(x_t, t) dt,    ∇·f = −βd − D_eff ∇·S,

with diffrax (Tsit5, adaptive). ∇·S is exact (the trace of ∇S) for d ≤ EXACT_MAX_DIM and
a Hutchinson estimate εᵀ(∇S)ε with `probes` Rademacher probes (fixed along each path) above.
p_T: for a Gaussian-mixture target its exact p(x, T); for a learned model the Gaussian
N(m(T)μ, m(T)²Σ + v(T) I) of its training data's mean and covariance (off by the data's
non-Gaussian part, weighted e^{−βT}); for other score models N(0, (e^{−2βT} + v(T)) I).
Image data (`--data digits`, the held-out images): the mean NLL is also printed in bits per
dimension of the 17 pixel levels, (NLL/d + log 8)/log 2 (bin width 1/8 in the scale x/8 − 1,
no dequantisation: the continuous density at the levels times the bin width). A learned model's log p in data units adds
−d log(scale) of its standardisation (`log_likelihood(..., log_scale=…)`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import (
    ActivegenError,
    check_count,
    check_positive,
    check_real,
    memory_limit,
    seed_key,
)

#: Exact divergence up to this dimension; Hutchinson probes above.
EXACT_MAX_DIM = 8
#: Default number of Hutchinson probes.
DEFAULT_PROBES = 16
#: The loosest ODE tolerance (rtol, atol) accepted; the tightest is the dtype's epsilon.
MAX_RTOL = 0.1
#: The solver's step budget per batch (a tolerance it cannot meet ends in one error line).
MAX_ODE_STEPS = 100_000


def check_tolerance(name: str, value, dtype) -> float:
    """An ODE tolerance in [eps(dtype), MAX_RTOL]: below the dtype's resolution the solver
    cannot meet it (float32: 1.2e-7; --x64 for tighter)."""
    v = check_real(name, value)
    eps = float(jnp.finfo(dtype).eps)
    if not eps <= v <= MAX_RTOL:
        raise ActivegenError(
            f"{name} must lie in [{eps:.2g}, {MAX_RTOL:g}] (the ODE tolerance; the lower end "
            f"is {jnp.dtype(dtype).name}'s resolution"
            + ("; --x64 allows down to 2.2e-16" if jnp.dtype(dtype).itemsize < 8 else "")
            + f"), got {value!r}")
    return v


def _divergence(score, state, x, probes):
    """∇·S at x (N, d): the trace of ∇S, or with probes (K, N, d) the Hutchinson mean."""
    if probes is None:
        if hasattr(score, "derivs_batch"):
            h = score.derivs_batch(state, x.T).hessian  # (d, d, N)
            return jnp.trace(h, axis1=0, axis2=1)
        jac = jax.vmap(jax.jacfwd(lambda y: score.score(state, y)))(x)
        return jnp.trace(jac, axis1=1, axis2=2)

    def one(eps):
        _, jv = jax.vmap(lambda y, e: jax.jvp(lambda z: score.score(state, z), (y,), (e,)))(x, eps)
        return jnp.sum(jv * eps, -1)

    return jnp.mean(jax.vmap(one)(probes), 0)


def _score(score, state, x):
    if hasattr(score, "score_batch"):
        return score.score_batch(state, x.T).T
    return jax.vmap(lambda y: score.score(state, y))(x)


def log_likelihood(model, process, data, *, t_final: float = 6.0, rtol: float = 1e-6,
                   atol: float = 1e-6, probes: int | None = None, seed: int = 0,
                   batch: int = 4096, t_start: float = 0.0, log_scale: float = 0.0,
                   dtype=None) -> dict:
    """log p_0 of each row of data (N, d) under the diffusion model of `model` (a
    GaussianMixture or a score model) and `process` (module doc).

    probes: Hutchinson probes (default: exact divergence for d ≤ 8, else DEFAULT_PROBES);
    t_start: start time of the flow (a learned model's t_min; 0 for a mixture); log_scale:
    d·log(scale) subtracted (a standardised model's data units). Returns log_prob (N,),
    nll_per_dim (mean −log p / d, nats), ode_steps (largest solver step count), probes."""
    import diffrax

    from ..physics.scores import as_score_model
    from ..physics.targets import GaussianMixture

    data = np.asarray(data)
    if data.ndim != 2 or not np.all(np.isfinite(data)):
        raise ActivegenError(f"data must be a finite (N, d) array, got shape {data.shape}")
    if len(data) == 0:
        raise ActivegenError("data holds no points (N = 0): nothing to score")
    score = as_score_model(model, process)
    d = score.dim
    if data.shape[1] != d:
        raise ActivegenError(f"data has d = {data.shape[1]} but the model has d = {d}")
    t_final = check_positive("t_final", t_final)
    batch = check_count("batch", batch)
    if probes is None and d > EXACT_MAX_DIM:
        probes = DEFAULT_PROBES
    dtype = dtype or jnp.result_type(float)
    rtol = check_tolerance("rtol", rtol, dtype)
    atol = check_positive("atol", atol)  # absolute: its sensible size is the data's
    if probes is not None:
        probes = check_count("probes", probes)
        # the probes of a batch, and the Jacobian-vector products through the score (~4×)
        rows = min(batch, len(data))
        need = 4 * probes * rows * d * jnp.dtype(dtype).itemsize
        if need > memory_limit():
            raise ActivegenError(
                f"probes = {probes} would hold about {need / 1e9:.3g} GB for {rows} points of "
                f"d = {d}, above the memory limit {memory_limit() / 1e9:.3g} GB: use fewer "
                "probes")
    p = process

    if isinstance(model, GaussianMixture):
        def prior(x):
            st = score.prepare(t_final, dtype)
            return jax.vmap(lambda y: score.log_prob(st, y))(x)
    elif hasattr(score, "gaussian_marginal"):  # the data's Gaussian part diffused to T
        mean, q, var = (jnp.asarray(a, dtype) for a in score.gaussian_marginal(t_final))
        norm = -0.5 * float(np.sum(np.log(2.0 * math.pi * np.asarray(var))))

        def prior(x):
            z = (x - mean) @ q
            return norm - 0.5 * jnp.sum(z * z / var, -1)
    else:
        var_t = math.exp(-2.0 * p.beta * t_final) + float(p.variance(t_final))

        def prior(x):
            return (-0.5 * jnp.sum(x * x, -1) / var_t
                    - 0.5 * d * math.log(2.0 * math.pi * var_t))

    def field(t, y, args):
        x, _ = y
        st = score.prepare(t, dtype)
        de = p.d_eff(t)
        dx = -p.beta * x - de * _score(score, st, x)
        div = -p.beta * d - de * _divergence(score, st, x, args)
        return dx, div

    @jax.jit
    def solve(x0, eps):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field), diffrax.Tsit5(), t0=t_start, t1=t_final,
            dt0=1e-3, y0=(x0, jnp.zeros(x0.shape[0], dtype)), args=eps,
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=MAX_ODE_STEPS, throw=False,
        )
        xt, integral = sol.ys[0][-1], sol.ys[1][-1]
        ok = sol.result == diffrax.RESULTS.successful
        return prior(xt) + integral, sol.stats["num_steps"], ok

    key = seed_key(seed)
    out, steps = [], 0
    for j, i0 in enumerate(range(0, len(data), batch)):
        x0 = jnp.asarray(data[i0: i0 + batch], dtype)
        eps = None
        if probes is not None:
            eps = jax.random.rademacher(jax.random.fold_in(key, j), (probes,) + x0.shape,
                                        dtype)
        lp, st, ok = solve(x0, eps)
        if not bool(ok):
            raise ActivegenError(
                f"the probability-flow ODE did not reach T = {t_final:g} in "
                f"{MAX_ODE_STEPS} steps (rtol = {rtol:g}, atol = {atol:g}): loosen the "
                "tolerance (--rtol), or compute in float64 (--x64)")
        out.append(np.asarray(lp))
        steps = max(steps, int(st))
    lp = np.concatenate(out) - log_scale
    if not np.all(np.isfinite(lp)):
        bad = int(np.count_nonzero(~np.isfinite(lp)))
        raise ActivegenError(
            f"the log-likelihood of {bad} of {len(lp)} points is not finite: the model's "
            "score or its divergence overflowed along their flow (points far outside the "
            "model's range, or beyond float32: --x64); nothing was written")
    return dict(log_prob=lp, nll_per_dim=float(-np.mean(lp) / d), ode_steps=steps,
                probes=0 if probes is None else probes)


#: --data names of image sets: (split of datasets.digits, pixel bin width in the data's scale)
IMAGE_DATA = {"digits": ("held-out", 1 / 8), "digits:train": ("train", 1 / 8)}


def bits_per_dim(nll_per_dim: float, bin_width: float) -> float:
    """Discrete bits per dimension of pixels of `bin_width`: (NLL/d − log bin_width)/log 2."""
    return (nll_per_dim - math.log(bin_width)) / math.log(2.0)


def load_data(path, dim: int | None = None) -> np.ndarray:
    """An (N, d) array from .npy or .csv (comma separated; a first line with no number in it
    is a header: `datasets.read_csv`), checked against dim and N >= 1; `digits` (the
    held-out images) or `digits:train` (IMAGE_DATA)."""
    from pathlib import Path

    if str(path) in IMAGE_DATA:
        from ..learning.datasets import digits

        x = digits(IMAGE_DATA[str(path)][0])[0]
        if dim is not None and x.shape[1] != dim:
            raise ActivegenError(f"--data {path} has d = {x.shape[1]} (8x8 images) but the "
                                 f"model has d = {dim}")
        return x
    p = Path(path)
    if not p.is_file():
        raise ActivegenError(f"--data file not found: {p}")
    try:
        if p.suffix == ".npy":
            x = np.load(p, allow_pickle=False)
        elif p.suffix == ".csv":
            from ..learning.datasets import read_csv

            x = read_csv(p)
        else:
            raise ActivegenError(f"--data must be a .npy or .csv file, got {p.name}")
    except ActivegenError:
        raise
    except (OSError, ValueError) as exc:
        raise ActivegenError(f"--data {p} is not readable: {exc}") from None
    if x.dtype.kind not in "biuf":
        raise ActivegenError(f"--data {p} must hold numbers, got dtype {x.dtype}")
    x = np.asarray(x, np.float64)
    if x.size == 0:
        raise ActivegenError(f"--data {p} holds no points: nothing to score")
    if x.ndim == 1 and dim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ActivegenError(f"--data must be an N x d array, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ActivegenError(f"--data has d = {x.shape[1]} columns but the model has d = {dim}")
    return x


def entropy_rate_bound(target, process, *, t_final: float = 6.0, n: int = 20_000,
                       n_times: int = 400, seed: int = 0) -> dict:
    """The entropy-rate form of the NLL (docs/thermodynamics.md §5), in nats per dimension:

        H(p_0) = H(p_T) − ∫_0^T Ṡ_sys dt,   Ṡ_sys = dH/dt = D_eff(t) E_p|S|² − βd,

    (the x-marginal's Fokker–Planck equation with D_eff(t); H = −E log p), and NLL ≥ H(p_0)
    for every model (Gibbs). Monte-Carlo over exact draws of p(·, t) (n per time) on a grid
    dense near t = 0 (t = T u², n_times points, trapezoid). Returns bound (nats/dim),
    entropy_T, entropy_flow (∫ Ṡ_sys dt, nats), and the Monte-Carlo standard error of the bound."""
    from ..physics.scores import MixtureScore

    sc = MixtureScore(target, process)
    d = target.dim
    u = np.linspace(0.0, 1.0, n_times)
    ts = t_final * u * u
    key = jax.random.key(seed)

    @jax.jit
    def fisher(t, k):
        x = sc.sample_marginal(k, n, t)
        s = sc.score_batch(sc.prepare(t), x.T)
        return jnp.mean(jnp.sum(s * s, 0))

    rates = np.array([float(process.d_eff(t)) * float(fisher(t, jax.random.fold_in(key, i)))
                      - process.beta * d for i, t in enumerate(ts)])
    flow = float(np.trapezoid(rates, ts)) if hasattr(np, "trapezoid") else float(np.trapz(rates, ts))
    xt = sc.sample_marginal(jax.random.fold_in(key, n_times), n, t_final)
    st = sc.prepare(t_final)
    lp = np.asarray(jax.vmap(lambda y: sc.log_prob(st, y))(xt))
    h_t = float(-lp.mean())
    return dict(bound=(h_t - flow) / d, entropy_T=h_t, entropy_flow=flow,
                bound_se=float(lp.std() / np.sqrt(n)) / d)
