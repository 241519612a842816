"""`activegen experiment …`: the reproducible studies — tau-sweep, validity-map, results,
thermodynamics, learned-gallery, digits (`activegen.studies`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ActivegenError, check_count, check_out_dir, check_positive
from . import options as opt


def add_parser(sub) -> None:
    """The `experiment` command group and its studies."""
    from ..physics.drivers import DRIVERS

    e = sub.add_parser("experiment", help="reproducible experiments")
    esub = e.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    e.set_defaults(func=opt.group_help(e))
    t = esub.add_parser("tau-sweep", help="accuracy of each method against τ")
    t.add_argument("--target", default=None, help="target JSON (default: bimodal 1D mixture)")
    t.add_argument("--dim", type=int, choices=(1, 2), default=None,
                   help="the default target of that dimension: 1 bimodal 1D, 2 the demo's "
                        "4-mode 2D mixture (instead of --target)")
    t.add_argument("--taus", type=opt.positive_numbers, default=[0.2, 0.1, 0.05],
                   help="comma-separated persistence times τ")
    t.add_argument("--methods", type=lambda s: s.split(","), default=["exact", "fox", "naive"],
                   help="comma-separated methods")
    t.add_argument("--n", type=int, default=40_000)
    t.add_argument("--seed", type=opt.seed32, default=0)
    t.add_argument("--seeds", type=opt.seeds32, default=None,
                   help="comma-separated seeds (one run each; spread in the figure)")
    opt.add_process_options(t, with_tau=False)
    t.add_argument("--driver", choices=tuple(DRIVERS), default="ou",
                   help="self-propulsion for fox/ucn/naive (effective τ, D_A matched)")
    t.add_argument("--no-driver-correction", action="store_true")
    t.add_argument("--x64", action="store_true")
    t.add_argument("--no-progress", action="store_true")
    opt.add_cluster_options(t)
    t.add_argument("--out", default="tau-sweep", help="output folder")
    t.set_defaults(func=cmd_tau_sweep)

    def _validity_options(q):
        q.add_argument("--taus", type=opt.positive_numbers, default=[0.025, 0.05, 0.1, 0.2],
                       help="validity map: persistence times τ")
        q.add_argument("--sigmas", type=opt.positive_numbers, default=[0.3, 0.4, 0.6, 0.8],
                       help="narrowest mode widths σ_min (mixture σ = (σ_min, 1.5 σ_min))")

    v = esub.add_parser("validity-map", help="the error of fox, naive, fox-sc and fox-schedule relative to exact over "
                        "(τ, σ_min) on 1D mixtures; calibrates the τ‖∇F‖ warning")
    _validity_options(v)
    v.add_argument("--n", dest="vm_n", type=int, default=20_000, help="particles per run")
    v.add_argument("--t-final", dest="vm_t_final", type=opt.number, default=3.0,
                   help="diffusion time T (default 3: the samplers start from the exact law)")
    v.add_argument("--seed", type=opt.seed32, default=0)
    opt.add_cluster_options(v)
    v.add_argument("--out", default="validity-map", help="output folder")
    v.set_defaults(func=cmd_validity_map)

    r = esub.add_parser("results", help="the data of docs/results.md: 1D and 2D τ sweeps of "
                        "every method and the validity map")
    r.add_argument("--methods", type=lambda s: s.split(","),
                   default=["passive", "exact", "fox", "ucn", "naive", "fox-sc", "fox-schedule"],
                   help="comma-separated methods of the two sweeps")
    r.add_argument("--taus-1d", type=opt.positive_numbers, default=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
                   help="τ of the 1D sweep")
    r.add_argument("--taus-2d", type=opt.positive_numbers, default=[0.02, 0.05, 0.1, 0.2, 0.5],
                   help="τ of the 2D sweep")
    r.add_argument("--n", type=int, default=20_000, help="particles, 1D sweep")
    r.add_argument("--n-2d", type=int, default=10_000, help="particles, 2D sweep")
    r.add_argument("--vm-n", type=int, default=20_000, help="particles, validity map")
    _validity_options(r)
    r.add_argument("--seed", type=opt.seed32, default=0)
    opt.add_process_options(r, with_tau=False)
    r.set_defaults(t_final=3.0, driver="ou", no_driver_correction=False, x64=False)
    r.add_argument("--no-progress", action="store_true")
    opt.add_cluster_options(r)
    r.add_argument("--out", default="docs/results", help="output folder")
    r.set_defaults(func=cmd_results)
    th = esub.add_parser("thermodynamics", help="heat, work, active work and entropy production "
                         "per sample against τ for passive, naive, fox, fox-sc (demo mixture)")
    th.add_argument("--taus", type=opt.positive_numbers, default=[0.1, 0.2], help="persistence times τ")
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
    g.add_argument("--tau", type=opt.number, default=0.05, help="τ of the gallery (mixture: 0.1)")
    g.add_argument("--t-final", type=opt.number, default=3.0, help="T of the gallery")
    g.add_argument("--seed", type=opt.seed32, default=0)
    g.add_argument("--parts", type=lambda s: s.split(","), default=["hutchinson", "mixture", "gallery"],
                   help="comma-separated parts to run")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=cmd_learned_gallery)
    dg = esub.add_parser("digits", help="real data: 8x8 digits with learned scores, every "
                         "method per tau (docs/digits.md)")
    dg.add_argument("--out", default="docs/digits", help="output folder (models/ is reused)")
    dg.add_argument("--taus", type=opt.positive_numbers, default=[0.02, 0.05, 0.1], help="persistence times τ")
    dg.add_argument("--methods", type=lambda s: s.split(","),
                    default=["passive", "ode", "naive", "fox", "fox-sc", "exact"],
                    help="comma-separated methods")
    dg.add_argument("--n", type=int, default=1500, help="digits per method (fox-sc: >= 1380)")
    dg.add_argument("--train-steps", type=int, default=None,
                    help="DSM steps per model (default 20000)")
    dg.add_argument("--dt", type=opt.number, default=None, help="step of every method "
                    "(default min(τ/20, 0.002) with euler, each method's own with --scheme "
                    "second-order)")
    dg.add_argument("--scheme", default="euler", choices=("euler", "second-order"),
                    help="the study's first-order steps, or each method's second-order scheme "
                         "(heun; lawson for exact)")
    dg.add_argument("--t-min", type=opt.number, default=None,
                    help="end game: stop at forward time t_min and denoise (docs/digits.md)")
    dg.add_argument("--seed", type=opt.seed32, default=0)
    dg.add_argument("--no-progress", action="store_true")
    dg.set_defaults(func=cmd_digits)


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
    opt.x64(args)
    out = Path(args.out)
    with opt.cluster_client(args) as client:
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
    from ..studies.validity_map import run_validity_map

    out = check_out_dir(args.out)
    with opt.cluster_client(args) as client:
        _, md = run_validity_map(out, args.taus, args.sigmas, n=args.vm_n, seed=args.seed,
                                 t_final=args.vm_t_final, client=client)
    print(md)
    print(f"wrote {out / 'validity_map.md'}, {out / 'validity_map.json'} and "
          f"{out / 'validity_map.png'}")
    return 0


def cmd_results(args) -> int:
    """The results page's data: the default 1D and 2D τ sweeps and the validity map."""
    from ..studies.results import run_results

    check_out_dir(args.out)
    with opt.cluster_client(args) as client:
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
                     log=None if args.no_progress else (lambda m: opt.status(args, m)))
    print(f"{len(res['cells'])} runs; wrote {Path(args.out) / 'digits.md'}, "
          f"{Path(args.out) / 'digits.json'} and the image grids")
    return 0


def cmd_thermodynamics(args) -> int:
    from ..studies.thermodynamics import run_thermodynamics

    run_thermodynamics(args.out, taus=args.taus, n=args.n, seed=args.seed,
                       progress=not args.no_progress, echo=print)
    return 0
