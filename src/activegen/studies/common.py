"""What every study shares: the time-stepping scheme of the studies whose figures docs/
quotes, and the checks of their list arguments."""

from __future__ import annotations

from ..errors import ActivegenError, check_real
from ..samplers import get_method

#: The scheme of the studies whose figures docs/ quotes (the τ sweeps and the validity map,
#: the digits study, the learned gallery, the schedule, protocol and driver sweeps): the
#: first-order steps at their fine default Δs = min(τ/20, 0.002), so that a study of τ is
#: not also one of the step. The samplers' own defaults are second order (`samplers.schemes`).
STUDY_SCHEME = "euler"


def study_options(method) -> dict:
    """`sample` options of a study run: {"scheme": STUDY_SCHEME} for a method that has
    schemes, else none."""
    return {"scheme": STUDY_SCHEME} if "scheme" in get_method(method).options else {}


def check_values(name: str, values) -> list[float]:
    """A non-empty list of finite numbers > 0 (persistence times τ, mode widths σ_min),
    checked before any work: one line naming the parameter and the valid range."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or not len(values):
        raise ActivegenError(f"{name} must hold at least one value (each a finite number > 0)")
    out = []
    for v in values:
        x = check_real(name, v)
        if x <= 0:
            raise ActivegenError(f"every value of {name} must be > 0, got {v!r}")
        out.append(x)
    return out
