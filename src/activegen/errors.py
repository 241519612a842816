"""Input validation: one clear message naming the parameter and its valid range.

Also the checks done before any work (docs/robustness.md): seeds (`seed_key`: every
integer its own stream), PRNG keys, process objects, numeric arrays, output paths, and the
run-size limits (`MAX_STEPS`, `memory_limit`)."""

from __future__ import annotations

import math
import os
from pathlib import Path

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
    if isinstance(value, (bool, str, bytes)) or not _is_finite_number(value):
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


_HINT = "check the inputs (finite, and within float32's range ~3.4e38, or use --x64)"


def check_finite(what: str, array, hint: str = _HINT):
    """Fail loudly if an array holds NaN or inf (e.g. a sampler that blew up). hint: the
    advice, matched to the cause where the caller knows it (`samplers.validity.
    nonfinite_hint` for a sampler, `forward_hint`); a smaller --dt only where the step is
    the cause."""
    a = np.asarray(array)
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ActivegenError(f"{what} produced {bad} non-finite values (NaN/inf): {hint}")
    return array


def forward_hint(x0, beta: float, h: float) -> str:
    """The cause of a forward simulation's non-finite end: non-finite x0, the Euler step of
    βx unstable (β·h > 1: a smaller dt), or positions beyond the dtype's range."""
    x0 = np.asarray(x0)
    if not np.all(np.isfinite(x0)):
        return "x0 holds NaN or inf"
    if beta * h > 1:
        return (f"the Euler step of beta*x is unstable at beta*dt = {beta * h:.3g} > 1: use "
                "a smaller dt")
    big = float(np.max(np.abs(x0))) if x0.size else 0.0
    return (f"the positions overflowed {x0.dtype} (|x0| up to {big:.3g}): rescale x0, or "
            "compute in float64 (jax_enable_x64)")


# -- numeric arrays ---------------------------------------------------------------
def check_array(name: str, value, ndim: int | None = None) -> np.ndarray:
    """value as a float64 array: refuses ragged lists, strings and other non-numbers (and,
    with ndim, another number of dimensions)."""
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):
        raise ActivegenError(f"{name} is malformed (ragged lists or non-numbers): must be "
                             "an array of numbers") from None
    if raw.dtype == object or raw.dtype.kind not in "biuf":
        raise ActivegenError(
            f"{name} is malformed (ragged lists or non-numbers): must be an array of "
            f"numbers, got dtype {raw.dtype}"
            + (f" ({value!r})" if raw.size <= 4 else "")
        )
    if ndim is not None and raw.ndim != ndim:
        raise ActivegenError(f"{name} must have {ndim} dimension(s), got shape {raw.shape}")
    return raw.astype(np.float64)


# -- seeds and keys ------------------------------------------------------------------
#: Seeds must satisfy |seed| < 2**SEED_BITS (every such integer has its own stream).
SEED_BITS = 256


