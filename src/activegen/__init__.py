"""activegen: generative diffusion driven by active matter.

The public API (docs/theory.md names; docs/architecture.md for the layers and sub-packages):
    ActiveOU                       forward process and its exact moments
    GaussianMixture                targets, their diffused and joint laws
    MixtureScore, ScoreDerivs      scores and their derivatives (analytic / autodiff)
    ScoreModel, Process, Driver    the interfaces a user's own score model, process or
                                   self-propulsion provides (`physics.interfaces`)
    FORCES, force_*, potential_*   F_0, F_F = −∇V_F, F_U = −∇V_U; force_projected (fox-sc)
    OUDriver, RunAndTumbleDriver, ActiveBrownianDriver, DRIVERS, register_driver
                                   self-propulsions
    sample, METHODS, Sampled       the reverse samplers (one entry point, a method registry)
    register_force, register_method, get_method, method_names, Method
                                   extend the samplers: a force with a potential, a method
    ActivitySchedule, ScheduledActiveOU, sample_scheduled   activity schedule τ(t)
    evaluate, w1, hist_kl          accuracy metrics with finite-sample floors
    Protocol, export_protocol,     the effective potential tabulated on a grid (a lab
    load_protocol, replay          protocol) and its replay from the file alone
    sample_tabulated               a method's force tabulated once, the ensemble run in
                                   its interpolation (the fast route for a learned score, d ≤ 2)
    train, load_model, LearnedScore  learned scores from data (DSM; `learning`)

The sub-packages (physics, samplers, learning, lab, analysis, figures, studies, cluster, cli)
are attributes too, loaded on first use; so are the modules that moved into them, under their
old names (`MOVED`: `activegen.digit_metrics` is `activegen.analysis.digit_metrics`).
"""

from . import _xla

_xla.configure()  # before any JAX computation: see _xla.py

from .analysis.metrics import evaluate, hist_kl, log_slope, moment_errors, w1, w1_floor  # noqa: E402
from .errors import ActivegenError, FirstOrderWarning  # noqa: E402
from .lab.export import export_protocol  # noqa: E402
from .lab.protocol import Protocol, load_protocol, replay, save_protocol  # noqa: E402
from .lab.tabulated import sample_tabulated  # noqa: E402
from .physics.activity_schedule import ActivitySchedule, ScheduledActiveOU  # noqa: E402
from .physics.drivers import (  # noqa: E402
    DRIVERS,
    ActiveBrownianDriver,
    OUDriver,
    RunAndTumbleDriver,
    register_driver,
)
from .physics.forces import (  # noqa: E402
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
from .physics.interfaces import Driver, Process, ScoreModel  # noqa: E402
from .physics.processes import ActiveOU  # noqa: E402
from .physics.scores import MixtureScore, ScoreDerivs, autodiff_derivs, mixture_derivs  # noqa: E402
from .physics.targets import GaussianMixture, default_target_1d, default_target_2d  # noqa: E402
from .samplers import (  # noqa: E402
    Method,
    Sampled,
    default_dt,
    get_method,
    method_names,
    register_force,
    register_method,
    sample,
    sample_field,
)
from .samplers.schedule import sample_scheduled  # noqa: E402

__all__ = [
    "ActiveOU", "ActivegenError", "FirstOrderWarning", "FORCES", "GaussianMixture",
    "METHODS", "MixtureScore", "OUDriver", "Sampled", "ScoreDerivs", "autodiff_derivs",
    "default_dt", "default_target_1d", "default_target_2d", "evaluate", "force_fox",
    "force_naive", "force_ucn", "hist_kl", "log_slope", "mixture_derivs", "moment_errors",
    "potential_fox", "potential_naive", "potential_ucn", "sample", "sample_field", "w1",
    "w1_floor", "ACTIVE_METHODS", "Protocol", "export_protocol", "load_protocol", "replay",
    "save_protocol", "LearnedScore", "load_model", "train", "force_projected",
    "potential_projected", "ActivitySchedule", "ScheduledActiveOU", "sample_scheduled",
    "Method", "get_method", "method_names", "register_force", "register_method",
    "DRIVERS", "register_driver", "RunAndTumbleDriver", "ActiveBrownianDriver",
    "ScoreModel", "Process", "Driver", "sample_tabulated",
]
__version__ = "0.1.0"


#: The modules that moved whole into a sub-package (docs/architecture.md), still reachable
#: under their old names as attributes: `activegen.targets`, `activegen.digit_metrics`, ...
MOVED = {
    "processes": "physics.processes", "targets": "physics.targets", "scores": "physics.scores",
    "forces": "physics.forces", "drivers": "physics.drivers", "stepping": "physics.stepping",
    "interfaces": "physics.interfaces", "energetics": "physics.energetics",
    "datasets": "learning.datasets", "tabulated": "lab.tabulated",
    "metrics": "analysis.metrics", "digit_metrics": "analysis.digit_metrics",
    "likelihood": "analysis.likelihood", "digits_experiment": "studies.digits",
    "learned_gallery": "studies.learned_gallery", "thermodynamics": "studies.thermodynamics",
    "distributed": "cluster.client",
}


def __getattr__(name):
    """METHODS / ACTIVE_METHODS are read from the method registry when asked (a method
    registered later is listed); learned-score names load lazily (equinox/optax only when
    used), and so do the public submodules that `import activegen` does not load: the
    sub-packages (`activegen.studies`, ...) and the modules of MOVED under their old names
    (`activegen.digit_metrics` is `activegen.analysis.digit_metrics`)."""
    import importlib

    if name == "METHODS":
        return method_names()
    if name == "ACTIVE_METHODS":
        return method_names(where=lambda m: m.active)
    if name in ("LearnedScore", "load_model"):
        from .learning import model

        return getattr(model, name)
    if name == "train":
        from .learning.training import train

        return train
    if name in MOVED:
        return importlib.import_module(f"{__name__}.{MOVED[name]}")
    # a public submodule not imported yet (a sub-package, cli, files, errors)
    if name.isidentifier() and not name.startswith("_"):
        import importlib.util

        if importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'activegen' has no attribute {name!r}")
