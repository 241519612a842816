"""Output files: written whole or not at all, and the samples file of `activegen sample`.

`atomic_path(path)` yields a temporary name in the target's directory; the file written
there replaces `path` only when the block ends without an error (os.replace), so an
interrupted or failed write leaves any earlier file as it was and no partial one.

`write_text`, `write_json` and `save_figure` write text, JSON and matplotlib figures that way.

A samples file (.npz) holds `samples` (N, d), `seed` (int64, or its decimal text when it
does not fit), `info` (JSON of `Sampled.info`),
the scalar entries of info, optionally `trajectory` (frames, N, d) and `times`, and
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


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside `path` (same suffix) that replaces it on success."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix,
                               dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    _PENDING.add(tmp)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        _PENDING.discard(tmp)


def discard_pending() -> None:
    """Remove the temporary files of unfinished atomic writes (before a hard exit)."""
    for tmp in list(_PENDING):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _PENDING.discard(tmp)


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


def _seed_entry(seed):
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
    with atomic_path(path) as tmp:
        np.savez(
            tmp,
            samples=samples,
            seed=_seed_entry(seed),
            info=json.dumps(info),
            **{k: v for k, v in info.items() if isinstance(v, (int, float, str))},
            **entries,
            **extra,
        )
    return Path(path)


def load_samples(path, subsample: int | None = None, seed: int = 0):
    """(samples (N, d), target JSON or None, info dict) of a samples file or a shard
    directory; subsample: that many particles drawn uniformly without replacement (memory
    O(subsample) for a shard directory)."""
    p = Path(path)
    if p.is_dir():
        return _load_shards(p, subsample, seed)
    samples, target, info = _load_file(p)
    if subsample is not None and subsample < len(samples):
        rng = np.random.default_rng(seed)
        samples = samples[np.sort(rng.choice(len(samples), subsample, replace=False))]
    return samples, target, info


def _load_shards(p: Path, subsample, seed):
    index_path = p / "index.json"
    if not index_path.is_file():
        raise ActivegenError(f"{p} holds no index.json (not a finished shard directory)")
    try:
        index = json.loads(index_path.read_text())
        shards = index["shards"]
    except (ValueError, KeyError) as exc:
        raise ActivegenError(f"{index_path} is not a shard index: {exc}") from None
    counts = np.array([s["n"] for s in shards])
    take = counts
    if subsample is not None and subsample < counts.sum():
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(int(counts.sum()), subsample, replace=False))
        edges = np.concatenate([[0], np.cumsum(counts)])
        take = [pick[(pick >= a) & (pick < b)] - a for a, b in zip(edges[:-1], edges[1:])]
    parts = []
    for s, t in zip(shards, take):
        x, _, _ = _load_file(p / s["file"])
        if len(x) != s["n"]:
            raise ActivegenError(f"{p / s['file']} holds {len(x)} samples, the index {s['n']}")
        parts.append(x if np.ndim(t) == 0 else x[t])
    return np.concatenate(parts), index.get("target"), index.get("info", {})


def _load_file(p: Path):
    if p.suffix != ".npz" or not p.is_file() or not zipfile.is_zipfile(p):
        raise ActivegenError(f"--input must be an existing .npz written by activegen sample: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            samples = np.asarray(z["samples"])
            target = str(z["target"]) if "target" in z.files else None
            info = json.loads(str(z["info"])) if "info" in z.files else {}
    except KeyError:
        raise ActivegenError(f"{p} holds no 'samples' (not written by activegen sample)") from None
    except (OSError, ValueError, EOFError) as exc:  # not a zip, bad JSON
        raise ActivegenError(f"{p} is not readable: {exc}") from None
    return samples, target, info


def load_reference(path):
    """The `reference` points (M, d) a samples file holds (a learned model's training data,
    in the data's units), or None."""
    p = Path(path)
    if p.is_dir() or not zipfile.is_zipfile(p):
        return None
    with np.load(p, allow_pickle=False) as z:
        return np.asarray(z["reference"]) if "reference" in z.files else None