def check_seed(name: str, seed) -> int:
    """An integer seed (not bool, |seed| < 2**SEED_BITS)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ActivegenError(f"{name} must be an integer, got {seed!r}")
    seed = int(seed)
    if abs(seed) >= 2 ** SEED_BITS:
        raise ActivegenError(f"{name} must satisfy |{name}| < 2**{SEED_BITS}, got {seed}")
    return seed


def seed_key(seed):
    """The PRNG key of an integer seed, using all its bits: 0 <= seed < 2**32 gives
    jax.random.key(seed) (as before); any other seed starts from the key of its low 32-bit
    word and folds in its word count (with a sign flag) and then each higher 32-bit word,
    so distinct seeds give distinct streams (-1, 2**32 - 1, 2**32 and 0 all differ)."""
    import jax

    seed = check_seed("seed", seed)
    mag, neg = abs(seed), seed < 0
    words = []
    while True:
        words.append(mag & 0xFFFFFFFF)
        mag >>= 32
        if not mag:
            break
    key = jax.random.key(words[0])
    if neg or len(words) > 1:
        key = jax.random.fold_in(key, len(words) | (0x80000000 if neg else 0))
        for w in words[1:]:
            key = jax.random.fold_in(key, w)
    return key


def check_key(key):
    """A JAX PRNG key (typed, jax.random.key, or raw uint32 of shape (2,), jax.random.PRNGKey).
    An int is refused (pass it as seed=)."""
    import jax

    if isinstance(key, (bool, int, np.integer)):
        raise ActivegenError(
            f"key must be a JAX PRNG key (jax.random.key(...)); for an integer use seed={key!r}"
        )
    dt = getattr(key, "dtype", None)
    if dt is not None and jax.dtypes.issubdtype(dt, jax.dtypes.prng_key) and key.ndim == 0:
        return key
    if dt is not None and np.dtype(dt) == np.uint32 and tuple(key.shape) == (2,):
        return key
    raise ActivegenError(
        f"key must be a single JAX PRNG key (jax.random.key(...)), got {type(key).__name__}"
        + (f" of shape {tuple(key.shape)}" if hasattr(key, "shape") else "")
    )


# -- processes -------------------------------------------------------------------------
def check_process(process):
    """A forward process: an object with numeric beta, d_thermal, d_active, tau (ActiveOU
    or a `interfaces.Process`); None and other objects are refused."""
    missing = [a for a in ("beta", "d_thermal", "d_active", "tau", "d_eff")
               if not hasattr(process, a)]
    if process is None or missing:
        raise ActivegenError(
            "process must be an ActiveOU (the forward process), got "
            f"{type(process).__name__}" + (f" (lacks {', '.join(missing)})" if
                                           process is not None else "")
        )
    for a in ("beta", "d_thermal", "d_active", "tau"):
        check_real(f"process.{a}", getattr(process, a))
    return process


# -- output paths -----------------------------------------------------------------------
def check_out_file(path, suffix: str | None = None, flag: str = "--out") -> Path:
    """An output file that can be written: the suffix, not a directory, in an existing
    writable directory (checked before any work)."""
    p = Path(path)
    if p.is_dir():
        raise ActivegenError(f"{flag} is an existing directory, not a file: {p}")
    if suffix is not None and p.suffix != suffix:
        raise ActivegenError(f"{flag} must end in {suffix}, got {str(path)!r}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ActivegenError(f"{flag} directory does not exist: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ActivegenError(f"{flag} directory is not writable: {parent}")
    return p


def check_out_dir(path, flag: str = "--out") -> Path:
    """An output folder: an existing writable directory, or a new one whose nearest
    existing parent is writable (not an existing file)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ActivegenError(f"{flag} is an existing file, not a folder: {p}")
    q = p
    while not q.exists() and q != q.parent:
        q = q.parent
    if not q.is_dir():
        raise ActivegenError(f"{flag}: {q} is a file, so {p} cannot be created")
    if not os.access(q, os.W_OK | os.X_OK):
        raise ActivegenError(f"{flag} folder is not writable: {q}")
    return p


# -- run size ---------------------------------------------------------------------------
#: The most integration steps a run may take (the engine indexes steps with int32).
MAX_STEPS = 10**9


def memory_limit() -> int:
    """Bytes a run may plan to hold: ACTIVEGEN_MAX_MEMORY (bytes, e.g. 8e9) or half the
    machine's physical memory."""
    env = os.environ.get("ACTIVEGEN_MAX_MEMORY")
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise ActivegenError(f"ACTIVEGEN_MAX_MEMORY must be a number of bytes, got {env!r}") from None
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (ValueError, OSError, AttributeError):
        return 8 * 10**9


def check_steps(n_steps, dt=None) -> int:
    """n_steps <= MAX_STEPS (e.g. refuses tau = 1e-12 with the default step tau/20)."""
    if not math.isfinite(n_steps) or n_steps > MAX_STEPS:
        raise ActivegenError(
            f"the run would take {n_steps:.3g} steps (> {MAX_STEPS:.0e})"
            + (f" with dt = {dt:.3g}" if dt is not None else "")
            + ": use a larger --dt (or tau), or a shorter --t-final"
        )
    return int(n_steps)
