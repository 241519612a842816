"""activegen: generative diffusion driven by active matter.

The public API (THEORY.md names):
    ActiveOU                       forward process and its exact moments
    GaussianMixture                targets, their diffused and joint laws
    MixtureScore, ScoreDerivs      scores and their derivatives (analytic / autodiff)
    FORCES, force_*, potential_*   F_0, F_F = −∇V_F, F_U = −∇V_U; force_projected (fox-sc)
    ActivitySchedule, ScheduledActiveOU, sample_scheduled   activity schedule τ(t)
    OUDriver                       active Ornstein–Uhlenbeck self-propulsion
    sample, METHODS                the reverse samplers
    evaluate, w1, hist_kl          accuracy metrics with finite-sample floors
    Protocol, export_protocol,     the effective potential tabulated on a grid (a lab
    load_protocol, replay          protocol) and its replay from the file alone
    train, load_model, LearnedScore  learned scores from data (DSM; `learned`, `datasets`)
"""

from . import _xla

_xla.configure()  # before any JAX computation: see _xla.py

from .drivers import OUDriver  # noqa: E402
from .errors import ActivegenError, FirstOrderWarning
from .forces import (
    FORCES,
    force_fox,
    force_naive,
    force_projected,
    force_ucn,
    potential_fox,
    potential_naive,
    potential_projected,
    potential_ucn,
)
from .metrics import evaluate, hist_kl, log_slope, moment_errors, w1, w1_floor
from .processes import ActiveOU
from .protocol import Protocol, export_protocol, load_protocol, replay, save_protocol
from .samplers import ACTIVE_METHODS, METHODS, Sampled, default_dt, sample, sample_field
from .schedule import ActivitySchedule, ScheduledActiveOU, sample_scheduled
from .scores import MixtureScore, ScoreDerivs, autodiff_derivs, mixture_derivs
from .targets import GaussianMixture, default_target_1d, default_target_2d

__all__ = [
    "ActiveOU", "ActivegenError", "FirstOrderWarning", "FORCES", "GaussianMixture",
    "METHODS", "MixtureScore", "OUDriver", "Sampled", "ScoreDerivs", "autodiff_derivs",
    "default_dt", "default_target_1d", "default_target_2d", "evaluate", "force_fox",
    "force_naive", "force_ucn", "hist_kl", "log_slope", "mixture_derivs", "moment_errors",
    "potential_fox", "potential_naive", "potential_ucn", "sample", "sample_field", "w1",
    "w1_floor", "ACTIVE_METHODS", "Protocol", "export_protocol", "load_protocol", "replay",
    "save_protocol", "LearnedScore", "load_model", "train", "force_projected",
    "potential_projected", "ActivitySchedule", "ScheduledActiveOU", "sample_scheduled",
]
__version__ = "0.1.0"


def __getattr__(name):
    """Learned-score names load lazily (equinox/optax only when used)."""
    if name in ("LearnedScore", "load_model", "train"):
        from . import learned

        return getattr(learned, name)
    raise AttributeError(f"module 'activegen' has no attribute {name!r}")
