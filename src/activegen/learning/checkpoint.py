"""A learned model's folder: config.json, model.eqx, opt_state.eqx, data.npy and loss.csv,
written as one consistent set and verified by a checksum on every load (`save_checkpoint`,
`read_config`, `load_state`).
"""

from __future__ import annotations

import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ActivegenError
from .network import DEFAULTS, ScoreNet, has_psi, make_optimizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.eqx"
OPT_FILE = "opt_state.eqx"
DATA_FILE = "data.npy"
LOSS_FILE = "loss.csv"


def skeleton(cfg):
    net = ScoreNet(cfg["data"]["d"], cfg["kind"], cfg["width"], cfg["depth"], cfg["n_freq"],
                   jax.random.key(cfg["seed"]), cfg["n_fourier"], cfg["fourier_max"],
                   psi=has_psi(cfg))
    return net, make_optimizer(cfg)


def save_checkpoint(path, net, opt_state, cfg, data, losses=None):
    """Write config.json (full configuration, process, data statistics, progress),
    model.eqx (weights), opt_state.eqx (optimizer, for resuming), data.npy (standardised
    training set) and loss.csv (with `losses` appended), as one consistent set: all are
    written into PATH/.checkpoint-next, which is renamed PATH/.checkpoint-commit (the
    commit point) and then moved into place, config.json last. An interrupted checkpoint
    is dropped (before the commit) or completed (after it) by the next save or load
    (`_recover_checkpoint`): the folder always holds one whole checkpoint.
    config.json carries `checksum` (`model_checksum`: the weights, the data and the
    configuration), verified by every load. A write that fails (a full disk, a read-only
    folder) raises one ActivegenError line and leaves the previous checkpoint."""
    import os
    import shutil

    path = Path(path)
    nxt = path / _CKPT_NEXT
    try:
        path.mkdir(parents=True, exist_ok=True)
        _recover_checkpoint(path)
        nxt.mkdir()
        eqx.tree_serialise_leaves(nxt / WEIGHTS_FILE, net)
        eqx.tree_serialise_leaves(nxt / OPT_FILE, opt_state)
        if not (path / DATA_FILE).exists():
            np.save(nxt / DATA_FILE, np.asarray(data, np.float32))
        if losses:
            old = path / LOSS_FILE
            text = old.read_text() if old.exists() else "step,loss\n"
            (nxt / LOSS_FILE).write_text(text + "".join(f"{s},{v:.6g}\n" for s, v in losses))
        data_file = nxt / DATA_FILE if (nxt / DATA_FILE).exists() else path / DATA_FILE
        cfg = {**cfg, "checksum": model_checksum(nxt / WEIGHTS_FILE, data_file, cfg)}
        (nxt / CONFIG_FILE).write_text(json.dumps(cfg, indent=2))
        os.replace(nxt, path / _CKPT_COMMIT)  # the commit point
    except OSError as exc:
        shutil.rmtree(nxt, ignore_errors=True)
        raise ActivegenError(f"cannot write the checkpoint in {path}: "
                             f"{exc.strerror or exc} (the previous checkpoint is kept)") from None
    _recover_checkpoint(path)


def model_checksum(weights, data, cfg) -> str:
    """"sha256:<hex>" of the weights file, the (standardised) training data file and the
    configuration (canonical JSON without `checksum`): config.json's `checksum`."""
    import hashlib

    h = hashlib.sha256()
    for name, f in (("weights", Path(weights)), ("data", Path(data))):
        h.update(f"{name}:".encode())
        if f.is_file():
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        h.update(b";")
    rest = {k: v for k, v in cfg.items() if k != "checksum"}
    h.update(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode())
    return "sha256:" + h.hexdigest()


def write_config(path, cfg) -> None:
    """config.json of the checkpoint in `path` (its files in place) with a new checksum."""
    from ..files import write_json

    path = Path(path)
    write_json(path / CONFIG_FILE,
               {**cfg, "checksum": model_checksum(path / WEIGHTS_FILE, path / DATA_FILE, cfg)})


