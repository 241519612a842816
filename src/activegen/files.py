"""Output files: written whole or not at all, and the samples file of `activegen sample`.

`atomic_path(path)` yields a temporary name in the target's directory; the file written
there replaces `path` only when the block ends without an error (os.replace), so an
interrupted or failed write leaves any earlier file as it was and no partial one.

`write_text`, `write_json` and `save_figure` write text, JSON and matplotlib figures that way.

A samples file (.npz) holds `samples` (N, d), `seed` (int64, or its decimal text when it
does not fit), `info` (JSON of `Sampled.info`),
the scalar entries of info, info's per-particle arrays (`sample --energetics`: `work`,
`heat`, ...; their means in info as `work_mean`, ...),
optionally `trajectory` (frames, N, d) and `times`, and
`target` (JSON of a GaussianMixture) or `protocol` / `model` (the source's path).

A shard directory (`sample(..., client=..., shards=DIR)`, `activegen sample --out DIR/`)
holds one samples file per cluster task and `index.json` (written last) listing them in
block order; `load_samples` reads all of it or a uniform subsample, shard by shard.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import ActivegenError, check_finite


#: temporary files of the atomic writes in progress in this process, for `discard_pending`
#: (the one piece of process state here: a hard exit on Ctrl-C cannot unwind the writers)
_PENDING: set[str] = set()


def _umask() -> int:
    """This process's umask (read without changing it where /proc tells it)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore
    os.umask(mask)
    return mask


def write_error(path, exc: OSError) -> ActivegenError:
    """One line for a write that failed (a full disk, a read-only or vanished folder)."""
    why = exc.strerror or str(exc) or type(exc).__name__
    return ActivegenError(f"cannot write {path}: {why} (nothing written; an earlier "
                          f"{Path(path).name} is unchanged)")


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside `path` (same suffix) that replaces it on success. The file
    gets the mode of a newly created one (0666 less the umask, not mkstemp's 0600); an
    OSError while writing (ENOSPC, EACCES, ...) becomes one ActivegenError line."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix,
                                   dir=path.parent if str(path.parent) else ".")
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    _PENDING.add(tmp)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from exc
        raise
    finally:
        _PENDING.discard(tmp)


def discard_pending() -> None:
    """Remove the temporary files of unfinished atomic writes (before a hard exit)."""
    for tmp in list(_PENDING):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _PENDING.discard(tmp)


def track_pending(paths) -> None:
    """Count `paths` among the unfinished writes (`discard_pending` removes them on Ctrl-C):
    files written elsewhere that are committed together later (a cluster run's shards)."""
    _PENDING.update(paths)


def release_pending(paths) -> None:
    """`paths` are no longer unfinished writes (committed, or removed by their writer)."""
    _PENDING.difference_update(paths)


def write_text(path, text: str) -> Path:
    """Write text to path atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path, obj, indent: int = 2) -> Path:
    return write_text(path, json.dumps(obj, indent=indent) + "\n")


def save_figure(fig, path, **kw) -> Path:
    """fig.savefig to path atomically (the temporary name keeps the suffix: the format)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kw)
    return Path(path)


def seed_entry(seed):
    if seed is None or -(2**63) <= int(seed) < 2**63:
        return seed
    return str(int(seed))


def save_samples(path, result, *, seed=None, to_data=None, **meta) -> Path:
    """Write a `Sampled` as a samples file (module doc). to_data maps samples and
    trajectory to the data's units (a learned model's); meta: extra entries (strings are
    stored as they are, dicts as JSON). What is written (in data units) must be finite:
    otherwise nothing is written (ActivegenError)."""
    back = to_data or (lambda a: a)
    info = result.info
    hint = ("nothing was written (the map to the data's units overflowed?)" if to_data
            else "nothing was written")
    samples = check_finite("the samples to write", np.asarray(back(result.samples)), hint)
    extra = {}
    if result.trajectory is not None:
        traj = check_finite("the trajectory to write", np.asarray(back(result.trajectory)),
                            hint)
        extra = {"trajectory": traj, "times": result.times}
    entries = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in meta.items()}
    info, per_particle = split_info(info)
    with atomic_path(path) as tmp:
        np.savez(
            tmp,
            samples=samples,
            seed=seed_entry(seed),
            info=json.dumps(info, default=_json_default),
            **{k: v for k, v in info.items() if isinstance(v, (int, float, str))},
            **per_particle,
            **entries,
            **extra,
        )
    return Path(path)


