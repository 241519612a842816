"""The force a live feedback loop applies: one measured position and the elapsed time in,
the protocol's force in pN out, in plain numpy (docs/lab.md, "The live force lookup").

This module imports numpy and the standard library only (no JAX, no other activegen
module), so that a control loop can load it alone, without JAX's start-up:

    import importlib.util
    spec = importlib.util.spec_from_file_location("lookup", "src/activegen/lab/lookup.py")
    lookup = importlib.util.module_from_spec(spec); spec.loader.exec_module(lookup)
    force = lookup.ForceLookup.load("lab_protocol.npz")
    f_pN = force(x_um, s)        # at elapsed time s (s) since the protocol's start

It also holds what the JAX side shares with it, each written once: the protocol file's
checksum (`checksum`), its reading (`read_protocol`) and the table's interpolation
(`interpolate`, array-module generic: `lab.protocol` runs it with jax.numpy inside the
samplers, `ForceLookup` with numpy at one point).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "activegen-protocol"
#: The arrays the checksum covers (the derived force_pN, potential_kT of a lab export are not
#: read back).
TABLES = ("times", "lo", "spacing", "potential", "force")


class ProtocolFileError(ValueError):
    """A file that is not a readable, unchanged activegen protocol (one line)."""


def checksum(arrays: dict, meta: dict) -> str:
    """"sha256:<hex>" of the tables (dtype, shape and bytes of times, lo, spacing,
    potential, force) and of the metadata (canonical JSON, without `checksum` and the
    sidecar's `arrays`): ties the tables to their parameters (β, τ, D_A, D_T, T, method,
    grid, source, lab)."""
    h = hashlib.sha256()
    for name in TABLES:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    rest = {k: v for k, v in meta.items() if k not in ("checksum", "arrays")}
    h.update(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode())
    return "sha256:" + h.hexdigest()


def read_protocol(path) -> tuple[dict, dict]:
    """(arrays, meta) of a protocol .npz: an .npz archive holding the TABLES and `meta`
    (JSON text) of format FORMAT whose checksum matches; otherwise `ProtocolFileError`."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ProtocolFileError(f"a protocol file must end in .npz, got {str(path)!r}")
    if not path.is_file():
        raise ProtocolFileError(f"protocol file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise ProtocolFileError(f"{path} is not an .npz archive (not an activegen protocol)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in TABLES + ("meta",)}
        meta = json.loads(str(arrays.pop("meta")))
    except KeyError as exc:
        raise ProtocolFileError(f"{path} is not an activegen protocol (missing {exc})") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:  # not a zip / JSON
        raise ProtocolFileError(f"{path} is not a readable protocol: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ProtocolFileError(f"{path} is not an activegen protocol (format mismatch)")
    if "checksum" not in meta:
        raise ProtocolFileError(
            f"protocol {path} carries no checksum (written by an older activegen, or "
            "edited): export it again")
    if meta["checksum"] != checksum(arrays, meta):
        raise ProtocolFileError(
            f"protocol {path} does not match its checksum: its tables or parameters were "
            "changed after export (refusing to replay it; export it again)")
    return arrays, meta


def interpolate(table, t, x, xp=np):
    """Linear in t, multilinear in x of values (n_t, n_1, …, n_d, *rest) at points x (N, d).

    table = (times, lo, spacing, values). Inside the grid: Σ over the 2^(d+1) corners of
    the enclosing cell of the product of the hat weights; outside: the edge cell's
    multilinear form, i.e. linear extrapolation in x (exact for affine fields) and clamping
    in t. xp: the array module (numpy, or jax.numpy inside a jitted sampler).
    """
    times, lo, spacing, values = table
    d = x.shape[-1]
    n = xp.asarray(values.shape[1: d + 1])
    it = xp.clip(xp.searchsorted(times, t, side="right") - 1, 0, times.shape[0] - 2)
    wt = xp.clip((t - times[it]) / (times[it + 1] - times[it]), 0.0, 1.0)
    u = (x - lo) / spacing
    i = xp.clip(xp.floor(u), 0, n - 2).astype(xp.int32)
    f = u - i
    rest = values.ndim - d - 1
    out = 0.0
    for ct in (0, 1):
        w_t = wt if ct else 1.0 - wt
        for corner in itertools.product((0, 1), repeat=d):
            w = w_t
            for k, c in enumerate(corner):
                w = w * (f[:, k] if c else 1.0 - f[:, k])
            idx = (it + ct,) + tuple(i[:, k] + c for k, c in enumerate(corner))
            out = out + w.reshape(w.shape + (1,) * rest) * values[idx]
    return out


def clip_norm(f, cap, xp=np):
    """f·min(1, cap/|f|) per point (f (N, d)): the actuator's force limit, applied to the
    magnitude; f unchanged, bit for bit, where |f| <= cap."""
    norm = xp.sqrt(xp.sum(f * f, axis=-1, keepdims=True))
    return xp.where(norm > cap, f * (cap / xp.maximum(norm, 1e-30)), f)


class ForceLookup:
    """f_pN = lookup(x, s): the protocol's force γ F̂(x, T − s) in pN at a measured position
    x (µm; d numbers, or (N, d)) and elapsed time s (s) since the protocol's start, F̂ the
    table's interpolation (`interpolate`). From a protocol exported with --lab (γ from its
    `lab` block); `max_force_pN` clips |f| as the loop's actuator would (None: no clip)."""

    def __init__(self, arrays: dict, meta: dict, max_force_pN: float | None = None):
        lab = meta.get("lab")
        if not isinstance(lab, dict) or "gamma_pN_s_per_um" not in lab:
            raise ProtocolFileError("the protocol has no lab units: export it with "
                                    "export-potential --lab LAB.json")
        self.gamma = float(lab["gamma_pN_s_per_um"])
        self.t_final = float(meta["t_final"])
        self.dim = int(arrays["lo"].shape[0])
        self.max_force_pN = max_force_pN
        self._table = (arrays["times"].astype(np.float64), arrays["lo"].astype(np.float64),
                       arrays["spacing"].astype(np.float64),
                       self.gamma * arrays["force"].astype(np.float64))

    @classmethod
    def load(cls, path, max_force_pN: float | None = None) -> "ForceLookup":
        return cls(*read_protocol(path), max_force_pN=max_force_pN)

    def __call__(self, x, s: float) -> np.ndarray:
        pts = np.asarray(x, np.float64).reshape(-1, self.dim)
        f = interpolate(self._table, self.t_final - float(s), pts)
        if self.max_force_pN is not None:
            f = clip_norm(f, self.max_force_pN)
        return f[0] if np.ndim(x) <= 1 else f
