"""Gaussian-mixture targets: diffused and joint laws, sampling, validation."""

import jax
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from activegen import ActiveOU, ActivegenError, GaussianMixture, default_target_2d


def test_joint_log_prob_matches_full_gaussian():
    """The factorised joint density equals the mixture of 2d-dim Gaussians of THEORY.md §1."""
    with jax.enable_x64(True):
        tg = default_target_2d()
        p = ActiveOU(1.0, 0.2, 1.0, 0.3)
        t = 0.4
        e, v, c, b = np.exp(-t), float(p.variance(t)), float(p.cross_cov(t)), p.eta_variance
        rng = np.random.default_rng(0)
        x, eta = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
        z = np.concatenate([x, eta], 1)
        dens = 0
        for w, mu, cov in zip(tg.weights, tg.means, tg.covs):
            big = np.block([[cov * e * e + v * np.eye(2), c * np.eye(2)],
                            [c * np.eye(2), b * np.eye(2)]])
            dens = dens + w * multivariate_normal(np.r_[mu * e, 0, 0], big).pdf(z)
        ours = np.asarray(tg.joint_log_prob(x, eta, p, t))
        np.testing.assert_allclose(ours, np.log(dens), rtol=1e-10)


def test_marginal_log_prob_matches_scipy():
    with jax.enable_x64(True):
        tg = default_target_2d()
        p = ActiveOU(1.0, 0.0, 1.0, 0.1)
        t = 0.7
        x = np.random.default_rng(1).normal(size=(6, 2))
        e, v = np.exp(-t), float(p.variance(t))
        dens = sum(w * multivariate_normal(mu * e, cov * e * e + v * np.eye(2)).pdf(x)
                   for w, mu, cov in zip(tg.weights, tg.means, tg.covs))
        np.testing.assert_allclose(np.asarray(tg.log_prob(x, p, t)), np.log(dens), rtol=1e-10)


def test_samples_have_exact_moments():
    tg = default_target_2d()
    p = ActiveOU(1.0, 0.0, 1.0, 0.2)
    n = 200_000
    x = np.asarray(tg.sample(jax.random.key(0), n), np.float64)
    sd = np.sqrt(np.diag(tg.cov()))
    assert np.all(np.abs(x.mean(0) - tg.mean()) < 5 * sd / np.sqrt(n))
    xj, eta = (np.asarray(a, np.float64) for a in tg.sample_joint(jax.random.key(1), n, p, 0.5))
    c = float(p.cross_cov(0.5))
    emp = np.mean((xj - xj.mean(0)) * eta, 0)
    tol = 5 * np.sqrt((np.diag(np.cov(xj.T)) * p.eta_variance + c * c) / n)
    assert np.all(np.abs(emp - c) < tol)


@pytest.mark.parametrize(
    "spec,msg",
    [
        ({"weights": [-0.5, 1.5], "means": [[0], [1]], "stds": [1, 1]}, "weights"),
        ({"weights": [0, 0], "means": [[0], [1]], "stds": [1, 1]}, "weights"),
        ({"weights": [0.5, 0.5], "means": [[0], [1, 2]], "stds": [1, 1]}, "malformed"),
        ({"weights": [0.5, 0.5], "means": [[0, 0], [1, 2]], "stds": [1, 1, 1]}, "stds"),
        ({"weights": [1.0], "means": [[0, 0]], "covs": [[[1, 2], [2, 1]]]}, "positive definite"),
        ({"weights": [1.0], "means": [[0, 0]], "covs": [[[1, 0], [0, 1]], [[1, 0], [0, 1]]]}, "covs"),
        ({"weights": [1.0], "means": [[float("nan")]], "stds": [1]}, "means"),
        ({"weights": [1.0], "means": [[0.0]], "stds": [0.0]}, "stds"),
        ({"weights": [1.0], "means": [[0.0]]}, "stds"),
        ({"means": [[0.0]], "stds": [1]}, "weights"),
    ],
)
def test_bad_targets_are_rejected(spec, msg):
    with pytest.raises(ActivegenError, match=msg):
        GaussianMixture.from_dict(spec)


def test_weights_are_normalised():
    tg = GaussianMixture.from_dict({"weights": [1, 3], "means": [[0], [1]], "stds": [1, 2]})
    np.testing.assert_allclose(tg.weights, [0.25, 0.75])
