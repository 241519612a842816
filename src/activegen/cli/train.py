"""`activegen train`: a score model learned from data (denoising score matching), or one
continued (`--resume`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ActivegenError, check_count, check_out_dir, check_positive
from . import options as opt


def add_parser(sub) -> None:
    """The `train` command."""
    from ..learning.datasets import BUILTIN

    tr = sub.add_parser("train", help="learn a score model from data (denoising score matching)")
    tr.add_argument("--data", default=None,
                    help=f"built-in set ({', '.join([*BUILTIN, 'digits'])}), image:PATH.png, "
                         "or an N x d .npy/.csv file")
    tr.add_argument("--out", required=True, help="model folder (checkpoints, config, loss log)")
    opt.add_process_options(tr, tau_help="persistence time τ >= 0 of the forward process the "
                         "model is trained for: required (with --resume: the model's)",
                         with_t_final=False)
    tr.add_argument("--t-max", "--t-final", dest="t_max", type=opt.number, default=None,
                    help="largest training time, which is the model's diffusion time T: "
                         "sample --model runs to it (default 6; digits 3). --t-final is the "
                         "same option")
    tr.add_argument("--steps", type=int, default=None,
                    help="training steps in all (default 3000; digits 20000)")
    tr.add_argument("--seed", type=opt.seed32, default=0)
    tr.add_argument("--kind", choices=("energy", "vector"), default="energy",
                    help="scalar energy E(x,t) (S = -grad E) or a vector score network")
    tr.add_argument("--joint", action="store_true", help="learn the joint (x, eta) score (method exact)")
    tr.add_argument("--psi", action=argparse.BooleanOptionalAction, default=None,
                    help="also learn Psi = Laplacian(p)/p (a second network): the first-order "
                         "methods then need no third derivatives (docs/learned.md, 'The Psi "
                         "route'); energy models of the x-marginal; default: above d = 8")
    tr.add_argument("--width", type=int, default=None, help="hidden width (default 16; digits 256)")
    tr.add_argument("--depth", type=int, default=None, help="hidden layers (default 2; digits 3)")
    tr.add_argument("--n-fourier", type=int, default=None,
                    help="random Fourier input features (0: plain MLP on x; default 16, "
                         "digits 0)")
    tr.add_argument("--batch", type=int, default=None, help="batch (default 512; digits 256)")
    tr.add_argument("--lr", type=opt.number, default=None, help="learning rate (default 2e-3; "
                                                             "digits 1e-3)")
    tr.add_argument("--n-data", type=int, default=10_000, help="points drawn from a built-in set")
    tr.add_argument("--standardize", action="store_true",
                    help="run the process on z = (x - mean)/scale instead of the data's own "
                         "units (tau, D_A, beta then act on z; recorded in the model)")
    tr.add_argument("--no-standardize", action="store_true", help=argparse.SUPPRESS)  # the default
    tr.add_argument("--resume", action="store_true", help="continue the model in --out")
    tr.add_argument("--no-progress", action="store_true")
    tr.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from ..learning.training import train

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
        from ..learning.network import data_defaults

        if args.data == "digits" and args.standardize:
            raise ActivegenError(
                "--standardize does not apply to --data digits: the pixels are already in "
                "the diffusion-model scale x/8 - 1 in [-1, 1], and tau, D_A act on that scale")
        proc = opt.process_from_args(args)
        x = load_data(args.data, n=check_count("--n-data", args.n_data), seed=args.seed)
        given = dict(width=args.width, depth=args.depth, batch=args.batch, lr=args.lr,
                     n_fourier=args.n_fourier, t_max=args.t_max, steps=args.steps)
        dflt = data_defaults(args.data)
        opts = {k: dflt[k] if v is None else v for k, v in given.items()}
        check_positive("--t-max", opts["t_max"])
        opts.update(kind=args.kind, marginal="joint" if args.joint else "x", seed=args.seed,
                    psi=args.psi)
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
    the command line parsed again (by a parser of this command alone) with every default
    suppressed; None when args did not come from `main` (no command line recorded)."""
    argv = getattr(args, "_argv", None)
    if argv is None:
        return None
    parser = opt.Parser(prog="activegen")
    add_parser(parser.add_subparsers(dest="command", metavar="COMMAND"))

    def suppress(p):
        p._defaults.clear()  # set_defaults(func=...)
        for a in p._actions:
            if a.option_strings:
                a.default = argparse.SUPPRESS
        for q in opt.subparsers(p):
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
            f"{', '.join(opt.flag(b) for b in bad)} cannot be used with --resume: it continues "
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
