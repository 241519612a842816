"""Command-line interface: `activegen sample | evaluate | train | likelihood | demo |
experiment tau-sweep | validity-map | results | learned-gallery | thermodynamics | digits | plot |
animate | export-potential`."""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

from ..errors import (
    ActivegenError,
    check_count,
    check_out_dir,
    check_out_file,
    check_positive,
    check_seed,
)


class _Formatter(argparse.HelpFormatter):
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


def _status(args, msg: str) -> None:
    """A short status line on stderr for a phase with no progress bar (off with
    --no-progress)."""
    if not getattr(args, "no_progress", False):
        print(f"activegen: {msg}", file=sys.stderr, flush=True)


def _float(text: str) -> float:
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


def _floats(text: str) -> list[float]:
    return [_float(t) for t in _fields(text, "numbers")]


def _positive_floats(text: str) -> list[float]:
    """Comma-separated finite numbers > 0 (persistence times, mode widths): checked when
    the command line is read, before any work."""
    out = _floats(text)
    bad = [v for v in out if not (math.isfinite(v) and v > 0)]
    if bad:
        raise argparse.ArgumentTypeError(
            f"every value must be a finite number > 0, got {bad[0]:g} in {text!r}")
    return out


def _seed(text: str) -> int:
    """Any integer with |seed| < 2**256 (each its own stream: errors.seed_key)."""
    try:
        return check_seed("--seed", int(text))
    except ValueError as exc:  # not an integer, or ActivegenError (out of range)
        raise argparse.ArgumentTypeError(str(exc) if isinstance(exc, ActivegenError)
                                         else f"not an integer: {text!r}") from None


def _seed32(text: str) -> int:
    """A seed in [0, 2**32) (commands whose pipelines offset or reuse the seed)."""
    s = _seed(text)
    if not 0 <= s < 2**32:
        raise argparse.ArgumentTypeError(f"this command's seed must lie in [0, 2**32), got {s}")
    return s


def _seeds32(text: str) -> list[int]:
    return [_seed32(t) for t in _fields(text, "seeds")]


def _out_file(path: str, suffix: str, flag: str = "--out") -> Path:
    """An output file (checked before any work: suffix, not a directory, writable)."""
    return check_out_file(path, suffix, flag)


def _process(args):
    from ..physics.processes import ActiveOU

    d_active = 1.0 if args.d_active is None else args.d_active
    return ActiveOU(beta=args.beta, d_thermal=args.d_thermal, d_active=d_active, tau=args.tau)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _driver_and_process(args, dim: int):
    """`drivers.driver_and_process` from the command's --driver, --tau, --d-active,
    --speed and rate options."""
    from ..physics.drivers import driver_and_process

    rates = {k: getattr(args, k) for k in ("tumble_rate", "rot_diffusion")}
    return driver_and_process(args.driver, dim, tau=args.tau, d_active=args.d_active,
                              beta=args.beta, d_thermal=args.d_thermal, speed=args.speed,
                              rates=rates, spell=_flag)


_PROCESS_DEFAULTS = {"d_thermal": 0.0, "beta": 1.0, "t_final": 6.0}


#: --tau's help where it is required with --target and defaults from a --model.
TAU_HELP = ("persistence time τ >= 0 of the self-propulsion (> 0 for the active methods): "
            "required with --target; with --model default the model's τ; not with "
            "--protocol (it carries τ)")


def _add_process_options(p: argparse.ArgumentParser, with_tau: bool = True,
                         defaults: bool = True, tau_help: str = TAU_HELP,
                         with_t_final: bool = True):
    """--tau, --d-active, --d-thermal, --beta, --t-final. defaults=False leaves them None
    (so that a command can tell whether they were given, e.g. beside --protocol); then
    `_fill_process_defaults` sets them (or, with --model, the model's values)."""
    dflt = _PROCESS_DEFAULTS if defaults else dict.fromkeys(_PROCESS_DEFAULTS)
    model = "" if defaults else "; with --model the model's"
    if with_tau:
        p.add_argument("--tau", type=_float, default=None, help=tau_help)
    p.add_argument("--d-active", type=_float, default=None,
                   help=f"active strength D_A > 0 (default 1{model})")
    p.add_argument("--d-thermal", type=_float, default=dflt["d_thermal"],
                   help=f"thermal D_T >= 0 (default 0{model})")
    p.add_argument("--beta", type=_float, default=dflt["beta"],
                   help=f"trap stiffness β > 0 (default 1{model})")
    if with_t_final:
        p.add_argument("--t-final", type=_float, default=dflt["t_final"],
                       help="diffusion time T > 0 (default 6"
                            + ("; with --model the model's t_max)" if model else ")"))


def _fill_process_defaults(args):
    for k, v in _PROCESS_DEFAULTS.items():
        if getattr(args, k) is None:
            setattr(args, k, v)


def _one_source(args, names):
    """Exactly one of the options `names` (e.g. target, protocol, model) is given."""
    given = [n for n in names if getattr(args, n, None) is not None]
    if len(given) != 1:
        flags = " or ".join("--" + n for n in names if hasattr(args, n))
        raise ActivegenError(f"give exactly one of {flags}" +
                             (f" (got {', '.join('--' + g for g in given)})" if given else ""))
    return given[0]


def _reject_with_protocol(args, names):
    """Options that a protocol file makes meaningless: it carries β, τ, D_A, D_T, T and the
    method."""
    for n in names:
        v = getattr(args, n, None)
        if v not in (None, False) and not (n == "driver" and v == "ou"):
            raise ActivegenError(
                f"--{n.replace('_', '-')} cannot be used with --protocol: the protocol "
                "carries the method and every process parameter (β, τ, D_A, D_T, T)"
            )


_PROCESS_NAMES = ("method", "tau", "d_active", "d_thermal", "beta", "t_final")


def _load_model(path, **kw):
    """A learned score model (`activegen.learned.load_model`)."""
    from ..learning.model import load_model

    return load_model(path, **kw)


def _add_grid_options(p: argparse.ArgumentParser):
    from ..lab.protocol import DEFAULT_SPACING, DEFAULT_TIME_POINTS

    p.add_argument("--spacing", type=_float, default=None,
                   help="spatial grid spacing (default σ_min/4 rounded down to 1, 2 or 5 × 10^k; "
                        f"{DEFAULT_SPACING} for a model); above σ_min/2 a warning (coarse)")
    p.add_argument("--time-points", type=int, default=None,
                   help=f"number of forward times, geometric near t = 0 (default {DEFAULT_TIME_POINTS})")
    p.add_argument("--extent", type=_floats, default=None,
                   help="grid box LO,HI (every axis) or XLO,XHI,YLO,YHI (default: the target's "
                        "4σ extent and 5 sd of the stationary law); it must hold the bulk of "
                        "the data and of the start (below 50 %% refused, below 99 %% a warning); "
                        "write --extent=-4,4 for a negative LO")


def _protocol_from_args(args, progress: bool):
    """The Protocol named by --protocol, or exported in memory from --target/--model with
    --method, the process and grid options."""
    from ..lab.protocol import DEFAULT_TIME_POINTS, export_protocol, load_protocol

    src = _one_source(args, ("target", "protocol", "model"))
    if src == "protocol":
        _reject_with_protocol(args, _PROCESS_NAMES + ("spacing", "time_points", "extent"))
        return load_protocol(args.protocol), None
    if args.method is None:
        raise ActivegenError(f"--method is required with --{src}")
    model = _load_model(args.model) if src == "model" else None
    if model is not None:
        _model_process_defaults(args, model)
    _fill_process_defaults(args)
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
        proc = _process(args)
        source = {"kind": "target", "path": str(args.target), "target": model.to_dict()}
    else:
        proc = _process(args)
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
    _x64(args)
    proto = export_protocol(model, args.method, proc, t_final=args.t_final,
                            spacing=args.spacing, time_points=args.time_points, extent=extent,
                            source=source, progress=progress)
    return proto, (model if src == "target" else None)


