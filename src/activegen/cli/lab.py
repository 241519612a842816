"""`activegen lab check`: scan the feedback loop's imperfections of a lab against a protocol
(docs/lab.md)."""

from __future__ import annotations

import sys

from ..errors import ActivegenError, check_count, check_out_dir
from . import options as opt


def add_parser(sub) -> None:
    """The `lab` command group."""
    lb = sub.add_parser("lab", help="the lab: how imperfect may the feedback loop be")
    lsub = lb.add_subparsers(dest="what", metavar="WHAT")
    c = lsub.add_parser("check", help="scan each imperfection of the lab's loop (update "
                        "period, latency, localisation noise, force limit) alone and report "
                        "its tolerance (table, figure, text)")
    c.add_argument("--protocol", required=True,
                   help="PROTOCOL.npz from export-potential --target ... --lab LAB.json")
    c.add_argument("--lab", required=True, help="LAB.json (docs/lab.md)")
    c.add_argument("--n", type=int, default=4000, help="particles per scanned value")
    c.add_argument("--seed", type=opt.seed32, default=0,
                   help="random seed (the same for every scanned value)")
    c.add_argument("--no-progress", action="store_true")
    c.add_argument("--out", required=True,
                   help="output folder: lab_check.md, lab_check.json, lab_check.png")
    lb.set_defaults(func=opt.group_help(lb))
    c.set_defaults(func=cmd_lab_check)


def cmd_lab_check(args) -> int:
    from ..analysis.metrics import w1, w1_floor
    from ..files import write_json, write_text
    from ..lab.check import lab_check, summary, table
    from ..lab.protocol import load_protocol
    from ..lab.units import check_lab_protocol, load_lab
    from ..physics.targets import GaussianMixture
    from ..figures.lab_check import plot_lab_check

    out = check_out_dir(args.out)
    n = check_count("--n", args.n)
    lab = load_lab(args.lab)
    proto = load_protocol(args.protocol)
    check_lab_protocol(lab, proto.meta)
    src = proto.meta.get("source", {})
    if "target" not in src:
        raise ActivegenError("--protocol: lab check measures the error against the target, "
                             "so the protocol must be exported from a --target")
    target = GaussianMixture.from_dict(src["target"])
    import jax
    import numpy as np

    ref = np.asarray(target.sample(jax.random.key(args.seed + 7919), max(n, 100_000)))
    floor, _ = w1_floor(target, n, ref, seed=args.seed)
    opt.status(args, f"lab check: {n} particles per value, the ideal replay and 24 loops")
    res = lab_check(proto, lab, n, args.seed, lambda x: w1(x, ref), floor,
                    progress=not args.no_progress)
    out.mkdir(parents=True, exist_ok=True)
    text = summary(res)
    write_json(out / "lab_check.json", res)
    write_text(out / "lab_check.md", f"# lab check\n\n{table(res)}\n\n{text}\n")
    plot_lab_check(res, out / "lab_check.png")
    print(table(res))
    print(text)
    print(f"wrote {out / 'lab_check.md'}, lab_check.json, lab_check.png "
          f"({res['wall_s']:.0f} s)", file=sys.stderr)
    return 0