def split_info(info: dict) -> tuple[dict, dict]:
    """(info for the JSON entry, per-particle arrays): an array entry of info (the
    energetics' `work`, `heat`, ... of shape (N,)) becomes its own .npz entry and leaves
    `KEY_mean` (its mean) in info; NumPy scalars become Python numbers."""
    scalars, arrays = {}, {}
    for k, v in info.items():
        if hasattr(v, "shape") and hasattr(v, "dtype"):
            a = np.asarray(v)
            if a.ndim == 0:
                scalars[k] = a.item()
            else:
                arrays[k] = a
                scalars[f"{k}_mean"] = float(np.mean(a)) if a.size else None
        else:
            scalars[k] = v
    return scalars, arrays


def _json_default(obj):
    """NumPy values nested in info (lists, dicts) as JSON numbers or lists."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def load_samples(path, subsample: int | None = None, seed: int = 0):
    """(samples (N, d), target JSON or None, info dict) of a samples file or a shard
    directory; subsample: that many particles drawn uniformly without replacement (memory
    O(subsample) for a shard directory). Refused with one line (ActivegenError): a file or
    shard that is missing, unreadable or not (N, d) numbers, samples holding NaN or inf, a
    shard index that is malformed or does not cover the run's blocks once each."""
    p = Path(path)
    if p.is_dir():
        return _load_shards(p, subsample, seed)
    samples, target, info = _load_file(p)
    _check_finite_samples(p, samples, len(samples))
    if subsample is not None and subsample < len(samples):
        rng = np.random.default_rng(seed)
        samples = samples[np.sort(rng.choice(len(samples), subsample, replace=False))]
    return samples, target, info


def _bad_rows(x) -> int:
    return int(np.count_nonzero(~np.isfinite(x).all(axis=1)))


def _check_finite_samples(where, x, n_total, bad=None):
    bad = _bad_rows(x) if bad is None else bad
    if bad:
        raise ActivegenError(
            f"{where} holds {bad} non-finite samples (NaN or inf) of {n_total}: refusing to "
            "use them (activegen sample never writes such samples: the file was changed or "
            "written by something else)")