def _model_process_defaults(args, model):
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


def _is_dir_out(path: str) -> bool:
    """--out DIR/ (ends in a separator, or an existing directory): a shard directory."""
    return path.endswith(("/", "\\")) or Path(path).is_dir()


def _cluster(args):
    """The Dask client of --workers / --scheduler for this command (or None)."""
    from ..cluster.client import connect

    if getattr(args, "workers", None) is not None:
        check_count("--workers", args.workers)
    return connect(workers=getattr(args, "workers", None),
                   scheduler=getattr(args, "scheduler", None))


def _add_cluster_options(p: argparse.ArgumentParser):
    p.add_argument("--workers", type=int, default=None,
                   help="run on a local Dask cluster of N worker processes (docs/distributed.md)")
    p.add_argument("--scheduler", default=None,
                   help="run on the Dask scheduler at ADDRESS (e.g. tcp://host:8786)")


def cmd_evaluate(args) -> int:
    """Metrics of a samples file or shard directory against its target."""
    from ..files import load_samples
    from ..analysis.metrics import evaluate
    from ..physics.targets import GaussianMixture

    if args.subsample is not None:
        check_count("--subsample", args.subsample)
    samples, tjson, info = load_samples(args.input, subsample=args.subsample, seed=args.seed)
    if args.target is not None:
        target = GaussianMixture.load(args.target)
    elif tjson is not None:
        target = GaussianMixture.from_dict(json.loads(tjson))
    else:
        raise ActivegenError(f"{args.input} names no target: give --target")
    if samples.ndim != 2 or samples.shape[1] != target.dim:
        raise ActivegenError(f"the samples have d = {samples.shape[-1]} but the target "
                             f"d = {target.dim}")
    ev = evaluate(samples, target, seed=args.seed)
    m, f = ev["metrics"], ev["floor"]
    print(f"{info.get('method', 'samples')}: {len(samples)} samples"
          + (f" of {info['n']}" if info.get("n", len(samples)) != len(samples) else "")
          + "; " + ", ".join(f"{k} {_metric_text(v)} (floor {_metric_text(f[k])})" if k in f
                             else f"{k} {_metric_text(v)}" for k, v in m.items()))
    return 0


def _metric_text(v) -> str:
    """A metric for `evaluate`'s line: a number as 0.1234; a per-coordinate list as
    [0.1234, 0.0567] (d <= 8) or its mean and largest entry (d > 8)."""
    if isinstance(v, (list, tuple)):
        if len(v) <= 8:
            return "[" + ", ".join(f"{x:.4f}" for x in v) + "]"
        i = max(range(len(v)), key=lambda j: v[j])
        return f"mean {sum(v) / len(v):.4f}, max {v[i]:.4f} (coordinate {i}) of {len(v)}"
    return f"{v:.4f}"


def cmd_sample(args) -> int:
    import numpy as np

    from ..samplers import sample
    from ..physics.targets import GaussianMixture

    shards = _is_dir_out(args.out)
    out = check_out_dir(args.out) if shards else _out_file(args.out, ".npz")
    src = _one_source(args, ("target", "protocol", "model"))
    on_cluster = args.workers is not None or args.scheduler is not None
    if on_cluster and src != "target":
        raise ActivegenError(f"--workers / --scheduler sample a --target, not a --{src} "
                             "(docs/distributed.md)")
    if shards and not on_cluster:
        if Path(args.out).is_dir() and not str(args.out).endswith("/"):
            raise ActivegenError(f"--out {args.out} is an existing directory: give a .npz "
                                 "file (or DIR/ with --workers N or --scheduler ADDRESS)")
        raise ActivegenError("--out DIR/ (shards written by the workers) needs --workers N "
                             "or --scheduler ADDRESS")
    if src == "protocol":
        return _sample_protocol(args, out)
    if args.method is None:
        raise ActivegenError(f"--method is required with --{src}")
    if src == "model":
        target = _load_model_for_sampling(args)
        _fill_process_defaults(args)
    else:
        _fill_process_defaults(args)
        target = GaussianMixture.load(args.target)
    driver, proc = _driver_and_process(args, target.dim)
    check_positive("--t-final", args.t_final)
    check_count("--n", args.n)
    if args.dt is not None:
        check_positive("--dt", args.dt)
    _x64(args)
    from ..files import save_samples

    options = {k: getattr(args, k) for k in ("tau_min", "t_ramp", "scheme")
               if getattr(args, k) is not None}
    if args.block_size is not None:
        options["block_size"] = check_count("--block-size", args.block_size)
    if args.task_blocks is not None:
        options["task_blocks"] = check_count("--task-blocks", args.task_blocks)
    if args.tabulate:
        res = _sample_tabulated(args, target, proc, on_cluster)
    else:
        with _cluster(args) as client:
            res = sample(target, args.method, proc, args.n, seed=args.seed,
                         t_final=args.t_final, dt=args.dt, save_every=args.save_every,
                         progress=not args.no_progress, chunk_size=args.chunk_size,
                         driver=driver, driver_correction=not args.no_driver_correction,
                         client=client, energetics=args.energetics, t_min=args.t_min or 0.0,
                         shards=out if shards else None, **options)
    if shards:
        print(f"wrote {args.n} samples (d = {target.dim}) as {res.info['tasks']} shards and "
              f"{out / 'index.json'}")
        return 0
    to_data = target.to_data if args.model is not None else None
    meta = {}
    if args.model is not None:  # the training data, for `plot samples`
        meta["reference"] = target.training_data(20_000)
        print(target.units_line(), file=sys.stderr)
        frac, msg = target.range_report(target.to_data(res.samples))
        if frac is not None:
            res.info["out_of_range"] = frac
        if msg:
            print(f"activegen: warning: {msg}", file=sys.stderr)
    save_samples(out, res, seed=args.seed, to_data=to_data, target=json.dumps(target.to_dict()),
                 **meta)
    print(f"wrote {res.samples.shape[0]} samples (d = {res.samples.shape[1]}) to {out}")
    return 0


def _sample_tabulated(args, target, proc, on_cluster):
    """`sample --tabulate`: the method's force tabulated once on a grid (activegen.tabulated)."""
    from ..lab.tabulated import sample_tabulated

    for name, bad in (("workers / --scheduler", on_cluster), ("t-min", args.t_min is not None),
                      ("chunk-size", args.chunk_size is not None),
                      ("block-size", args.block_size is not None),
                      ("driver", args.driver != "ou")):
        if bad:
            raise ActivegenError(f"--{name} cannot be used with --tabulate")
    if args.spacing is not None:
        check_positive("--spacing", args.spacing)
    kw = {} if args.time_points is None else {"time_points": check_count("--time-points",
                                                                          args.time_points)}
    return sample_tabulated(target, args.method, proc, args.n, seed=args.seed,
                            t_final=args.t_final, dt=args.dt, spacing=args.spacing,
                            save_every=args.save_every, progress=not args.no_progress,
                            energetics=args.energetics, scheme=args.scheme, **kw)


