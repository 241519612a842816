"""The interfaces the samplers rely on, as `typing.Protocol`s (structural: any object with
these members works; nothing to inherit).

Layout: inside the samplers an ensemble is stored particles last, x of shape (d, N); the
per-point members take x of shape (d,), the optional `*_batch` members a whole (d, N)
ensemble (the samplers use them where present, else vmap the per-point member).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ScoreModel(Protocol):
    """A score model of the diffused marginal p(x, t) of the forward process.

    dim: d. prepare(t, dtype) -> state: whatever depends on t alone (computed once per
    step). score(state, x) -> S = ∇ log p (d,). derivs(state, x) -> `scores.ScoreDerivs`
    (log p, S, ∇S, ∇(∇·S)): what the effective potentials need. sample_marginal(key, n, t,
    dtype) -> (n, d) draws of p(·, t) (the samplers start from t = T).

    Optional: score_batch / derivs_batch (state, xs (d, N)) for a whole ensemble;
    check_process(process) to refuse a process the model was not made for;
    prepare_joint, joint_score, sample_joint for method `exact` (the joint law of (x, η)).
    """

    dim: int

    def prepare(self, t, dtype=None) -> Any: ...

    def score(self, state, x): ...

    def derivs(self, state, x): ...

    def sample_marginal(self, key, n: int, t, dtype=None): ...


@runtime_checkable
class Process(Protocol):
    """The forward process, as the samplers and the score models use it.

    beta, d_thermal, d_active, tau: β, D_T, D_A, τ. mean_scale(t) = e^{−βt}; variance(t)
    = v(t) and cross_cov(t) = c(t) of (x_i, η_i) given x(0); d_eff(t) = D_T + c(t) (the
    x-marginal obeys ∂_t p = β∇·(xp) + D_eff Δp exactly); d_bar(t) = D_T + D_A + D_eff(t).
    `processes.ActiveOU` and `activity_schedule.ScheduledActiveOU` implement it."""

    beta: float
    d_thermal: float
    d_active: float
    tau: float

    def mean_scale(self, t): ...

    def variance(self, t): ...

    def cross_cov(self, t): ...

    def d_eff(self, t): ...

    def d_bar(self, t): ...


@runtime_checkable
class Driver(Protocol):
    """A self-propulsion η with effective persistence time τ and strength D_A
    (⟨η_i(t)η_j(t')⟩ = δ_ij (D_A/τ) e^{−|t−t'|/τ}).

    init(key, shape, dtype) -> η from the stationary law, shape (d, N); step(η, h, key) ->
    η after a time h (exact where possible); kappa: the fourth-order coefficient of its
    x-marginal equation (0 for Gaussian noise; `forces.force_driver_correction`)."""

    tau: float
    d_active: float
    kappa: float

    def init(self, key, shape, dtype): ...

    def step(self, eta, h: float, key): ...
