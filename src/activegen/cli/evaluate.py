"""`activegen evaluate`: the metrics of a samples file or shard directory against its target."""

from __future__ import annotations

import json

from ..errors import ActivegenError, check_count


def add_parser(sub) -> None:
    """The `evaluate` command."""
    ev = sub.add_parser("evaluate", help="metrics of a samples .npz or shard directory "
                        "against its target")
    ev.add_argument("--input", required=True, help=".npz or shard DIR written by activegen sample")
    ev.add_argument("--target", default=None, help="target JSON (default: the one recorded)")
    ev.add_argument("--subsample", type=int, default=None,
                    help="metrics on this many particles drawn uniformly (default all)")
    ev.add_argument("--seed", type=int, default=0)
    ev.set_defaults(func=cmd_evaluate)


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