def _sample_protocol(args, out) -> int:
    """`sample --protocol`: replay an exported protocol (no target or score involved)."""
    import numpy as np

    from ..lab.protocol import load_protocol, replay

    _reject_with_protocol(args, _PROCESS_NAMES + (
        "driver", "speed", "tumble_rate", "rot_diffusion", "no_driver_correction", "t_min",
        "tabulate", "spacing", "time_points"))
    proto = load_protocol(args.protocol)
    check_count("--n", args.n)
    if args.dt is not None:
        check_positive("--dt", args.dt)
    _x64(args)
    res = replay(proto, args.n, seed=args.seed, dt=args.dt, save_every=args.save_every,
                 progress=not args.no_progress, energetics=args.energetics,
                 scheme=args.scheme)
    from ..files import save_samples

    src = proto.meta.get("source", {})
    meta = {"protocol": str(args.protocol)}
    if "target" in src:
        meta["target"] = json.dumps(src["target"])
    save_samples(out, res, seed=args.seed, **meta)
    print(f"replayed {args.protocol} ({proto.meta['method']}, τ = {proto.meta['tau']:g}): "
          f"wrote {res.samples.shape[0]} samples (d = {res.samples.shape[1]}) to {out}")
    return 0


def cmd_export_potential(args) -> int:
    from ..lab.protocol import save_protocol

    out = _out_file(args.out, ".npz")
    proto, _ = _protocol_from_args(args, progress=not args.no_progress)
    npz, side = save_protocol(proto, out)
    g = proto.meta["grid"]
    print(f"wrote {npz} and {side}: {proto.meta['method']} potential on "
          f"{'×'.join(map(str, g['shape']))} points (spacing {g['spacing'][0]:g}) × "
          f"{len(proto.times)} times in [0, {proto.t_final:g}]")
    return 0


def cmd_plot(args) -> int:
    from ..figures import potential as plots

    out = _out_file(args.out, ".png")
    if args.what == "samples":
        from ..physics.targets import GaussianMixture

        from ..files import load_reference, load_samples

        if args.subsample is not None:
            check_count("--subsample", args.subsample)
        samples, tjson, info = load_samples(args.input, subsample=args.subsample,
                                            seed=args.seed)
        reference = load_reference(args.input) if Path(args.input).is_file() else None
        if args.target is not None:
            target = GaussianMixture.load(args.target)
        else:  # None for the output of sample --model: its training data are the reference
            target = plots.target_from_record(None if tjson is None else json.loads(tjson))
        title = _method_title(info) + (
            f", τ = {info['tau']:g}" if "tau" in info else "") + f", N = {len(samples)}"
        if target is not None and not args.no_metrics:
            from ..analysis.metrics import evaluate

            _status(args, f"W1 of {len(samples)} samples against exact samples of the target "
                    "(--no-metrics to skip)")
            ev = evaluate(samples, target, seed=args.seed)
            title += (f"\n{'sliced ' if samples.shape[1] > 1 else ''}W1 "
                      f"{ev['metrics']['w1']:.3f} (floor {ev['floor']['w1']:.3f})")
            print(f"{'sliced ' if samples.shape[1] > 1 else ''}W1 {ev['metrics']['w1']:.4f} "
                  f"(finite-sample floor {ev['floor']['w1']:.4f})")
        elif reference is not None and not args.no_metrics:
            from ..analysis.metrics import w1

            sliced = "sliced " if samples.shape[1] > 1 else ""
            d1 = w1(samples, reference)
            floor = plots.reference_floor(reference, len(samples), seed=args.seed)
            title += f"\n{sliced}W1 to the training data {d1:.3f} (floor {floor:.3f})"
            print(f"{sliced}W1 to the training data {d1:.4f} (floor {floor:.4f}: between "
                  f"disjoint parts of the {len(reference)} training points)")
        record = {} if tjson is None else json.loads(tjson)
        shape = (record.get("data") or {}).get("image_shape")
        _status(args, f"drawing {out}")
        plots.plot_samples(samples, out, target=target, title=title, reference=reference,
                           image_shape=shape)
    elif args.what == "potential":
        _check_snapshot_times(args, plots.MAX_SNAPSHOTS)
        proto, target = _protocol_from_args(args, progress=not args.no_progress)
        if target is None and "target" in proto.meta.get("source", {}):
            from ..physics.targets import GaussianMixture

            target = GaussianMixture.from_dict(proto.meta["source"]["target"])
        plots.plot_potential(proto, out, times=args.times, n_snapshots=args.snapshots,
                             target=target)
        _note(plots.FIRST_ORDER_NOTE)
    else:
        plots.plot_sweep_file(args.input, out)
    print(f"wrote {out}")
    return 0


def _method_title(info: dict) -> str:
    """The method's name as the user asked for it (an alias such as refined, with the
    method it names: "refined (fox-sc)")."""
    m = info.get("method", "samples")
    asked = info.get("method_requested")
    return f"{asked} ({m})" if asked and asked != m else str(m)


def _note(msg: str) -> None:
    """An explanatory note on stderr (not a warning: nothing is wrong)."""
    print(f"activegen: note: {msg}", file=sys.stderr, flush=True)


def _check_snapshot_times(args, most: int) -> None:
    """plot potential: --snapshots in [1, most]; --times finite, >= 0, at most `most` of them
    (checked before any work; their upper bound T once the protocol is known)."""
    if args.times is None:
        check_count("--snapshots", args.snapshots)
        if args.snapshots > most:
            raise ActivegenError(f"--snapshots must lie in [1, {most}], got {args.snapshots}")
        return
    if len(args.times) > most:
        raise ActivegenError(f"--times takes 1 to {most} times, got {len(args.times)}")
    bad = [t for t in args.times if not (math.isfinite(t) and t >= 0)]
    if bad:
        raise ActivegenError(f"--times must be finite forward times in [0, T], got {bad[0]:g}")


def cmd_animate(args) -> int:
    import math

    from ..figures import potential as plots
    from ..lab.protocol import replay

    out = Path(args.out)
    check_count("--fps", args.fps)
    plots.movie_writer(out, args.fps)  # refuses a bad suffix, or MP4 without ffmpeg
    _out_file(args.out, out.suffix)
    if args.still is not None:
        _out_file(args.still, ".png", "--still")
    check_count("--n", args.n)
    if args.n > 5000:
        raise ActivegenError(f"--n: an animation shows at most 5000 particles, got {args.n}")
    check_count("--frames", args.frames)
    if not 2 <= args.frames <= plots.MAX_FRAMES:
        raise ActivegenError(f"--frames must lie in [2, {plots.MAX_FRAMES}], got {args.frames}")
    if args.still_frame is not None and not 0 <= args.still_frame < args.frames:
        raise ActivegenError(f"--still-frame must lie in [0, {args.frames - 1}], got {args.still_frame}")
    if args.dt is not None:
        check_positive("--dt", args.dt)
    proto, target = _protocol_from_args(args, progress=not args.no_progress)
    if target is None and "target" in proto.meta.get("source", {}):
        from ..physics.targets import GaussianMixture

        target = GaussianMixture.from_dict(proto.meta["source"]["target"])
    # save often enough to resolve the frames' finest spacing (near t = 0)
    from ..samplers.schemes import active_heun_default_dt

    dt = args.dt or active_heun_default_dt(proto.process.tau)  # the replay's default (heun)
    steps = math.ceil(proto.t_final / dt - 1e-9)  # the replay's steps (StepGrid.from_dt)
    if steps + 1 < args.frames:  # fewer saved times than frames asked for
        if args.dt is not None:
            raise ActivegenError(
                f"--frames must lie in [2, {steps + 1}] with --dt {args.dt:g} (the replay has "
                f"{steps + 1} distinct times); give a smaller --dt for {args.frames} frames")
        dt = proto.t_final / args.frames  # the default step, refined to give every frame
        steps = args.frames
    # save often enough to resolve the frames' finest spacing (near t = 0); where it is
    # finer than the step, consecutive saved steps (animation_frames: distinct frames)
    t0 = plots.protocol_t0(proto)
    finest = t0 * math.log1p(proto.t_final / t0) / max(1, args.frames - 1)
    every = max(1, int(finest / dt))
    res = replay(proto, args.n, seed=args.seed, dt=dt, save_every=every,
                 progress=not args.no_progress)
    idx = plots.animation_frames(res.times, proto.t_final, args.frames, t0)
    r = plots.animate(proto, res.trajectory[idx], res.times[idx], out, fps=args.fps,
                      target=target, still=args.still, still_index=args.still_frame,
                      progress=not args.no_progress)
    _note(plots.FIRST_ORDER_NOTE)
    why = "" if r["frames"] == args.frames else (
        f"; {args.frames} asked for, but the replay saved only {len(res.times)} distinct "
        "times: a smaller --dt gives more")
    print(f"wrote {out} ({r['frames']} frames{why})"
          + (f" and {r['still']}" if r["still"] else ""))
    return 0


