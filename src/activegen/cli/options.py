"""What the commands share: the help formatter, the argument types (numbers, seeds, lists),
the process, cluster, grid and source options, and the helpers that read them
(`process_from_args`, `one_source`, `protocol_from_args`, ...)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..errors import (
    ActivegenError,
    check_count,
    check_out_file,
    check_positive,
    check_seed,
)


class Formatter(argparse.HelpFormatter):
    """Help with each option's default (where it has one that the help does not already
    state) and "(required)" on required options."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or "default" in text.lower():
            pass
        elif (action.option_strings and action.default is not None
              and action.default is not False and action.default != argparse.SUPPRESS):
            d = action.default
            if isinstance(d, (list, tuple)):
                d = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in d)
            text += f" (default: {str(d).replace('%', '%%')})"
        if action.required:
            text += " (required)"
        return text


class Parser(argparse.ArgumentParser):
    """ArgumentParser with `Formatter` (defaults and "(required)" in --help) for every
    command and subcommand."""

    def __init__(self, *a, **kw):
        kw.setdefault("formatter_class", Formatter)
        super().__init__(*a, **kw)


def status(args, msg: str) -> None:
    """A short status line on stderr for a phase with no progress bar (off with
    --no-progress)."""
    if not getattr(args, "no_progress", False):
        print(f"activegen: {msg}", file=sys.stderr, flush=True)


def note(msg: str) -> None:
    """An explanatory note on stderr (not a warning: nothing is wrong)."""
    print(f"activegen: note: {msg}", file=sys.stderr, flush=True)


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _fields(text: str, what: str) -> list[str]:
    """The comma-separated fields of text; an empty field ("0.1,,0.2", a trailing comma) is
    refused, not skipped."""
    fields = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not f for f in fields):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated {what} with no empty field, got {text!r}")
    return fields


def numbers(text: str) -> list[float]:
    return [number(t) for t in _fields(text, "numbers")]


def positive_numbers(text: str) -> list[float]:
    """Comma-separated finite numbers > 0 (persistence times, mode widths): checked when
    the command line is read, before any work."""
    out = numbers(text)
    bad = [v for v in out if not (math.isfinite(v) and v > 0)]
    if bad:
        raise argparse.ArgumentTypeError(
            f"every value must be a finite number > 0, got {bad[0]:g} in {text!r}")
    return out


def seed(text: str) -> int:
    """Any integer with |seed| < 2**256 (each its own stream: errors.seed_key)."""
    try:
        return check_seed("--seed", int(text))
    except ValueError as exc:  # not an integer, or ActivegenError (out of range)
        raise argparse.ArgumentTypeError(str(exc) if isinstance(exc, ActivegenError)
                                         else f"not an integer: {text!r}") from None


def seed32(text: str) -> int:
    """A seed in [0, 2**32) (commands whose pipelines offset or reuse the seed)."""
    s = seed(text)
    if not 0 <= s < 2**32:
        raise argparse.ArgumentTypeError(f"this command's seed must lie in [0, 2**32), got {s}")
    return s


def seeds32(text: str) -> list[int]:
    return [seed32(t) for t in _fields(text, "seeds")]


def out_file(path: str, suffix: str, flag: str = "--out") -> Path:
    """An output file (checked before any work: suffix, not a directory, writable)."""
    return check_out_file(path, suffix, flag)


def process_from_args(args):
    from ..physics.processes import ActiveOU

    d_active = 1.0 if args.d_active is None else args.d_active
    return ActiveOU(beta=args.beta, d_thermal=args.d_thermal, d_active=d_active, tau=args.tau)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def driver_and_process(args, dim: int):
    """`drivers.driver_and_process` from the command's --driver, --tau, --d-active,
    --speed and rate options."""
    from ..physics.drivers import driver_and_process

    rates = {k: getattr(args, k) for k in ("tumble_rate", "rot_diffusion")}
    return driver_and_process(args.driver, dim, tau=args.tau, d_active=args.d_active,
                              beta=args.beta, d_thermal=args.d_thermal, speed=args.speed,
                              rates=rates, spell=flag)


PROCESS_DEFAULTS = {"d_thermal": 0.0, "beta": 1.0, "t_final": 6.0}


#: --tau's help where it is required with --target and defaults from a --model.
TAU_HELP = ("persistence time τ >= 0 of the self-propulsion (> 0 for the active methods): "
            "required with --target; with --model default the model's τ; not with "
            "--protocol (it carries τ)")