def _verify_checksum(path, cfg) -> None:
    """Refuse a model whose files do not match config.json's checksum; one without a
    checksum (written before it was added) loads with a warning."""
    import warnings

    path = Path(path)
    if "checksum" not in cfg:
        warnings.warn(f"model {path} carries no checksum (written by an older activegen): "
                      "its files cannot be verified", UserWarning, stacklevel=4)
        return
    if cfg["checksum"] != model_checksum(path / WEIGHTS_FILE, path / DATA_FILE, cfg):
        raise ActivegenError(
            f"model {path} does not match its checksum: {WEIGHTS_FILE}, {DATA_FILE} or "
            f"{CONFIG_FILE} changed after training (refusing to load it; restore its files "
            "or train it again)")


_CKPT_NEXT, _CKPT_COMMIT = ".checkpoint-next", ".checkpoint-commit"


def _recover_checkpoint(path):
    """Complete a committed checkpoint (move its files into place, config.json last) and
    drop an uncommitted one (see `save_checkpoint`)."""
    import os
    import shutil

    path = Path(path)
    try:
        commit = path / _CKPT_COMMIT
        if commit.is_dir():
            for name in (WEIGHTS_FILE, OPT_FILE, DATA_FILE, LOSS_FILE, CONFIG_FILE):
                if (commit / name).exists():
                    os.replace(commit / name, path / name)
            shutil.rmtree(commit)
        if (path / _CKPT_NEXT).exists():
            shutil.rmtree(path / _CKPT_NEXT)
    except OSError as exc:
        raise ActivegenError(f"cannot complete the interrupted checkpoint in {path}: {exc}") from None


def read_config(path) -> dict:
    path = Path(path)
    if path.is_dir():
        _recover_checkpoint(path)
    f = path / CONFIG_FILE
    if not f.is_file():
        raise ActivegenError(f"no model in {path}: {CONFIG_FILE} not found (train one first)")
    try:
        cfg = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise ActivegenError(f"{f} is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise ActivegenError(f"{f} is not a model configuration (not a JSON object)")
    missing = [k for k in ("kind", "process", "data", "standardizer", "step") if k not in cfg]
    if missing:
        raise ActivegenError(f"{f} is not a model configuration (missing {', '.join(missing)})")
    proc = cfg["process"]
    bad = [k for k in ("beta", "d_thermal", "d_active", "tau") if not isinstance(proc, dict)
           or isinstance(proc.get(k), bool) or not isinstance(proc.get(k), (int, float))]
    if bad:
        raise ActivegenError(f"{f}: 'process' must give the numbers {', '.join(bad)} "
                             "(the forward process the model was trained for)")
    if not isinstance(cfg["data"], dict) or not isinstance(cfg["data"].get("d"), int):
        raise ActivegenError(f"{f}: 'data' must give the dimension d")
    _verify_checksum(path, cfg)  # before defaults fill in keys
    cfg.setdefault("psi", False)  # models saved before the Ψ head have none
    for k, v in DEFAULTS.items():
        cfg.setdefault(k, v)
    return cfg


def load_state(path, cfg):
    path = Path(path)
    net, opt = skeleton(cfg)
    # the weights are stored in float32; under --x64 the skeleton is float64: read float32
    net = jax.tree.map(lambda a: a.astype(jnp.float32)
                       if eqx.is_array(a) and a.dtype == jnp.float64 else a, net)
    try:
        net = eqx.tree_deserialise_leaves(path / WEIGHTS_FILE, net)
        params = eqx.filter(net, eqx.is_array)
        opt_state = opt.init(params)
        if (path / OPT_FILE).exists():
            opt_state = eqx.tree_deserialise_leaves(path / OPT_FILE, opt_state)
        data = np.load(path / DATA_FILE)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ActivegenError(f"cannot load the model in {path}: {exc}") from None
    return net, opt_state, data