def _load_model_for_sampling(args):
    """The learned model of --model; process options not given default to the model's (those
    given are checked against the model by the sampler)."""
    if args.hutchinson is not None and args.hutchinson < 0:
        raise ActivegenError(f"--hutchinson must be >= 0, got {args.hutchinson}")
    model = _load_model(args.model, hutchinson=args.hutchinson)
    trained = model.config["process"]
    if args.tau is None and args.speed is None:
        args.tau = trained["tau"]
    if args.d_active is None and args.speed is None:
        args.d_active = trained["d_active"]
    for k in ("beta", "d_thermal"):
        if getattr(args, k) is None:
            setattr(args, k, trained[k])
    if args.t_final is None:
        args.t_final = model.config["t_max"]
    return model


def cmd_train(args) -> int:
    from ..learning.model import train

    out = check_out_dir(args.out)
    if args.resume:
        opts = {} if args.steps is None else {"steps": check_count("--steps", args.steps)}
        model, rep = train(None, out, process=_resume_process(args, out), resume=True,
                           progress=not args.no_progress, **opts)
    else:
        from ..learning.datasets import load_data

        if args.data is None:
            raise ActivegenError("--data is required (a built-in set, image:PATH.png, .npy or .csv)")
        if args.tau is None:
            raise ActivegenError("--tau is required")
        from ..learning.model import data_defaults

        if args.data == "digits" and args.standardize:
            raise ActivegenError(
                "--standardize does not apply to --data digits: the pixels are already in "
                "the diffusion-model scale x/8 - 1 in [-1, 1], and tau, D_A act on that scale")
        proc = _process(args)
        x = load_data(args.data, n=check_count("--n-data", args.n_data), seed=args.seed)
        given = dict(width=args.width, depth=args.depth, batch=args.batch, lr=args.lr,
                     n_fourier=args.n_fourier, t_max=args.t_max, steps=args.steps)
        dflt = data_defaults(args.data)
        opts = {k: dflt[k] if v is None else v for k, v in given.items()}
        check_positive("--t-max", opts["t_max"])
        opts.update(kind=args.kind, marginal="joint" if args.joint else "x", seed=args.seed)
        model, rep = train(x, out, process=proc, progress=not args.no_progress,
                           source=args.data, standardize=args.standardize, **opts)
    print(f"trained {rep['steps']} steps in {rep['seconds']:.1f} s ({rep['n_params']} parameters, "
          f"last loss {rep['last_loss']:.4f}); model in {out}, loss log {out / 'loss.csv'}")
    return 0


#: what `train --resume` takes besides --out: the new total --steps, and process options,
#: which must match the model's (its data, network and training settings are stored)
_RESUME_TAKES = {"out", "resume", "steps", "no_progress", "tau", "d_active", "d_thermal",
                 "beta", "command", "func"}
_RESUME_PROCESS = ("tau", "d_active", "d_thermal", "beta")


def _given(args) -> set[str] | None:
    """The dests of the options given on the command line (not left at their defaults):
    the command line parsed again with every default suppressed; None when args did not
    come from `main` (no command line recorded)."""
    argv = getattr(args, "_argv", None)
    if argv is None:
        return None
    parser = build_parser()

    def suppress(p):
        p._defaults.clear()  # set_defaults(func=...)
        for a in p._actions:
            if a.option_strings:
                a.default = argparse.SUPPRESS
        for q in _subparsers(p):
            suppress(q)

    suppress(parser)
    return set(vars(parser.parse_args(argv)))


def _resume_process(args, out):
    """`train --resume`: refuse the options it cannot honour (the model keeps its data,
    network and training settings), and the process of the process options given, the
    others the model's (None when none is given): `train` refuses a mismatch."""
    given = _given(args)
    if given is None:  # no command line: what differs from the parser's defaults
        given = {k for k, v in vars(args).items() if v not in (None, False)}
        given -= {"seed", "kind", "n_data", "d_thermal", "beta"}
    bad = sorted(given - _RESUME_TAKES)
    if bad:
        raise ActivegenError(
            f"{', '.join(_flag(b) for b in bad)} cannot be used with --resume: it continues "
            f"the model in {out} with its stored data, network and training settings (it "
            "takes --steps, the new total, and --tau, --d-active, --d-thermal, --beta, which "
            "must match the model's)")
    asked = {k: getattr(args, k) for k in _RESUME_PROCESS if k in given}
    if not asked:
        return None
    try:
        stored = json.loads((Path(out) / "config.json").read_text())["process"]
        values = {k: float(asked.get(k, stored[k])) for k in _RESUME_PROCESS}
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no readable model there: `train` says why
    from ..physics.processes import ActiveOU

    return ActiveOU(**values)


def cmd_demo(args) -> int:
    from ..studies.tau_sweep import demo

    check_out_dir(args.out)
    check_count("--n", args.n)
    check_positive("--tau", args.tau)
    _status(args, f"demo: 4 methods × {args.n} particles at τ = {args.tau:g} "
            "(about half a minute on 2 cores)")
    png, js, rep = demo(args.out, n=args.n, tau=args.tau, seed=args.seed,
                        progress=not args.no_progress, log=lambda msg: _status(args, msg))
    warned = {}
    for m, r in rep["methods"].items():
        tg = r["info"].get("tau_grad_force")
        first = [w for w in r["warnings"] if "tau*|grad F|" in w]
        if first:
            warned[m] = first[0]
        print(f"{m:8s} sliced W1 {r['metrics']['w1']:.4f} (floor {r['floor']['w1']:.4f})   "
              f"hist KL {r['metrics']['hist_kl']:.4f} (floor {r['floor']['hist_kl']:.4f})"
              + ("" if tg is None else f"   τ‖∇F‖ {tg:.3f}")
              + (" (first-order warning)" if first else ""))
    if warned:
        m0 = next(iter(warned))
        print(f"first-order warning for {', '.join(warned)} (τ‖∇F‖ above "
              f"{rep['validity_threshold']:g}; {m0}: {warned[m0]})")
    print(f"figure: {png}\nreport: {js}")
    return 0


