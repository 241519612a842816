"""`activegen plot samples | potential | sweep`: figures of samples against the target, of
the potential's snapshots, of a τ sweep."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import ActivegenError, check_count
from . import options as opt


def add_parser(sub) -> None:
    """The `plot` command group."""
    pl = sub.add_parser("plot", help="figures: samples vs target, potential snapshots, τ sweep")
    psub = pl.add_subparsers(dest="what", metavar="WHAT")
    ps = psub.add_parser("samples", help="samples (.npz from sample) against the target")
    ps.add_argument("--input", required=True,
                    help=".npz or shard DIR written by activegen sample")
    ps.add_argument("--target", default=None, help="target JSON (default: the one in the .npz)")
    ps.add_argument("--no-metrics", action="store_true", help="leave W1 out of the title")
    ps.add_argument("--subsample", type=int, default=None,
                    help="draw (and score) this many particles, uniformly (default all)")
    ps.add_argument("--seed", type=opt.seed32, default=0,
                    help="seed of the exact reference samples the W1 is measured against")
    ps.add_argument("--no-progress", action="store_true")
    ps.add_argument("--out", required=True, help="output .png")
    pp = psub.add_parser("potential", help="V(x, t) and F = -grad V at several times")
    opt.add_source_options(pp)
    pp.add_argument("--times", type=opt.numbers, default=None,
                    help="comma-separated forward times t in [0, T], at most 16 (default: "
                         "--snapshots times, crowded near t = 0)")
    pp.add_argument("--snapshots", type=int, default=4,
                    help="number of snapshot times in [1, 16] (with no --times; default 4)")
    pp.add_argument("--out", required=True, help="output .png")
    pw = psub.add_parser("sweep", help="error against τ from tau_sweep.json")
    pw.add_argument("--input", required=True, help="tau_sweep.json")
    pw.add_argument("--out", required=True, help="output .png")
    pl.set_defaults(func=opt.group_help(pl))
    for q in (ps, pp, pw):
        q.set_defaults(func=cmd_plot)


def cmd_plot(args) -> int:
    from ..figures import potential, samples as sample_figures, sweeps

    out = opt.out_file(args.out, ".png")
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
            target = sample_figures.target_from_record(None if tjson is None else json.loads(tjson))
        title = _method_title(info) + (
            f", τ = {info['tau']:g}" if "tau" in info else "") + f", N = {len(samples)}"
        if target is not None and not args.no_metrics:
            from ..analysis.metrics import evaluate

            opt.status(args, f"W1 of {len(samples)} samples against exact samples of the target "
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
            floor = sample_figures.reference_floor(reference, len(samples), seed=args.seed)
            title += f"\n{sliced}W1 to the training data {d1:.3f} (floor {floor:.3f})"
            print(f"{sliced}W1 to the training data {d1:.4f} (floor {floor:.4f}: between "
                  f"disjoint parts of the {len(reference)} training points)")
        record = {} if tjson is None else json.loads(tjson)
        shape = (record.get("data") or {}).get("image_shape")
        opt.status(args, f"drawing {out}")
        sample_figures.plot_samples(samples, out, target=target, title=title, reference=reference,
                           image_shape=shape)
    elif args.what == "potential":
        _check_snapshot_times(args, potential.MAX_SNAPSHOTS)
        proto, target = opt.protocol_from_args(args, progress=not args.no_progress)
        if target is None and "target" in proto.meta.get("source", {}):
            from ..physics.targets import GaussianMixture

            target = GaussianMixture.from_dict(proto.meta["source"]["target"])
        potential.plot_potential(proto, out, times=args.times, n_snapshots=args.snapshots,
                             target=target)
        opt.note(potential.FIRST_ORDER_NOTE)
    else:
        sweeps.plot_sweep_file(args.input, out)
    print(f"wrote {out}")
    return 0


def _method_title(info: dict) -> str:
    """The method's name as the user asked for it (an alias such as refined, with the
    method it names: "refined (fox-sc)")."""
    m = info.get("method", "samples")
    asked = info.get("method_requested")
    return f"{asked} ({m})" if asked and asked != m else str(m)


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