def add_process_options(p: argparse.ArgumentParser, with_tau: bool = True,
                         defaults: bool = True, tau_help: str = TAU_HELP,
                         with_t_final: bool = True):
    """--tau, --d-active, --d-thermal, --beta, --t-final. defaults=False leaves them None
    (so that a command can tell whether they were given, e.g. beside --protocol); then
    `fill_process_defaults` sets them (or, with --model, the model's values)."""
    dflt = PROCESS_DEFAULTS if defaults else dict.fromkeys(PROCESS_DEFAULTS)
    model = "" if defaults else "; with --model the model's"
    if with_tau:
        p.add_argument("--tau", type=number, default=None, help=tau_help)
    p.add_argument("--d-active", type=number, default=None,
                   help=f"active strength D_A > 0 (default 1{model})")
    p.add_argument("--d-thermal", type=number, default=dflt["d_thermal"],
                   help=f"thermal D_T >= 0 (default 0{model})")
    p.add_argument("--beta", type=number, default=dflt["beta"],
                   help=f"trap stiffness β > 0 (default 1{model})")
    if with_t_final:
        p.add_argument("--t-final", type=number, default=dflt["t_final"],
                       help="diffusion time T > 0 (default 6"
                            + ("; with --model the model's t_max)" if model else ")"))


def fill_process_defaults(args):
    for k, v in PROCESS_DEFAULTS.items():
        if getattr(args, k) is None:
            setattr(args, k, v)


def one_source(args, names):
    """Exactly one of the options `names` (e.g. target, protocol, model) is given."""
    given = [n for n in names if getattr(args, n, None) is not None]
    if len(given) != 1:
        flags = " or ".join("--" + n for n in names if hasattr(args, n))
        raise ActivegenError(f"give exactly one of {flags}" +
                             (f" (got {', '.join('--' + g for g in given)})" if given else ""))
    return given[0]


def reject_with_protocol(args, names):
    """Options that a protocol file makes meaningless: it carries β, τ, D_A, D_T, T and the
    method."""
    for n in names:
        v = getattr(args, n, None)
        if v not in (None, False) and not (n == "driver" and v == "ou"):
            raise ActivegenError(
                f"--{n.replace('_', '-')} cannot be used with --protocol: the protocol "
                "carries the method and every process parameter (β, τ, D_A, D_T, T)"
            )


PROCESS_NAMES = ("method", "tau", "d_active", "d_thermal", "beta", "t_final")


def load_model(path, **kw):
    """A learned score model (`learning.model.load_model`)."""
    from ..learning.model import load_model

    return load_model(path, **kw)


def add_grid_options(p: argparse.ArgumentParser):
    from ..lab.grid import DEFAULT_SPACING, DEFAULT_TIME_POINTS

    p.add_argument("--spacing", type=number, default=None,
                   help="spatial grid spacing (default σ_min/4 rounded down to 1, 2 or 5 × 10^k; "
                        f"{DEFAULT_SPACING} for a model); above σ_min/2 a warning (coarse)")
    p.add_argument("--time-points", type=int, default=None,
                   help=f"number of forward times, geometric near t = 0 (default {DEFAULT_TIME_POINTS})")
    p.add_argument("--extent", type=numbers, default=None,
                   help="grid box LO,HI (every axis) or XLO,XHI,YLO,YHI (default: the target's "
                        "4σ extent and 5 sd of the stationary law); it must hold the bulk of "
                        "the data and of the start (below 50 %% refused, below 99 %% a warning); "
                        "write --extent=-4,4 for a negative LO")


