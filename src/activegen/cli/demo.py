"""`activegen demo`: fox, refined, exact and naive on a 2D mixture, a figure and a report."""

from __future__ import annotations

from ..errors import check_count, check_out_dir, check_positive
from . import options as opt


def add_parser(sub) -> None:
    """The `demo` command."""
    d = sub.add_parser("demo", help="fox, refined, exact and naive on a 2D mixture: figure + report "
                       "(about half a minute)")
    d.add_argument("--out", default="activegen-demo", help="output folder")
    d.add_argument("--n", type=int, default=20_000)
    d.add_argument("--tau", type=opt.number, default=0.1)
    d.add_argument("--seed", type=opt.seed32, default=0)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from ..studies.demo import demo

    check_out_dir(args.out)
    check_count("--n", args.n)
    check_positive("--tau", args.tau)
    opt.status(args, f"demo: 4 methods × {args.n} particles at τ = {args.tau:g} "
            "(about half a minute on 2 cores)")
    png, js, rep = demo(args.out, n=args.n, tau=args.tau, seed=args.seed,
                        progress=not args.no_progress, log=lambda msg: opt.status(args, msg))
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