#: A shard directory's index (written last: a directory without it holds no finished run).
INDEX = "index.json"
#: Its format tag.
SHARDS_FORMAT = "activegen-shards/1"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_shard_index(p) -> dict:
    """The validated index of shard directory `p`: a JSON object with positive integers n,
    d, block_size and the shards, each {file (a name in p), first_block, n_blocks, n},
    covering blocks [0, ceil(n / block_size)) in order, once each, with the counts of
    their blocks (so summing to n). Anything else: one ActivegenError line."""
    p = Path(p)
    index_path = p / INDEX
    if not index_path.is_file():
        raise ActivegenError(f"{p} holds no {INDEX} (not a finished shard directory)")

    def bad(why):
        return ActivegenError(f"{index_path} is not a valid shard index: {why} (write the "
                              "directory again with activegen sample --out DIR/)")

    try:
        index = json.loads(index_path.read_text())
    except OSError as exc:
        raise ActivegenError(f"{index_path} cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise bad(f"not JSON ({exc})") from None
    if not isinstance(index, dict):
        raise bad("not a JSON object")
    missing = [k for k in ("n", "d", "block_size", "shards") if k not in index]
    if missing:
        raise bad(f"missing {', '.join(missing)}")
    for k in ("n", "d", "block_size"):
        if not _is_int(index[k]) or index[k] < 1:
            raise bad(f"'{k}' must be a positive integer, got {index[k]!r}")
    if not isinstance(index.get("target", ""), (str, type(None))):
        raise bad("'target' must be the target's JSON text")
    if not isinstance(index.get("info", {}), dict):
        raise bad("'info' must be a JSON object")
    shards = index["shards"]
    if not isinstance(shards, list) or not shards:
        raise bad("'shards' must be a non-empty list")
    n, b = index["n"], index["block_size"]
    nb = -(-n // b)
    cover = (f"the shards must cover blocks [0, {nb}) in order, once each (n = {n}, "
             f"block_size = {b})")
    names, expect = set(), 0
    for i, s in enumerate(shards):
        keys = ("file", "first_block", "n_blocks", "n")
        if not isinstance(s, dict) or any(k not in s for k in keys):
            raise bad(f"shard {i} must be an object with {', '.join(keys)}")
        f = s["file"]
        if not isinstance(f, str) or not f.endswith(".npz") or Path(f).name != f or f in names:
            raise bad(f"shard {i}: 'file' must be a distinct .npz name in {p}, got {f!r}")
        names.add(f)
        if not all(_is_int(s[k]) for k in keys[1:]) or s["n_blocks"] < 1:
            raise bad(f"shard {i} ({f}): first_block, n_blocks, n must be integers, n_blocks >= 1")
        if s["first_block"] != expect:
            raise bad(f"shard {i} ({f}) starts at block {s['first_block']}, expected "
                      f"{expect}: {cover}")
        expect += s["n_blocks"]
        if expect > nb:
            raise bad(f"shard {i} ({f}) ends at block {expect}: {cover}")
        want = min(n, b * expect) - b * s["first_block"]
        if s["n"] != want:
            raise bad(f"shard {i} ({f}) lists {s['n']} samples, its blocks hold {want}")
    if expect != nb:
        raise bad(f"the shards end at block {expect}: {cover}")
    return index


def _load_shards(p: Path, subsample, seed):
    index = read_shard_index(p)
    shards, n, d = index["shards"], index["n"], index["d"]
    counts = np.array([s["n"] for s in shards])
    take = counts
    if subsample is not None and subsample < n:
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(n, subsample, replace=False))
        edges = np.concatenate([[0], np.cumsum(counts)])
        take = [pick[(pick >= a) & (pick < b)] - a for a, b in zip(edges[:-1], edges[1:])]
    parts, bad = [], 0
    for s, t in zip(shards, take):
        f = p / s["file"]
        if not f.is_file():
            raise ActivegenError(f"shard {f} listed in {p / INDEX} is missing (the "
                                 "directory is incomplete: write it again)")
        x, _, _ = _load_file(f, what="shard")
        if x.shape != (s["n"], d):
            raise ActivegenError(f"shard {f} holds samples of shape {x.shape}, the index "
                                 f"({s['n']}, {d})")
        bad += _bad_rows(x)
        parts.append(x if np.ndim(t) == 0 else x[t])
    _check_finite_samples(p, None, n, bad)
    return np.concatenate(parts), index.get("target"), index.get("info", {})


def _load_file(p: Path, what: str = "--input"):
    import zlib

    if p.suffix != ".npz" or not p.is_file() or not zipfile.is_zipfile(p):
        raise ActivegenError(f"{what} must be an existing .npz written by activegen sample: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            samples = np.asarray(z["samples"])
            target = str(z["target"]) if "target" in z.files else None
            info = json.loads(str(z["info"])) if "info" in z.files else {}
    except KeyError:
        raise ActivegenError(f"{p} holds no 'samples' (not written by activegen sample)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ActivegenError(f"{p} is not readable: {exc}") from None  # truncated, bad JSON
    if samples.ndim != 2 or samples.dtype.kind not in "fiu" or samples.shape[1] < 1:
        raise ActivegenError(f"{p}: 'samples' must be an (N, d) array of numbers, got "
                             f"shape {samples.shape}, dtype {samples.dtype}")
    if not isinstance(info, dict):
        raise ActivegenError(f"{p}: 'info' must be a JSON object")
    return samples, target, info


def load_reference(path):
    """The `reference` points (M, d) a samples file holds (a learned model's training data,
    in the data's units), or None."""
    p = Path(path)
    if p.is_dir() or not zipfile.is_zipfile(p):
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            return np.asarray(z["reference"]) if "reference" in z.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ActivegenError(f"{p} is not readable: {exc}") from None