def _sweep_target(args):
    from ..physics.targets import GaussianMixture, default_target_1d, default_target_2d

    if args.target and args.dim is not None:
        raise ActivegenError("give --target or --dim, not both")
    if args.target:
        return GaussianMixture.load(args.target)
    return default_target_2d() if args.dim == 2 else default_target_1d()


def cmd_tau_sweep(args) -> int:
    from ..studies.tau_sweep import run_tau_sweep

    out = check_out_dir(args.out)
    target = _sweep_target(args)
    _x64(args)
    out = Path(args.out)
    with _cluster(args) as client:
        _, md = run_tau_sweep(
            target, out, args.taus, args.methods, args.n, args.seeds or [args.seed],
            beta=args.beta, d_active=1.0 if args.d_active is None else args.d_active,
            d_thermal=args.d_thermal, t_final=args.t_final, driver=args.driver,
            driver_correction=not args.no_driver_correction, progress=not args.no_progress,
            client=client)
    print(md)
    print(f"wrote {out / 'tau_sweep.md'}, {out / 'tau_sweep.json'}, {out / 'tau_sweep.png'} "
          f"and {out / 'tau_sweep_densities.png'}")
    return 0


def cmd_validity_map(args) -> int:
    from ..studies.tau_sweep import run_validity_map

    out = check_out_dir(args.out)
    with _cluster(args) as client:
        _, md = run_validity_map(out, args.taus, args.sigmas, n=args.vm_n, seed=args.seed,
                                 t_final=args.vm_t_final, client=client)
    print(md)
    print(f"wrote {out / 'validity_map.md'}, {out / 'validity_map.json'} and "
          f"{out / 'validity_map.png'}")
    return 0


def cmd_results(args) -> int:
    """The results page's data: the default 1D and 2D τ sweeps and the validity map."""
    from ..studies.tau_sweep import run_results

    check_out_dir(args.out)
    with _cluster(args) as client:
        run_results(args.out, methods=args.methods, taus_1d=args.taus_1d,
                    taus_2d=args.taus_2d, n=args.n, n_2d=args.n_2d, vm_n=args.vm_n,
                    vm_taus=args.taus, vm_sigmas=args.sigmas, seed=args.seed, beta=args.beta,
                    d_active=1.0 if args.d_active is None else args.d_active,
                    d_thermal=args.d_thermal, t_final=args.t_final,
                    progress=not args.no_progress, client=client)
    return 0


def cmd_learned_gallery(args) -> int:
    from ..studies.learned_gallery import run

    check_out_dir(args.out)
    check_count("--steps", args.steps)
    check_count("--n", args.n)
    check_positive("--tau", args.tau)
    bad = sorted(set(args.parts) - {"hutchinson", "mixture", "gallery"})
    if bad:
        raise ActivegenError(f"--parts: unknown {bad}; choose from hutchinson, mixture, gallery")
    check_positive("--t-final", args.t_final)
    run(args.out, steps=args.steps, n=args.n, tau=args.tau, seed=args.seed,
        progress=not args.no_progress, parts=args.parts, t_final=args.t_final)
    print(f"wrote {Path(args.out) / f'learned_gallery_tau{args.tau:g}.png'} and "
          f"{Path(args.out) / 'learned_results.json'}")
    return 0


def cmd_digits(args) -> int:
    from ..studies.digits import run_digits

    check_out_dir(args.out)
    if args.dt is not None:
        check_positive("--dt", args.dt)
    if args.t_min is not None:
        check_positive("--t-min", args.t_min)
    res = run_digits(args.out, taus=args.taus, methods=args.methods, n=args.n, seed=args.seed,
                     dt=args.dt, train_steps=args.train_steps,
                     scheme=args.scheme,
                     t_min=args.t_min or 0.0,
                     log=None if args.no_progress else (lambda m: _status(args, m)))
    print(f"{len(res['cells'])} runs; wrote {Path(args.out) / 'digits.md'}, "
          f"{Path(args.out) / 'digits.json'} and the image grids")
    return 0


def cmd_likelihood(args) -> int:
    import numpy as np

    from ..analysis.likelihood import check_tolerance, load_data, log_likelihood
    from ..physics.targets import GaussianMixture

    out = _out_file(args.out, ".npz")
    src = _one_source(args, ("target", "model"))
    _x64(args)
    import jax.numpy as jnp

    check_tolerance("--rtol", args.rtol, jnp.result_type(float))  # before any work
    if args.probes is not None:
        check_count("--probes", args.probes)
    kw = {}
    if src == "model":
        model = _load_model(args.model)
        if args.t_final is None:
            args.t_final = float(model.config["t_max"])
        _fill_process_defaults(args)
        if args.tau is None:
            args.tau = float(model.config["process"]["tau"])
        proc = _process(args)
        model.check_process(proc)
        if args.t_final > model.config["t_max"] * (1 + 1e-9):
            raise ActivegenError(f"--t-final must be <= the model's t_max = "
                                 f"{model.config['t_max']:g}, got {args.t_final:g}")
        data = model.from_data(load_data(args.data, model.dim))
        kw = dict(t_start=float(model.config["t_min"]),
                  log_scale=model.dim * float(np.log(model.standardizer.scale)))
    else:
        _fill_process_defaults(args)
        model = GaussianMixture.load(args.target)
        if args.tau is None:
            raise ActivegenError("--tau is required with --target")
        proc = _process(args)
        data = load_data(args.data, model.dim)
    r = log_likelihood(model, proc, data, t_final=args.t_final, rtol=args.rtol,
                       atol=args.rtol, probes=args.probes, seed=args.seed, **kw)
    from ..files import atomic_path

    with atomic_path(out) as tmp:
        np.savez(tmp, log_prob=r["log_prob"], nll_per_dim=r["nll_per_dim"],
                 ode_steps=r["ode_steps"], probes=r["probes"])
    from ..analysis.likelihood import IMAGE_DATA, bits_per_dim

    bits = ""
    if args.data in IMAGE_DATA:
        bits = f", {bits_per_dim(r['nll_per_dim'], IMAGE_DATA[args.data][1]):.4f} bits/dim"
    print(f"mean NLL = {r['nll_per_dim']:.4f} nats/dim{bits} over {len(data)} points "
          f"(d = {data.shape[1]}, {r['ode_steps']} ODE steps"
          + (f", Hutchinson {r['probes']} probes" if r["probes"] else ", exact divergence")
          + f"); wrote {out}")
    return 0


def cmd_thermodynamics(args) -> int:
    from ..studies.thermodynamics import run_thermodynamics

    run_thermodynamics(args.out, taus=args.taus, n=args.n, seed=args.seed,
                       progress=not args.no_progress, echo=print)
    return 0


def _x64(args):
    if getattr(args, "x64", False):
        import jax

        jax.config.update("jax_enable_x64", True)


