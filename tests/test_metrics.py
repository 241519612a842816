"""Metrics: W1 against library implementations, floors, histogram KL."""

import jax
import numpy as np
import ot
from scipy.stats import wasserstein_distance

from activegen import default_target_1d, default_target_2d, evaluate, hist_kl, log_slope, w1


def test_sliced_w1_equals_pot():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3000, 2)), rng.normal(size=(7001, 2)) * 1.2 + 0.1
    theta = np.random.default_rng(5).normal(size=(2, 64))
    theta /= np.linalg.norm(theta, axis=0)
    ref = ot.sliced_wasserstein_distance(x, y, projections=theta, p=1)
    assert abs(w1(x, y, seed=5) - ref) < 1e-12


def test_w1_1d_is_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=500), rng.normal(size=900) + 0.3
    assert w1(a[:, None], b[:, None]) == wasserstein_distance(a, b)


def test_hist_kl_small_for_exact_and_large_for_shifted():
    for tg in (default_target_1d(), default_target_2d()):
        x = np.asarray(tg.sample(jax.random.key(0), 50_000))
        exact = hist_kl(x, tg)
        # the histogram KL of an exact sample is ≈ (bins − 1)/(2N): well below 0.02 here
        assert exact < 0.02
        assert hist_kl(x + 0.5, tg) > 10 * exact


def test_evaluate_reports_floor_and_detects_bias():
    tg = default_target_2d()
    x = np.asarray(tg.sample(jax.random.key(3), 20_000))
    ev = evaluate(x * 1.1, tg, n_ref=50_000)
    assert ev["metrics"]["w1"] > 5 * ev["floor"]["w1"]
    assert ev["metrics"]["cov_error"] > 5 * ev["floor"]["cov_error"]
    assert set(ev["metrics"]) == {"w1", "w1_per_coordinate", "hist_kl", "mean_error", "cov_error"}


def test_log_slope():
    assert abs(log_slope([0.1, 0.2, 0.4], [1e-3, 4e-3, 1.6e-2]) - 2.0) < 1e-12
