"""Gaussian-mixture targets p_data = Σ_k w_k N(μ_k, Σ_k) and their diffused laws.

THEORY.md §1: under the forward process,
    p(x,t) = Σ_k w_k N(x; μ_k e^{−βt}, Σ_k e^{−2βt} + v(t) I),
and the joint law of (x, η) is the mixture with covariance [[Σ_k e^{−2βt} + vI, cI], [cI, (D_A/τ)I]].
Since η ~ N(0, (D_A/τ) I) for every component, the joint factorises as
    p(x,η,t) = N(η; 0, (D_A/τ)I) · Σ_k w_k N(x − (cτ/D_A) η; μ_k e^{−βt}, Σ_k e^{−2βt} + u(t) I),
u = v − c²τ/D_A: one mixture evaluation serves the marginal and the joint score.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ActivegenError, check_array, check_count
from .._linalg import matvec
from .processes import ActiveOU


class MixtureState(NamedTuple):
    """A mixture frozen at one time: log-weights (K,), means (K,d), precisions (K,d,d),
    log-determinants of the covariances (K,). Computed once per time step, outside the
    per-particle functions (see REFERENCE-FIGURES.md, 'A hazard')."""

    log_w: jax.Array
    means: jax.Array
    prec: jax.Array
    logdet: jax.Array


def mixture_log_prob(state: MixtureState, x):
    """log Σ_k w_k N(x; m_k, P_k⁻¹) for one point x of shape (d,)."""
    d = x.shape[-1]
    diff = x - state.means  # (K, d)
    quad = jnp.sum(diff * matvec(state.prec, diff), -1)
    comp = state.log_w - 0.5 * (state.logdet + quad + d * math.log(2 * math.pi))
    return jax.scipy.special.logsumexp(comp)


class GaussianMixture:
    """p_data = Σ_k w_k N(μ_k, Σ_k) in d dimensions (numpy parameters, validated)."""

    def __init__(self, weights, means, covs):
        w = check_array("weights", weights)
        mu = check_array("means", means)
        cov = check_array("covs", covs)
        if w.ndim != 1 or w.size == 0:
            raise ActivegenError("weights must be a non-empty list of numbers")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ActivegenError("weights must be finite and >= 0")
        if w.max() <= 0:
            raise ActivegenError("weights must have a positive sum (cannot normalise)")
        w = w / w.max()  # in [0, 1] first: [1e308, 1e308] sums to inf, not 2e308
        k = w.size
        if mu.ndim != 2 or mu.shape[0] != k or mu.shape[1] == 0:
            raise ActivegenError(
                f"means must be a list of {k} points (one per weight) of equal dimension"
            )
        d = mu.shape[1]
        if not np.all(np.isfinite(mu)):
            raise ActivegenError("means must be finite")
        if cov.shape != (k, d, d):
            raise ActivegenError(f"covs must have shape ({k}, {d}, {d}), got {cov.shape}")
        if not np.all(np.isfinite(cov)):
            raise ActivegenError("covs must be finite")
        if not np.allclose(cov, np.swapaxes(cov, 1, 2), rtol=1e-10, atol=1e-12):
            raise ActivegenError("covs must be symmetric")
        evals, evecs = np.linalg.eigh(cov)
        if np.any(evals <= 1e-12 * np.maximum(1.0, np.abs(evals).max())):
            raise ActivegenError("covs must be positive definite")
        self.weights = w / w.sum()
        self.means = mu
        self.covs = cov
        self._evals = evals
        self._evecs = evecs

    # -- constructors ------------------------------------------------------
    @classmethod
    def from_stds(cls, weights, means, stds):
        """Isotropic (scalar std per component) or diagonal (d stds per component)."""
        mu = check_array("means", means)
        if mu.ndim == 1:
            mu = mu[:, None]
        s = check_array("stds", stds)
        if mu.size == 0 or np.size(weights) == 0:
            raise ActivegenError("a target needs at least one component (weights, means "
                                 "and stds are empty)")
        if mu.ndim != 2:
            raise ActivegenError("means must be a list of points")
        k = mu.shape[0]
        d = mu.shape[1]
        if s.ndim == 1 and s.shape[0] == k:
            s = np.repeat(s[:, None], d, axis=1)
        if s.shape != (k, d):
            raise ActivegenError(
                f"stds must hold {k} numbers (one per component) or {k} lists of {d}"
            )
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ActivegenError("stds must be finite and > 0")
        covs = np.stack([np.diag(si**2) for si in s])
        return cls(weights, mu, covs)

    @classmethod
    def from_dict(cls, spec: dict):
        """{"weights", "means", "stds"} or {"weights", "means", "covs"}."""
        if not isinstance(spec, dict):
            raise ActivegenError("target must be a JSON object with weights, means, stds|covs")
        for key in ("weights", "means"):
            if key not in spec:
                raise ActivegenError(f"target is missing '{key}'")
        has_s, has_c = "stds" in spec, "covs" in spec
        if has_s == has_c:
            raise ActivegenError("target must give exactly one of 'stds' or 'covs'")
        weights = check_array("target weights", spec["weights"])
        means = check_array("target means", spec["means"])
        spread = check_array(f"target {'stds' if has_s else 'covs'}",
                             spec["stds" if has_s else "covs"])
        if weights.size == 0 or means.size == 0:
            raise ActivegenError("the target is empty: give at least one component "
                                 "(weights, means and stds|covs)")
        if means.ndim == 1:
            means = means[:, None]
        if has_s:
            return cls.from_stds(weights, means, spread)
        return cls(weights, means, spread)

    @classmethod
    def load(cls, path):
        """Read a target JSON file (see from_dict)."""
        p = Path(path)
        if p.is_dir():
            raise ActivegenError(f"target {p} is a directory, not a JSON file")
        if not p.exists():
            raise ActivegenError(f"target file not found: {p}")
        try:
            spec = json.loads(p.read_text())
        except OSError as exc:  # unreadable: permissions, a special file
            raise ActivegenError(f"target file {p} cannot be read: {exc.strerror or exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ActivegenError(f"target file {p} is not valid JSON: {exc}") from None
        return cls.from_dict(spec)

    def to_dict(self) -> dict:
        return {
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "covs": self.covs.tolist(),
        }

    # -- basic properties --------------------------------------------------
    @property
    def diagonal(self) -> bool:
        """Every covariance is diagonal (then so is every diffused one)."""
        off = self.covs - np.einsum("kii->ki", self.covs)[:, :, None] * np.eye(self.dim)
        return bool(np.all(off == 0))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.weights.size

    @property
    def min_std(self) -> float:
        """σ_min: the narrowest mode width (smallest std along any direction)."""
        return float(np.sqrt(self._evals.min()))

    def mean(self) -> np.ndarray:
        return self.weights @ self.means

    def cov(self) -> np.ndarray:
        m = self.mean()
        second = np.einsum("k,kij->ij", self.weights, self.covs) + np.einsum(
            "k,ki,kj->ij", self.weights, self.means, self.means
        )
        return second - np.outer(m, m)

    def extent(self, n_std: float = 4.0):
        """(lo, hi) per coordinate bounding every mode within n_std standard deviations."""
        sd = np.sqrt(np.diagonal(self.covs, axis1=1, axis2=2))
        return (self.means - n_std * sd).min(0), (self.means + n_std * sd).max(0)

    # -- time-diffused laws --------------------------------------------------
    def state(self, scale, var, dtype=None) -> MixtureState:
        """Mixture with means μ_k·scale and covariances Σ_k·scale² + var·I (traceable)."""
        dtype = dtype or jnp.result_type(float)
        evals = jnp.asarray(self._evals, dtype)
        evecs = jnp.asarray(self._evecs, dtype)
        lam = evals * scale**2 + var  # (K, d)
        prec = jnp.einsum("kij,kj,klj->kil", evecs, 1.0 / lam, evecs)
        return MixtureState(
            log_w=jnp.log(jnp.asarray(self.weights, dtype)),
            means=jnp.asarray(self.means, dtype) * scale,
            prec=prec,
            logdet=jnp.sum(jnp.log(lam), axis=-1),
        )

    def marginal_state(self, process: ActiveOU, t, dtype=None) -> MixtureState:
        """p(x,t) = Σ w_k N(μ_k e^{−βt}, Σ_k e^{−2βt} + v(t) I)."""
        return self.state(process.mean_scale(t), process.variance(t), dtype)

    def conditional_state(self, process: ActiveOU, t, dtype=None) -> MixtureState:
        """Law of x − (cτ/D_A)η given η: the mixture with variance u(t) (see module doc)."""
        return self.state(process.mean_scale(t), process.conditional_variance(t), dtype)

    def log_prob(self, x, process: ActiveOU | None = None, t=0.0):
        """log p(x,t) for points x (..., d); t = 0 (or no process) is the target itself."""
        st = self.state(1.0, 0.0) if process is None else self.marginal_state(process, t)
        x = jnp.asarray(x)
        f = lambda xi: mixture_log_prob(st, xi)  # noqa: E731
        return jax.vmap(f)(x.reshape(-1, self.dim)).reshape(x.shape[:-1])

    def joint_log_prob(self, x, eta, process: ActiveOU, t):
        """log p(x,η,t) = log N(η; 0, D_A/τ) + log p_cond(x − (cτ/D_A)η, t)."""
        st = self.conditional_state(process, t)
        b = process.eta_variance
        k = process.cross_cov(t) / b
        x = jnp.asarray(x).reshape(-1, self.dim)
        eta = jnp.asarray(eta).reshape(-1, self.dim)
        log_eta = -0.5 * jnp.sum(eta**2, -1) / b - 0.5 * self.dim * jnp.log(2 * jnp.pi * b)
        return log_eta + jax.vmap(lambda xi: mixture_log_prob(st, xi))(x - k * eta)

    # -- sampling -----------------------------------------------------------
    def _sample_scaled(self, key, n: int, scale, var, dtype):
        kc, kz = jax.random.split(key)
        comp = jax.random.choice(
            kc, self.n_components, (n,), p=jnp.asarray(self.weights, dtype)
        )
        evecs = jnp.asarray(self._evecs, dtype)
        sd = jnp.sqrt(jnp.asarray(self._evals, dtype) * scale**2 + var)  # (K, d)
        z = jax.random.normal(kz, (n, self.dim), dtype)
        noise = jnp.einsum("nij,nj->ni", evecs[comp], sd[comp] * z)
        return jnp.asarray(self.means, dtype)[comp] * scale + noise

    def sample(self, key, n: int, dtype=None):
        """n exact samples of p_data."""
        check_count("n", n)
        return self._sample_scaled(key, n, 1.0, 0.0, dtype or jnp.result_type(float))

    def sample_marginal(self, key, n: int, process: ActiveOU, t, dtype=None):
        """n samples of p(x,t)."""
        check_count("n", n)
        dtype = dtype or jnp.result_type(float)
        return self._sample_scaled(
            key, n, process.mean_scale(t), process.variance(t), dtype
        )

    def sample_joint(self, key, n: int, process: ActiveOU, t, dtype=None):
        """n samples (x, η) of the joint law p(x,η,t) (needs τ > 0)."""
        check_count("n", n)
        dtype = dtype or jnp.result_type(float)
        k1, k2 = jax.random.split(key)
        b = process.eta_variance
        eta = jnp.sqrt(b) * jax.random.normal(k2, (n, self.dim), dtype)
        x = self._sample_scaled(
            k1, n, process.mean_scale(t), process.conditional_variance(t), dtype
        )
        return x + process.cross_cov(t) / b * eta, eta


def default_target_1d() -> GaussianMixture:
    """The broad bimodal 1D mixture of REFERENCE-FIGURES.md: w=(0.3,0.7), μ=(−2,1.5), σ=(0.8,1.0)."""
    return GaussianMixture.from_stds([0.3, 0.7], [[-2.0], [1.5]], [0.8, 1.0])


def default_target_2d() -> GaussianMixture:
    """A 2D mixture of 4 modes (one anisotropic) used by the demo."""
    return GaussianMixture(
        [0.25, 0.25, 0.3, 0.2],
        [[-2.0, -1.5], [2.0, -1.5], [0.0, 2.0], [2.5, 2.5]],
        [
            np.diag([0.8, 0.8]) ** 2,
            [[0.7, 0.3], [0.3, 0.6]],
            np.diag([1.0, 0.7]) ** 2,
            np.diag([0.7, 0.7]) ** 2,
        ],
    )
