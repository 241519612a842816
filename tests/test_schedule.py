"""The activity-schedule sampler (activegen.schedule, docs/schedule.md).

Deterministic checks are tight (the tables are exact for τ piecewise constant on a grid
of τ/50). Statistical checks use fixed seeds; each tolerance is 5 standard errors of the
estimator (Gaussian moments: sd(Var) = Var·√(2/N), sd(Cov(a,b)) = √((Var a Var b + Cov²)/N))
plus the stated discretisation error, or the W1 finite-sample floor (mean + 4 sd over 8
exact draws, as in test_samplers.py).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from activegen import ActivegenError, ActiveOU, sample, w1, w1_floor
from activegen.studies.validity_map import validity_target
from activegen.physics.activity_schedule import (
    ActivitySchedule,
    ScheduledActiveOU,
    reverse_memory,
)
from activegen.samplers.schedule import sample_scheduled, step_grid

SCHED = ActivitySchedule(0.2, 0.02, 0.3)


# -- the schedule ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, name",
    [((0.1, 0.2, 0.3), "tau_min"), ((0.1, 0.0, 0.3), "tau_min"), ((0.1, 0.01, 0.0), "t_ramp"),
     ((-0.1, 0.01, 1.0), "tau"), ((float("nan"), 0.01, 1.0), "tau"), ((0.1, 0.01, True), "t_ramp")],
)
def test_schedule_validation_names_the_parameter(args, name):
    with pytest.raises(ActivegenError, match=rf"^{name} must"):
        ActivitySchedule(*args)


def test_schedule_shape():
    assert SCHED.tau_at(0.0) == pytest.approx(0.02)
    assert SCHED.tau_at(50.0) == pytest.approx(0.2)
    assert SCHED.tau_at(0.3) == pytest.approx(0.02 + 0.18 * (1 - np.exp(-1)))
    assert float(SCHED.tau_at(jnp.float32(0.3))) == pytest.approx(SCHED.tau_at(0.3), rel=1e-6)
    c = ActivitySchedule.constant(0.1)
    assert c.is_constant and np.allclose(c.tau_at(np.linspace(0, 5, 7)), 0.1)


def test_auto_schedule():
    a = ActivitySchedule.auto(0.1, 0.4, 1.0, eps=0.1)
    assert a.tau_min == pytest.approx(0.008) and a.t_ramp == pytest.approx(0.92)
    # τ already below eps σ²/(2D): constant
    assert ActivitySchedule.auto(0.025, 0.8, 1.0).is_constant
    with pytest.raises(ActivegenError, match="^eps must"):
        ActivitySchedule.auto(0.1, 0.4, 1.0, eps=0.0)


# -- forward moments ------------------------------------------------------------------
@pytest.mark.parametrize("d_thermal", [0.0, 0.3])
def test_constant_schedule_reproduces_active_ou(d_thermal):
    p = ActiveOU(1.3, d_thermal, 0.7, 0.1)
    q = ScheduledActiveOU(1.3, d_thermal, 0.7, ActivitySchedule.constant(0.1), t_max=6.0)
    t = np.linspace(0.0, 6.0, 301)
    np.testing.assert_allclose(q.variance(t), p.variance(t), atol=1e-6)
    np.testing.assert_allclose(q.cross_cov(t), p.cross_cov(t), atol=1e-6)
    np.testing.assert_allclose(q.eta_variance(t), p.eta_variance, rtol=1e-12)
    np.testing.assert_allclose(q.d_bar(t), p.d_bar(t), atol=1e-6)
    # traced times (float32 tables) agree too
    np.testing.assert_allclose(q.variance(jnp.asarray(t, jnp.float32)), p.variance(t), atol=1e-5)


def test_table_matches_continuous_lyapunov():
    """Exact piecewise-constant-τ propagation against solve_ivp with the continuous τ(t)."""
    q = ScheduledActiveOU(1.0, 0.2, 1.0, SCHED, t_max=4.0)
    for t in [0.01, 0.05, 0.2, 0.7, 2.0, 4.0]:
        S = q.lyapunov_covariance(t)
        got = [q.variance(t), q.cross_cov(t), q.eta_variance(t)]
        np.testing.assert_allclose(got, [S[0, 0], S[0, 1], S[1, 1]], rtol=2e-4)


def test_moments_against_forward_simulation():
    """Brute force: N = 10⁵ particles from x(0) = 0 under the non-constant schedule."""
    q = ScheduledActiveOU(1.0, 0.0, 1.0, SCHED, t_max=1.0)
    n, t, dt = 100_000, 0.4, 2e-4  # dt = τ_min/100: Euler bias O(dt/τ) ≈ 0.5 % in c
    x, eta = q.simulate(jax.random.key(3), jnp.zeros((n, 1)), t, dt)
    x, eta = np.asarray(x[:, 0], np.float64), np.asarray(eta[:, 0], np.float64)
    v, c, w = q.variance(t), q.cross_cov(t), q.eta_variance(t)
    se = np.array([v * np.sqrt(2 / n), np.sqrt((v * w + c * c) / n), w * np.sqrt(2 / n)])
    got = np.array([x.var(), np.mean(x * eta), eta.var()])
    want = np.array([v, c, w])
    assert np.all(np.abs(got - want) < 5 * se + 0.01 * np.abs(want)), (got, want, se)
    # the schedule matters: ActiveOU at the top τ is far off
    p = ActiveOU(1.0, 0.0, 1.0, 0.2)
    assert abs(float(p.cross_cov(t)) - c) > 20 * se[1]


# -- reverse memory -------------------------------------------------------------------
def test_reverse_memory_constant_tau_closed_forms():
    tau, da = 0.1, 0.7
    s = np.linspace(0.0, 2.0, 801)
    w, d1, d2 = reverse_memory(da, np.full(800, tau), s)
    np.testing.assert_allclose(w, da / tau, rtol=1e-12)
    np.testing.assert_allclose(d1, da * -np.expm1(-s / tau), atol=1e-12)
    np.testing.assert_allclose(d2, tau * da * -np.expm1(-s / tau) - da * s * np.exp(-s / tau),
                               atol=1e-12)


def test_reverse_memory_against_simulated_noise():
    """D_1(s) = E[η(s)∫_0^s η], D_2(s) = E[η(s)∫_0^s η(s')(s − s')ds'] for the reverse
    noise of a falling τ_r (exact OU steps, trapezoid integrals)."""
    t_final, k = 1.0, 500
    s = np.linspace(0.0, t_final, k + 1)
    h = s[1] - s[0]
    tau = SCHED.tau_at(t_final - (s[:-1] + 0.5 * h))
    w0 = 1.0 / SCHED.tau_at(t_final)
    _, d1, d2 = reverse_memory(1.0, tau, s, w0)
    n = 200_000
    rng = np.random.default_rng(0)
    eta = np.sqrt(w0) * rng.standard_normal(n)
    i1 = np.zeros(n)  # ∫ η
    i2 = np.zeros(n)  # ∫ η(s')(s − s') = ∫_0^s (∫_0^u η) du
    for j in range(k):
        e = np.exp(-h / tau[j])
        new = eta * e + np.sqrt((1 - e * e) / tau[j]) * rng.standard_normal(n)
        i1_new = i1 + 0.5 * h * (eta + new)
        i2 += 0.5 * h * (i1 + i1_new)
        i1, eta = i1_new, new
    got1, got2 = np.mean(eta * i1), np.mean(eta * i2)
    se1 = np.sqrt((np.var(eta) * np.var(i1) + got1**2) / n)
    se2 = np.sqrt((np.var(eta) * np.var(i2) + got2**2) / n)
    assert abs(got1 - d1[-1]) < 5 * se1 + 0.01 * d1[-1], (got1, d1[-1], se1)
    assert abs(got2 - d2[-1]) < 5 * se2 + 0.01 * d2[-1], (got2, d2[-1], se2)
    # and it is far from fox's stationary τD_A at the top of the schedule
    assert abs(d2[-1] - SCHED.tau) > 10 * se2


# -- the sampler ----------------------------------------------------------------------
def test_step_grids():
    s = step_grid(SCHED, 3.0, 0.001, "uniform")
    assert len(s) == 3001 and s[-1] == 3.0
    a = step_grid(SCHED, 3.0, 0.002, "adaptive")
    h = np.diff(a)
    local = np.minimum(0.002, SCHED.tau_at(3.0 - a[:-1]) / 20)
    assert a[0] == 0.0 and a[-1] == 3.0 and np.all(h > 0)
    assert np.all(h <= 1.05 * local)
    assert len(h) < 0.6 * 3.0 / (SCHED.tau_min / 20)  # about half the uniform steps here


def test_sampler_validation():
    tg = validity_target(0.4)
    p = ActiveOU(1.0, 0.0, 1.0, 0.1)
    q = ScheduledActiveOU.from_process(p, 0.01, 1.0, t_max=2.0)
    with pytest.raises(ActivegenError, match="t_final must be <="):
        sample_scheduled(tg, q, 10, seed=0, t_final=3.0)
    with pytest.raises(ActivegenError, match="tau_min and t_ramp"):
        sample_scheduled(tg, q, 10, seed=0, t_final=2.0, tau_min=0.01)
    with pytest.raises(ActivegenError, match="grid must be"):
        sample_scheduled(tg, p, 10, seed=0, grid="coarse")
    with pytest.raises(ActivegenError, match="process must be"):
        sample_scheduled(tg, "ou", 10, seed=0)
    with pytest.raises(ActivegenError, match="tau must be > 0"):
        sample_scheduled(tg, p.passive(), 10, seed=0)
    with pytest.raises(ActivegenError, match="tau_min must be in"):
        sample_scheduled(tg, p, 10, seed=0, tau_min=0.5)


def test_trajectory_times_are_reverse_times():
    tg = validity_target(0.6)
    p = ActiveOU(1.0, 0.0, 1.0, 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = sample_scheduled(tg, p, 64, seed=0, t_final=1.0, grid="adaptive", save_every=50)
    assert r.trajectory.shape[1:] == (64, 1)
    assert r.times[0] == 0.0 and len(r.times) == r.trajectory.shape[0]
    assert np.all(np.diff(r.times) > 0) and r.times[-1] <= 1.0
    assert len(r.times) == r.info["n_steps"] // 50 + 1
    assert r.info["dt_min"] < r.info["dt_max"] <= 0.002


@pytest.fixture(scope="module")
def reference():
    tg = validity_target(0.4)
    return tg, np.asarray(tg.sample(jax.random.key(11), 400_000))


def test_scheduled_beats_fox_on_the_reference_case(reference):
    """σ_min = 0.4, τ = 0.1 (τD/σ² = 0.6: fox fails, W1 ≈ 0.13 at 10⁵): the automatic
    schedule (τ_min = 0.008, t_r = 0.92) is at the finite-sample floor at 2·10⁴."""
    tg, ref = reference
    n = 20_000
    p = ActiveOU(1.0, 0.0, 1.0, 0.1)
    # fox-schedule keeps the first-order step: its cost is compared with fox's at that step
    fox = sample(tg, "fox", p, n, seed=1, t_final=3.0, warn=False, scheme="euler")
    sch = sample_scheduled(tg, p, n, seed=1, t_final=3.0, grid="adaptive")
    mean, sd = w1_floor(tg, n, ref)
    err_fox, err = w1(fox.samples, ref), w1(sch.samples, ref)
    assert err < mean + 4 * sd, (err, mean, sd)
    assert err < err_fox / 4, (err, err_fox)
    assert sch.info["tau_grad_force"] < 0.3 < fox.info["tau_grad_force"]
    assert sch.info["n_steps"] < 1.3 * fox.info["n_steps"]


def test_constant_schedule_matches_fox(reference):
    """τ_min = τ: the same force as fox up to the start transient of D_1, D_2 (fox uses
    the stationary D_A, τD_A from s = 0): same error within the floor's spread."""
    tg, ref = reference
    n = 20_000
    p = ActiveOU(1.0, 0.0, 1.0, 0.05)
    fox = sample(tg, "fox", p, n, seed=2, t_final=3.0, warn=False, scheme="euler")  # same step
    sch = sample_scheduled(tg, p, n, seed=2, t_final=3.0, tau_min=0.05, warn=False)
    assert sch.info["n_steps"] == fox.info["n_steps"]
    _, sd = w1_floor(tg, n, ref)
    assert abs(w1(sch.samples, ref) - w1(fox.samples, ref)) < 4 * sd