def build_parser() -> argparse.ArgumentParser:
    from ..physics.drivers import DRIVERS
    from ..samplers import method_names
    from ..samplers.schemes import SCHEMES

    from importlib.metadata import PackageNotFoundError, version

    try:
        __version__ = version("activegen")
    except PackageNotFoundError:  # run from a source tree that is not installed
        __version__ = "unknown"

    ap = _Parser(
        prog="activegen",
        description="Generative diffusion driven by active matter: a persistent (active) "
        "particle in a time-dependent potential generates samples of a data distribution.",
        epilog="Run `activegen demo` for a first result (about half a minute), `activegen "
        "COMMAND --help` for a command's options. Without a command activegen prints this "
        "help and exits with status 0. Docs: README.md, docs/theory.md.",
    )
    ap.add_argument("--version", action="version", version=f"activegen {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("sample", help="generate samples of a Gaussian-mixture target or a "
                       "learned model, or replay an exported protocol")
    s.add_argument("--target", default=None, help="target JSON: weights, means, stds|covs")
    s.add_argument("--model", default=None,
                   help="a learned model folder (activegen train) instead of --target")
    s.add_argument("--hutchinson", type=int, default=None,
                   help="--model: estimate grad(div S) with K random probes (0: exact)")
    s.add_argument("--protocol", default=None,
                   help="PROTOCOL.npz from export-potential: replay it (no target, method or "
                        "process options: the protocol carries them)")
    s.add_argument("--method", default=None, choices=method_names(),
                   help="required with --target/--model")
    _add_process_options(s, defaults=False, tau_help=TAU_HELP.replace(
        "required with --target;", "required with --target (or, with --driver rtp/abp, "
        "--speed and the rate);"))
    s.add_argument("--driver", choices=tuple(DRIVERS), default="ou",
                   help="self-propulsion for fox/ucn/naive: active OU, run-and-tumble, active Brownian")
    s.add_argument("--speed", type=_float, default=None, help="rtp/abp swim speed v0")
    s.add_argument("--tumble-rate", type=_float, default=None, help="rtp tumble rate α (τ = 1/α)")
    s.add_argument("--rot-diffusion", type=_float, default=None, help="abp rotational diffusion D_r")
    s.add_argument("--no-driver-correction", action="store_true",
                   help="fox with rtp/abp: leave out the non-Gaussian driver correction")
    s.add_argument("--tau-min", type=_float, default=None,
                   help="--method fox-schedule only: persistence time τ_min in (0, --tau] at "
                        "the end of generation (default automatic: min(τ, ε σ_min²/(2D)), "
                        "docs/schedule.md)")
    s.add_argument("--t-ramp", type=_float, default=None,
                   help="--method fox-schedule only: ramp time t_r > 0 of τ(t) = τ_min + "
                        "(τ − τ_min)(1 − e^{−t/t_r}), with or without --tau-min (default "
                        "automatic: (τ − τ_min)/ε, docs/schedule.md)")
    s.add_argument("--t-min", type=_float, default=None,
                   help="end game: stop at forward time t_min > 0 and take one denoising step "
                        "x + v S with the score (docs/digits.md; not with --energetics)")
    s.add_argument("--scheme", default=None, choices=tuple(SCHEMES),
                   help="time-stepping scheme (default the method's: heun for passive and the "
                        "active methods and a protocol replay, lawson for exact; euler with "
                        "--energetics; docs/performance.md)")
    s.add_argument("--tabulate", action="store_true",
                   help="fox/ucn/naive in d <= 2: tabulate the force once on a grid and run the "
                        "ensemble in its interpolation (fast with --model; docs/learned.md)")
    s.add_argument("--spacing", type=_float, default=None,
                   help="--tabulate: grid spacing (default σ_min/4; for a model the widest "
                        "span / 128); above σ_min/2 (a model: span/32) a warning (coarse)")
    s.add_argument("--time-points", type=int, default=None,
                   help="--tabulate: forward times of the table, geometric near t = 0 (default 50)")
    s.add_argument("--dt", type=_float, default=None,
                   help="step Δs (default the scheme's: heun min(τ/3, 0.02) for the active "
                        "methods, min(τ/4, 0.0125) for passive; lawson min(τ/2.5, 0.02); euler "
                        "min(τ/20, 0.002); at most σ_min²/(2D) and 0.1/β)")
    s.add_argument("--n", type=int, default=10_000, help="number of particles")
    s.add_argument("--seed", type=_seed, default=0,
                   help="random seed: the same seed gives the same samples; any integer with "
                        "|seed| < 2**256, each its own stream")
    s.add_argument("--save-every", type=int, default=None, help="keep a trajectory frame every k steps")
    s.add_argument("--chunk-size", type=int, default=None,
                   help="run the ensemble in chunks of about this many particles (memory "
                        "O(chunk)); same samples as one run")
    s.add_argument("--x64", action="store_true", help="compute in float64")
    s.add_argument("--energetics", action="store_true",
                   help="add per-particle work, active_work, heat, potential_change (and for "
                        "passive the entropy production) to OUT.npz (docs/thermodynamics.md)")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--block-size", type=int, default=None,
                   help="particles per block, each with its own random streams (default "
                        "16384; the samples depend on it)")
    _add_cluster_options(s)
    s.add_argument("--task-blocks", type=int, default=None,
                   help="blocks per cluster task (default: about two tasks per worker)")
    s.add_argument("--out", required=True,
                   help="output .npz, or DIR/: one shard per cluster task and DIR/index.json")
    s.set_defaults(func=cmd_sample)

    lk = sub.add_parser("likelihood", help="log-likelihood of data under the model "
                        "(probability-flow ODE, change of variables)")
    lk.add_argument("--target", default=None, help="target JSON (analytic mixture)")
    lk.add_argument("--model", default=None, help="a learned model folder (activegen train)")
    lk.add_argument("--data", required=True, help="N x d data, .npy or .csv; digits (the "
                    "held-out 8x8 images; also prints bits/dim) or digits:train")
    _add_process_options(lk, defaults=False,
                         tau_help=TAU_HELP.split("; not with --protocol")[0])
    lk.add_argument("--rtol", type=_float, default=1e-6, help="ODE tolerance (rtol = atol)")
    lk.add_argument("--probes", type=int, default=None,
                    help="Hutchinson probes for the divergence (default: exact for d <= 8, 16 above)")
    lk.add_argument("--seed", type=_seed, default=0)
    lk.add_argument("--x64", action="store_true", help="compute in float64")
    lk.add_argument("--out", required=True, help="output .npz (log_prob per point)")
    lk.set_defaults(func=cmd_likelihood)
    ev = sub.add_parser("evaluate", help="metrics of a samples .npz or shard directory "
                        "against its target")
    ev.add_argument("--input", required=True, help=".npz or shard DIR written by activegen sample")
    ev.add_argument("--target", default=None, help="target JSON (default: the one recorded)")
    ev.add_argument("--subsample", type=int, default=None,
                    help="metrics on this many particles drawn uniformly (default all)")
    ev.add_argument("--seed", type=int, default=0)
    ev.set_defaults(func=cmd_evaluate)

    tr = sub.add_parser("train", help="learn a score model from data (denoising score matching)")
    tr.add_argument("--data", default=None,
                    help="built-in set (two-moons, swiss-roll, rings, checkerboard, eight-gaussians, "
                         "pinwheel, image, digits), image:PATH.png, or an N x d .npy/.csv file")
    tr.add_argument("--out", required=True, help="model folder (checkpoints, config, loss log)")
    _add_process_options(tr, tau_help="persistence time τ >= 0 of the forward process the "
                         "model is trained for: required (with --resume: the model's)",
                         with_t_final=False)
    tr.add_argument("--t-max", "--t-final", dest="t_max", type=_float, default=None,
                    help="largest training time, which is the model's diffusion time T: "
                         "sample --model runs to it (default 6; digits 3). --t-final is the "
                         "same option")
    tr.add_argument("--steps", type=int, default=None,
                    help="training steps in all (default 3000; digits 20000)")
    tr.add_argument("--seed", type=_seed32, default=0)
    tr.add_argument("--kind", choices=("energy", "vector"), default="energy",
                    help="scalar energy E(x,t) (S = -grad E) or a vector score network")
    tr.add_argument("--joint", action="store_true", help="learn the joint (x, eta) score (method exact)")
    tr.add_argument("--width", type=int, default=None, help="hidden width (default 16; digits 256)")
    tr.add_argument("--depth", type=int, default=None, help="hidden layers (default 2; digits 3)")
    tr.add_argument("--n-fourier", type=int, default=None,
                    help="random Fourier input features (0: plain MLP on x; default 16, "
                         "digits 0)")
    tr.add_argument("--batch", type=int, default=None, help="batch (default 512; digits 256)")
    tr.add_argument("--lr", type=_float, default=None, help="learning rate (default 2e-3; "
                                                             "digits 1e-3)")
    tr.add_argument("--n-data", type=int, default=10_000, help="points drawn from a built-in set")
    tr.add_argument("--standardize", action="store_true",
                    help="run the process on z = (x - mean)/scale instead of the data's own "
                         "units (tau, D_A, beta then act on z; recorded in the model)")
    tr.add_argument("--no-standardize", action="store_true", help=argparse.SUPPRESS)  # the default
    tr.add_argument("--resume", action="store_true", help="continue the model in --out")
    tr.add_argument("--no-progress", action="store_true")
    tr.set_defaults(func=cmd_train)

    d = sub.add_parser("demo", help="fox, refined, exact and naive on a 2D mixture: figure + report "
                       "(about half a minute)")
    d.add_argument("--out", default="activegen-demo", help="output folder")
    d.add_argument("--n", type=int, default=20_000)
    d.add_argument("--tau", type=_float, default=0.1)
    d.add_argument("--seed", type=_seed32, default=0)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=cmd_demo)

    e = sub.add_parser("experiment", help="reproducible experiments")
    esub = e.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    e.set_defaults(func=_group_help(e))
    t = esub.add_parser("tau-sweep", help="accuracy of each method against τ")
    t.add_argument("--target", default=None, help="target JSON (default: bimodal 1D mixture)")
    t.add_argument("--dim", type=int, choices=(1, 2), default=None,
                   help="the default target of that dimension: 1 bimodal 1D, 2 the demo's "
                        "4-mode 2D mixture (instead of --target)")
    t.add_argument("--taus", type=_positive_floats, default=[0.2, 0.1, 0.05],
                   help="comma-separated persistence times τ")
    t.add_argument("--methods", type=lambda s: s.split(","), default=["exact", "fox", "naive"],
                   help="comma-separated methods")
    t.add_argument("--n", type=int, default=40_000)
    t.add_argument("--seed", type=_seed32, default=0)
    t.add_argument("--seeds", type=_seeds32, default=None,
                   help="comma-separated seeds (one run each; spread in the figure)")
    _add_process_options(t, with_tau=False)
    t.add_argument("--driver", choices=tuple(DRIVERS), default="ou",
                   help="self-propulsion for fox/ucn/naive (effective τ, D_A matched)")
    t.add_argument("--no-driver-correction", action="store_true")
    t.add_argument("--x64", action="store_true")
    t.add_argument("--no-progress", action="store_true")
    _add_cluster_options(t)
    t.add_argument("--out", default="tau-sweep", help="output folder")
    t.set_defaults(func=cmd_tau_sweep)

    def _validity_options(q):
        q.add_argument("--taus", type=_positive_floats, default=[0.025, 0.05, 0.1, 0.2],
                       help="validity map: persistence times τ")
        q.add_argument("--sigmas", type=_positive_floats, default=[0.3, 0.4, 0.6, 0.8],
                       help="narrowest mode widths σ_min (mixture σ = (σ_min, 1.5 σ_min))")

    v = esub.add_parser("validity-map", help="the error of fox, naive, fox-sc and fox-schedule relative to exact over "
                        "(τ, σ_min) on 1D mixtures; calibrates the τ‖∇F‖ warning")
    _validity_options(v)
    v.add_argument("--n", dest="vm_n", type=int, default=20_000, help="particles per run")
    v.add_argument("--t-final", dest="vm_t_final", type=_float, default=3.0,
                   help="diffusion time T (default 3: the samplers start from the exact law)")
    v.add_argument("--seed", type=_seed32, default=0)
    _add_cluster_options(v)
    v.add_argument("--out", default="validity-map", help="output folder")
    v.set_defaults(func=cmd_validity_map)

    r = esub.add_parser("results", help="the data of docs/results.md: 1D and 2D τ sweeps of "
                        "every method and the validity map")
    r.add_argument("--methods", type=lambda s: s.split(","),
                   default=["passive", "exact", "fox", "ucn", "naive", "fox-sc", "fox-schedule"],
                   help="comma-separated methods of the two sweeps")
    r.add_argument("--taus-1d", type=_positive_floats, default=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
                   help="τ of the 1D sweep")
    r.add_argument("--taus-2d", type=_positive_floats, default=[0.02, 0.05, 0.1, 0.2, 0.5],
                   help="τ of the 2D sweep")
    r.add_argument("--n", type=int, default=20_000, help="particles, 1D sweep")
    r.add_argument("--n-2d", type=int, default=10_000, help="particles, 2D sweep")
    r.add_argument("--vm-n", type=int, default=20_000, help="particles, validity map")
    _validity_options(r)
    r.add_argument("--seed", type=_seed32, default=0)
    _add_process_options(r, with_tau=False)
    r.set_defaults(t_final=3.0, driver="ou", no_driver_correction=False, x64=False)
    r.add_argument("--no-progress", action="store_true")
    _add_cluster_options(r)
    r.add_argument("--out", default="docs/results", help="output folder")
    r.set_defaults(func=cmd_results)
    def _source_options(q, with_protocol=True):
        q.add_argument("--target", default=None, help="target JSON")
        q.add_argument("--model", default=None, help="learned score model directory")
        if with_protocol:
            q.add_argument("--protocol", default=None, help="PROTOCOL.npz from export-potential")
        q.add_argument("--method", default=None,
                       choices=method_names(where=lambda m: m.force is not None),
                       help="force whose potential is tabulated (with --target/--model)")
        _add_process_options(q, defaults=False)
        _add_grid_options(q)
        q.add_argument("--x64", action="store_true", help="compute in float64")
        q.add_argument("--no-progress", action="store_true")

    x = sub.add_parser("export-potential",
                       help="tabulate V and F = -grad V on a space × time grid (.npz + .json)")
    _source_options(x, with_protocol=False)
    x.add_argument("--out", required=True, help="output PROTOCOL.npz (sidecar PROTOCOL.json)")
    x.set_defaults(func=cmd_export_potential)

    pl = sub.add_parser("plot", help="figures: samples vs target, potential snapshots, τ sweep")
    psub = pl.add_subparsers(dest="what", metavar="WHAT")
    ps = psub.add_parser("samples", help="samples (.npz from sample) against the target")
    ps.add_argument("--input", required=True,
                    help=".npz or shard DIR written by activegen sample")
    ps.add_argument("--target", default=None, help="target JSON (default: the one in the .npz)")
    ps.add_argument("--no-metrics", action="store_true", help="leave W1 out of the title")
    ps.add_argument("--subsample", type=int, default=None,
                    help="draw (and score) this many particles, uniformly (default all)")
    ps.add_argument("--seed", type=_seed32, default=0,
                    help="seed of the exact reference samples the W1 is measured against")
    ps.add_argument("--no-progress", action="store_true")
    ps.add_argument("--out", required=True, help="output .png")
    pp = psub.add_parser("potential", help="V(x, t) and F = -grad V at several times")
    _source_options(pp)
    pp.add_argument("--times", type=_floats, default=None,
                    help="comma-separated forward times t in [0, T], at most 16 (default: "
                         "--snapshots times, crowded near t = 0)")
    pp.add_argument("--snapshots", type=int, default=4,
                    help="number of snapshot times in [1, 16] (with no --times; default 4)")
    pp.add_argument("--out", required=True, help="output .png")
    pw = psub.add_parser("sweep", help="error against τ from tau_sweep.json")
    pw.add_argument("--input", required=True, help="tau_sweep.json")
    pw.add_argument("--out", required=True, help="output .png")
    pl.set_defaults(func=_group_help(pl))
    for q in (ps, pp, pw):
        q.set_defaults(func=cmd_plot)

    an = sub.add_parser("animate", help="particles in the time-dependent potential (GIF/MP4)")
    _source_options(an)
    an.add_argument("--n", type=int, default=1000, help="number of particles")
    an.add_argument("--frames", type=int, default=60,
                    help="frames in [2, 1000], crowded near t = 0; exactly this many are "
                         "written (default 60)")
    an.add_argument("--fps", type=int, default=12)
    an.add_argument("--dt", type=_float, default=None,
                    help="step Δs (default the replay's: heun min(τ/3, 0.02), finer where "
                         "--frames needs more saved times)")
    an.add_argument("--seed", type=_seed, default=0)
    an.add_argument("--still", default=None, help="also write one frame as PNG")
    an.add_argument("--still-frame", type=int, default=None,
                    help="index of that frame (default 90%% of the way)")
    an.add_argument("--out", required=True, help="output .gif (or .mp4 where ffmpeg exists)")
    an.set_defaults(func=cmd_animate)
    th = esub.add_parser("thermodynamics", help="heat, work, active work and entropy production "
                         "per sample against τ for passive, naive, fox, fox-sc (demo mixture)")
    th.add_argument("--taus", type=_positive_floats, default=[0.1, 0.2], help="persistence times τ")
    th.add_argument("--n", type=int, default=1000)
    th.add_argument("--seed", type=int, default=0)
    th.add_argument("--out", default="docs/thermodynamics", help="output folder")
    th.add_argument("--no-progress", action="store_true")
    th.set_defaults(func=cmd_thermodynamics)

    g = esub.add_parser("learned-gallery",
                        help="learned scores: gallery of 2D sets, energy vs vector, Hutchinson")
    g.add_argument("--out", default="docs/figures", help="output folder")
    g.add_argument("--steps", type=int, default=3000, help="training steps per model")
    g.add_argument("--n", type=int, default=5000, help="particles per gallery panel (2n: mixture)")
    g.add_argument("--tau", type=_float, default=0.05, help="τ of the gallery (mixture: 0.1)")
    g.add_argument("--t-final", type=_float, default=3.0, help="T of the gallery")
    g.add_argument("--seed", type=_seed32, default=0)
    g.add_argument("--parts", type=lambda s: s.split(","), default=["hutchinson", "mixture", "gallery"],
                   help="comma-separated parts to run")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=cmd_learned_gallery)
    dg = esub.add_parser("digits", help="real data: 8x8 digits with learned scores, every "
                         "method per tau (docs/digits.md)")
    dg.add_argument("--out", default="docs/digits", help="output folder (models/ is reused)")
    dg.add_argument("--taus", type=_positive_floats, default=[0.02, 0.05, 0.1], help="persistence times τ")
    dg.add_argument("--methods", type=lambda s: s.split(","),
                    default=["passive", "ode", "naive", "fox", "fox-sc", "exact"],
                    help="comma-separated methods")
    dg.add_argument("--n", type=int, default=1500, help="digits per method (fox-sc: >= 1380)")
    dg.add_argument("--train-steps", type=int, default=None,
                    help="DSM steps per model (default 20000)")
    dg.add_argument("--dt", type=_float, default=None, help="step of every method "
                    "(default min(τ/20, 0.002) with euler, each method's own with --scheme "
                    "second-order)")
    dg.add_argument("--scheme", default="euler", choices=("euler", "second-order"),
                    help="the study's first-order steps, or each method's second-order scheme "
                         "(heun; lawson for exact)")
    dg.add_argument("--t-min", type=_float, default=None,
                    help="end game: stop at forward time t_min and denoise (docs/digits.md)")
    dg.add_argument("--seed", type=_seed32, default=0)
    dg.add_argument("--no-progress", action="store_true")
    dg.set_defaults(func=cmd_digits)
    _fill_help(ap)
    return ap