def protocol_from_args(args, progress: bool):
    """The Protocol named by --protocol, or exported in memory from --target/--model with
    --method, the process and grid options."""
    from ..lab.export import export_protocol
    from ..lab.grid import DEFAULT_TIME_POINTS
    from ..lab.protocol import load_protocol

    src = one_source(args, ("target", "protocol", "model"))
    if src == "protocol":
        reject_with_protocol(args, PROCESS_NAMES + ("spacing", "time_points", "extent"))
        return load_protocol(args.protocol), None
    if args.method is None:
        raise ActivegenError(f"--method is required with --{src}")
    model = load_model(args.model) if src == "model" else None
    if model is not None:
        model_process_defaults(args, model)
    fill_process_defaults(args)
    args.time_points = DEFAULT_TIME_POINTS if args.time_points is None else args.time_points
    check_positive("--t-final", args.t_final)
    if args.spacing is not None:
        check_positive("--spacing", args.spacing)
    check_count("--time-points", args.time_points)
    if src == "target":
        from ..physics.targets import GaussianMixture

        model = GaussianMixture.load(args.target)
        if args.tau is None:
            raise ActivegenError("--tau is required")
        proc = process_from_args(args)
        source = {"kind": "target", "path": str(args.target), "target": model.to_dict()}
    else:
        proc = process_from_args(args)
        source = {"kind": "model", "path": str(args.model)}
    extent = None
    if args.extent is not None:
        e = args.extent
        if len(e) == 2:
            extent = (e[0], e[1])
        elif len(e) == 2 * model.dim:
            extent = (e[0::2], e[1::2])
        else:
            raise ActivegenError(
                f"--extent takes LO,HI or {model.dim} pairs LO,HI; got {len(e)} numbers")
    x64(args)
    proto = export_protocol(model, args.method, proc, t_final=args.t_final,
                            spacing=args.spacing, time_points=args.time_points, extent=extent,
                            source=source, progress=progress)
    return proto, (model if src == "target" else None)


def model_process_defaults(args, model):
    """Process options not given (None) take a learned model's values: τ, D_A, β, D_T and
    T = the model's t_max (as `sample --model`)."""
    trained = getattr(model, "config", {}).get("process")
    if trained is None:
        return
    for k in ("tau", "d_active", "beta", "d_thermal"):
        if getattr(args, k, None) is None:
            setattr(args, k, trained[k])
    if getattr(args, "t_final", None) is None:
        args.t_final = float(model.config["t_max"])


def is_dir_out(path: str) -> bool:
    """--out DIR/ (ends in a separator, or an existing directory): a shard directory."""
    return path.endswith(("/", "\\")) or Path(path).is_dir()


def cluster_client(args):
    """The Dask client of --workers / --scheduler for this command (or None)."""
    from ..cluster.client import connect

    if getattr(args, "workers", None) is not None:
        check_count("--workers", args.workers)
    return connect(workers=getattr(args, "workers", None),
                   scheduler=getattr(args, "scheduler", None))


def add_cluster_options(p: argparse.ArgumentParser):
    p.add_argument("--workers", type=int, default=None,
                   help="run on a local Dask cluster of N worker processes (docs/distributed.md)")
    p.add_argument("--scheduler", default=None,
                   help="run on the Dask scheduler at ADDRESS (e.g. tcp://host:8786)")


def x64(args):
    if getattr(args, "x64", False):
        import jax

        jax.config.update("jax_enable_x64", True)


def group_help(parser):
    """A command group given without its subcommand (`activegen plot`): print its help."""
    def show(args) -> int:
        parser.print_help()
        return 0
    return show


#: Help texts of options that many commands share.
COMMON_HELP = {
    "seed": "random seed: the same seed gives the same samples",
    "no_progress": "no progress bars and no status lines on stderr",
    "n": "number of particles",
    "tau": "persistence time τ of the self-propulsion",
    "x64": "compute in float64",
    "no_driver_correction": "fox with rtp/abp: leave out the non-Gaussian driver correction",
    "width": "hidden units per layer",
    "depth": "hidden layers",
    "batch": "training batch size",
    "lr": "learning rate (Adam)",
    "fps": "frames per second of the movie",
    "snapshots": "number of snapshot times (with no --times)",
}


def subparsers(parser):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            yield from a.choices.values()


def fill_help(parser):
    """Give every option of every (sub)command without a help text the common one."""
    for a in parser._actions:
        if a.help is None and a.option_strings and a.dest in COMMON_HELP:
            a.help = COMMON_HELP[a.dest]
    for q in subparsers(parser):
        fill_help(q)


def add_source_options(q, with_protocol=True):
    """--target, --model, (--protocol,) --method of a force, the process and grid options:
    what `protocol_from_args` reads (export-potential, plot potential, animate)."""
    from ..samplers import method_names

    q.add_argument("--target", default=None, help="target JSON")
    q.add_argument("--model", default=None, help="learned score model directory")
    if with_protocol:
        q.add_argument("--protocol", default=None, help="PROTOCOL.npz from export-potential")
    q.add_argument("--method", default=None,
                   choices=method_names(where=lambda m: m.force is not None),
                   help="force whose potential is tabulated (with --target/--model)")
    add_process_options(q, defaults=False)
    add_grid_options(q)
    q.add_argument("--x64", action="store_true", help="compute in float64")
    q.add_argument("--no-progress", action="store_true")
