"""`activegen likelihood`: the log-likelihood of data under a target or a learned model
(probability-flow ODE, change of variables)."""

from __future__ import annotations

from ..errors import ActivegenError, check_count
from . import options as opt


def add_parser(sub) -> None:
    """The `likelihood` command."""
    lk = sub.add_parser("likelihood", help="log-likelihood of data under the model "
                        "(probability-flow ODE, change of variables)")
    lk.add_argument("--target", default=None, help="target JSON (analytic mixture)")
    lk.add_argument("--model", default=None, help="a learned model folder (activegen train)")
    lk.add_argument("--data", required=True, help="N x d data, .npy or .csv; digits (the "
                    "held-out 8x8 images; also prints bits/dim) or digits:train")
    opt.add_process_options(lk, defaults=False,
                         tau_help=opt.TAU_HELP.split("; not with --protocol")[0])
    lk.add_argument("--rtol", type=opt.number, default=1e-6, help="ODE tolerance (rtol = atol)")
    lk.add_argument("--probes", type=int, default=None,
                    help="Hutchinson probes for the divergence (default: exact for d <= 8, 16 above)")
    lk.add_argument("--seed", type=opt.seed, default=0)
    lk.add_argument("--x64", action="store_true", help="compute in float64")
    lk.add_argument("--out", required=True, help="output .npz (log_prob per point)")
    lk.set_defaults(func=cmd_likelihood)


def cmd_likelihood(args) -> int:
    import numpy as np

    from ..analysis.likelihood import check_tolerance, load_data, log_likelihood
    from ..physics.targets import GaussianMixture

    out = opt.out_file(args.out, ".npz")
    src = opt.one_source(args, ("target", "model"))
    opt.x64(args)
    import jax.numpy as jnp

    check_tolerance("--rtol", args.rtol, jnp.result_type(float))  # before any work
    if args.probes is not None:
        check_count("--probes", args.probes)
    kw = {}
    if src == "model":
        model = opt.load_model(args.model)
        if args.t_final is None:
            args.t_final = float(model.config["t_max"])
        opt.fill_process_defaults(args)
        if args.tau is None:
            args.tau = float(model.config["process"]["tau"])
        proc = opt.process_from_args(args)
        model.check_process(proc)
        if args.t_final > model.config["t_max"] * (1 + 1e-9):
            raise ActivegenError(f"--t-final must be <= the model's t_max = "
                                 f"{model.config['t_max']:g}, got {args.t_final:g}")
        data = model.from_data(load_data(args.data, model.dim))
        kw = dict(t_start=float(model.config["t_min"]),
                  log_scale=model.dim * float(np.log(model.standardizer.scale)))
    else:
        opt.fill_process_defaults(args)
        model = GaussianMixture.load(args.target)
        if args.tau is None:
            raise ActivegenError("--tau is required with --target")
        proc = opt.process_from_args(args)
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