class _Parser(argparse.ArgumentParser):
    """ArgumentParser with `_Formatter` (defaults and "(required)" in --help) for every
    command and subcommand."""

    def __init__(self, *a, **kw):
        kw.setdefault("formatter_class", _Formatter)
        super().__init__(*a, **kw)


def _group_help(parser):
    """A command group given without its subcommand (`activegen plot`): print its help."""
    def show(args) -> int:
        parser.print_help()
        return 0
    return show


#: Help texts of options that many commands share.
_COMMON_HELP = {
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


def _subparsers(parser):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            yield from a.choices.values()


def _fill_help(parser):
    """Give every option of every (sub)command without a help text the common one."""
    for a in parser._actions:
        if a.help is None and a.option_strings and a.dest in _COMMON_HELP:
            a.help = _COMMON_HELP[a.dest]
    for q in _subparsers(parser):
        _fill_help(q)


def _compilation_cache():
    """Keep compiled sampler programs between runs (JAX's persistent cache): a repeated
    command skips most of its compile time. ACTIVEGEN_CACHE_DIR sets the folder (default
    ~/.cache/activegen/xla); ACTIVEGEN_CACHE_DIR=off switches it off."""
    import os

    path = os.environ.get("ACTIVEGEN_CACHE_DIR", str(Path.home() / ".cache" / "activegen" / "xla"))
    if path.lower() in ("off", "0", "none", ""):
        return
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # read-only home: run without the cache
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser()
        if not argv:  # a bare `activegen`: the help, exit status 0
            parser.print_help()
            return 0
        args = parser.parse_args(argv)
        args._argv = argv  # `_given`: which options the command line gave
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    return _interruptible(lambda: _run_command(args))


INTERRUPTED = "activegen: interrupted (nothing written by the unfinished step)"


def _run_command(args) -> int:
    try:
        _compilation_cache()
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = lambda msg, cat, *a, **k: print(
                f"activegen: warning: {msg}", file=sys.stderr
            )
            return args.func(args)
    except ActivegenError as exc:
        print(f"activegen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130


def _interruptible(run) -> int:
    """Run the command in a worker thread while the main thread waits, so that Ctrl-C takes
    effect within a fraction of a second even inside one long compiled call (an ODE solve,
    a protocol export, a training step): the main thread removes the temporary files of
    unfinished writes (outputs are written atomically, `files.atomic_path`), prints one line
    and exits with status 130 without waiting for the computation. Called from another
    thread (e.g. a test runner's), runs `run` directly."""
    import os
    import threading

    if threading.current_thread() is not threading.main_thread():
        return run()
    out: dict = {}

    def work():
        try:
            out["rc"] = run()
        except BaseException as exc:  # re-raised in the main thread
            out["exc"] = exc

    worker = threading.Thread(target=work, name="activegen-command", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        from .. import files

        files.discard_pending()
        print(INTERRUPTED, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    if "exc" in out:
        raise out["exc"]
    return out["rc"]

