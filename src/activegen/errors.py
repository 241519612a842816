"""Input validation: one clear message naming the parameter and its valid range."""

from __future__ import annotations

import math

import numpy as np


class ActivegenError(ValueError):
    """Invalid user input or a run that produced non-finite samples."""


class FirstOrderWarning(UserWarning):
    """τ·|∇F| is not small: the first-order (in τ) effective potential is unreliable."""


def _is_finite_number(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def check_real(name: str, value) -> float:
    if isinstance(value, bool) or not _is_finite_number(value):
        raise ActivegenError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_positive(name: str, value) -> float:
    v = check_real(name, value)
    if v <= 0:
        raise ActivegenError(f"{name} must be > 0, got {value!r}")
    return v


def check_nonnegative(name: str, value) -> float:
    v = check_real(name, value)
    if v < 0:
        raise ActivegenError(f"{name} must be >= 0, got {value!r}")
    return v


def check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ActivegenError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_finite(what: str, array):
    """Fail loudly if an array holds NaN or inf (e.g. a sampler that blew up)."""
    a = np.asarray(array)
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ActivegenError(
            f"{what} produced {bad} non-finite values (NaN/inf): the step size is "
            "probably too large for the force; use a smaller --dt"
        )
    return array
