"""A trained score model behind the score-model interface: `LearnedScore`, `load_model`.

Joint score (for method `exact`): the joint conditional of (x_t, η_t) | x_0 is Gaussian with
means (m x_0, 0) and per-coordinate covariance [[v, c], [c, D_A/τ]]. With k = cτ/D_A,
z = x − kη is independent of η, z | x_0 ~ N(m x_0, u I), u = v − c²τ/D_A, so
log p(x, η, t) = log N(η; 0, D_A/τ) + log p_z(x − kη, t) and

    ∇_x log p = S_z(x − kη),   ∇_η log p = −ητ/D_A − k S_z(x − kη)

(`training`: the joint model learns S_z).

Coordinates: the model, the process and the samplers live in the data's own coordinates,
or with standardize=True in z = (x − mean)/scale (`datasets.Standardizer`);
`LearnedScore.to_data` maps samples back (the CLI and the gallery do this).
`sample_marginal` starts the samplers from m(T)·(draws of the stored training set) +
√v(T)·noise: the exact marginal of the empirical data law.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ActivegenError
from ..physics.processes import ActiveOU
from ..physics.scores import ScoreDerivs, autodiff_derivs
from .checkpoint import load_state, read_config
from .datasets import RANGE_MARGIN, Standardizer, out_of_range
from .derivatives import (
    AUTO_PROBES,
    DIAG_PROBES,
    EXACT_HESSIAN_MAX_D,
    TILE,
    TILE_CHANNELS,
    energy_derivs_batch,
    energy_batch,
    psi_derivs_batch,
    n_channels,
    particle_map,
    point_key,
    probe_derivs,
    tiled,
    vector_derivs,
    vector_derivs_batch,
)
from .network import (
    TimeState,
    ScoreNet,
    conditioning,
    energy_at,
    has_psi,
    n_params,
    process_of,
    score_at,
    time_state,
    vector_score_at,
)


#: the Ψ route above EXACT_HESSIAN_MAX_D estimates ‖∇S‖_F² for the validity diagnostic (an
#: ensemble mean) with one probe at every PSI_PROBE_EVERY-th particle: 1/16 of a
#: Hessian-vector product per particle
PSI_PROBE_EVERY = 16


class LearnedScore:
    """A trained model behind the `scores` interface (and, for marginal="joint", the joint
    interface of method exact). Its coordinates are the data's own, unless it was trained
    with standardize=True (then z = (x − mean)/scale; `to_data`/`from_data` map between the
    two, the identity otherwise).

    Routes to ∇(∇·S) (`route`, recorded in a run's info): "psi" for models with the Ψ head
    (THEORY.md §5: S, ∇Ψ and (∇S)S, no third derivative, any d; the default above
    d = EXACT_HESSIAN_MAX_D, route="psi" to force it), "taylor" (the exact batched pass
    carrying ∇Δ through the network, d ≤ EXACT_HESSIAN_MAX_D) and "probes" (Hutchinson
    estimates, any d); route="derivatives" refuses the Ψ route. hutchinson = K > 0 replaces the exact ∇(∇·S) by
    the K-probe estimator and ∇S by probe products (`probe_derivs`), probes drawn from a key
    derived from (seed, t, x). Order 3 (`forces.Force.order` of ucn, which needs the full
    ∇S) always takes the third-derivative routes.
    """

    def __init__(self, net: ScoreNet, config: dict, data, path=None, hutchinson: int | None = None,
                 route: str | None = None):
        self.net = net
        self.config = config
        self.data = jnp.asarray(data, jnp.float32)
        self.path = path
        self.process = process_of(config)
        self.standardizer = Standardizer.from_dict(config["standardizer"])
        # models saved before the option existed always standardised the physics
        self.standardized = bool(config.get("standardized", True))
        self.hutchinson = int(config.get("hutchinson", 0) if hutchinson is None else hutchinson)
        self._score_at = score_at(config["kind"])
        self._cond = conditioning(config)
        self._scans = {}  # end_game_scan's results, per (n, n_times)
        self.tile = "auto"  # or an explicit tile size, None for untiled (`_tile`)
        self._score_map = particle_map(self._score_inner)
        if route not in (None, "psi", "derivatives"):
            raise ActivegenError(f"route must be 'psi' or 'derivatives', got {route!r}")
        if route == "psi" and not has_psi(config):
            raise ActivegenError("route 'psi' needs a model trained with the Psi head "
                                 "(retrain with the current activegen)")
        # the Ψ route by default only where the exact pass does not reach (d > 8: the
        # alternative is probes); at d ≤ 8 the exact third-derivative pass measured more
        # accurate at the same cost (docs/learned.md, 'The Ψ route')
        self._psi = has_psi(config) and hutchinson in (None, 0) and (
            route == "psi" or (route is None and int(config["data"]["d"]) > EXACT_HESSIAN_MAX_D))
        self._derivs_map = {o: particle_map(lambda st, xs, o=o: self._derivs_inner(st, xs, o))
                            for o in (0, 1, 2, 3)}

    #: `derivs_batch` takes `order` (the samplers ask only for what a method needs)
    derivs_orders = True

    # -- interface -----------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.config["data"]["d"])

    @property
    def kind(self) -> str:
        return self.config["kind"]

    @property
    def route(self) -> str:
        """How ∇(∇·S) is computed for the forces of order 2: "psi", "taylor" or "probes"."""
        if self._psi:
            return "psi"
        return "probes" if self.uses_probes() else "taylor"

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
        return time_state(self.net, self.config, self.process, t, key, self._cond)

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
        if order not in (0, 1, 2, 3):
            raise ActivegenError(f"order must be 0, 1, 2 or 3, got {order}")
        return self._derivs_map[order](state, xs)

    def _score_inner(self, state: TimeState, xs):
        if self.kind == "energy":
            return tiled(lambda x: -jax.grad(lambda y: jnp.sum(energy_batch(state, y)))(x), xs,
                         self._tile(1))
        return tiled(lambda y: vector_derivs_batch(state, y, 0).score, xs, self._tile(1))

    def _derivs_inner(self, state: TimeState, xs, order: int) -> ScoreDerivs:
        d = xs.shape[0]
        if order in (2, 3) and self._psi and (order == 2 or d <= EXACT_HESSIAN_MAX_D):
            z = None
            if d > EXACT_HESSIAN_MAX_D:
                m = -(-xs.shape[1] // PSI_PROBE_EVERY)
                z = jax.random.rademacher(point_key(state.key, xs[:, 0]), (d, m), dtype=xs.dtype)
            return psi_derivs_batch(state, xs, z)
        order = min(order, 2)
        exact = energy_derivs_batch if self.kind == "energy" else vector_derivs_batch
        if order == 0 or not self.uses_probes(d):
            return tiled(lambda y: exact(state, y, order), xs,
                         self._tile(n_channels(d, order if self.kind == "energy" else order - 1)))
        k = self.probes(order)
        key = point_key(state.key, xs[:, 0])
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

    def end_game_scan(self, n: int = 256, n_times: int = 25):
        """(times, scale): a log grid over [t_min, t_max] of training and, at each time, the
        ensemble mean of τ‖βI + D̄∇S‖_F/√d (τ times the rms eigenvalue of ∇F_0) over n draws of
        the model's own marginal p(x, t) (fixed key). Computed once per model and size."""
        memo = self._scans
        if (n, n_times) in memo:
            return memo[n, n_times]
        from ..physics.forces import force_jacobian_norm

        p = self.process
        times = np.geomspace(self.config["t_min"], self.config["t_max"], n_times)
        if p.tau == 0:
            memo[n, n_times] = (times, np.zeros_like(times))
            return memo[n, n_times]

        def scale(t, key):
            k1, k2 = jax.random.split(key)
            x0 = self.data[jax.random.randint(k1, (n,), 0, self.data.shape[0])].T
            xs = p.mean_scale(t) * x0 + jnp.sqrt(p.variance(t)) * jax.random.normal(k2, x0.shape)
            dv = self._derivs_map[1](self.prepare(t), xs)
            return p.tau * jnp.mean(force_jacobian_norm(p, t, dv)) / math.sqrt(self.dim)

        key = jax.random.key(int(self.config["seed"]) + 7)
        vals = np.asarray(jax.jit(lambda ts: jax.lax.map(lambda t: scale(t, key), ts))(
            jnp.asarray(times, jnp.float32)))
        memo[n, n_times] = (times, vals)
        return memo[n, n_times]

    def end_game_t_min(self, threshold: float, n: int = 256, n_times: int = 25) -> float:
        """The default end-game time of a first-order method on this model (docs/learned.md,
        'Near t = 0'): the smallest time of `end_game_scan` above which the scale stays ≤
        threshold. Data on a thin manifold (images) give ∇S ~ 1/v(t) in the degenerate
        directions, and the first-order force fails below this t; a mixture of full-rank
        modes gives the grid's first point."""
        times, vals = self.end_game_scan(n, n_times)
        bad = np.flatnonzero(~(vals <= threshold))
        if bad.size == 0:
            return float(times[0])
        if bad[-1] == times.size - 1:
            return float(times[-1])
        return float(times[bad[-1] + 1])

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


def load_model(path, hutchinson: int | None = None, route: str | None = None) -> LearnedScore:
    """The LearnedScore stored in MODEL_DIR (see `save_checkpoint`)."""
    cfg = read_config(path)
    net, _, data = load_state(path, cfg)
    return LearnedScore(net, cfg, data, path=str(path), hutchinson=hutchinson, route=route)


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
