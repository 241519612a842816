"""`activegen sample`: samples of a Gaussian-mixture target or a learned model, or the replay
of an exported protocol."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import ActivegenError, check_count, check_out_dir, check_positive
from . import options as opt


def add_parser(sub) -> None:
    """The `sample` command."""
    from ..physics.drivers import DRIVERS
    from ..samplers import method_names
    from ..samplers.schemes import SCHEMES

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
    s.add_argument("--lab", default=None,
                   help="--protocol only: LAB.json (docs/lab.md): replay as its feedback loop "
                        "would (held force, latency, localisation noise, force limit; without "
                        "a feedback block the ideal replay); energetics in k_BT")
    s.add_argument("--method", default=None, choices=method_names(),
                   help="required with --target/--model")
    opt.add_process_options(s, defaults=False, tau_help=opt.TAU_HELP.replace(
        "required with --target;", "required with --target (or, with --driver rtp/abp, "
        "--speed and the rate);"))
    s.add_argument("--driver", choices=tuple(DRIVERS), default="ou",
                   help="self-propulsion for fox/ucn/naive: active OU, run-and-tumble, active Brownian")
    s.add_argument("--speed", type=opt.number, default=None, help="rtp/abp swim speed v0")
    s.add_argument("--tumble-rate", type=opt.number, default=None, help="rtp tumble rate α (τ = 1/α)")
    s.add_argument("--rot-diffusion", type=opt.number, default=None, help="abp rotational diffusion D_r")
    s.add_argument("--no-driver-correction", action="store_true",
                   help="fox with rtp/abp: leave out the non-Gaussian driver correction")
    s.add_argument("--tau-min", type=opt.number, default=None,
                   help="--method fox-schedule only: persistence time τ_min in (0, --tau] at "
                        "the end of generation (default automatic: min(τ, ε σ_min²/(2D)), "
                        "docs/schedule.md)")
    s.add_argument("--t-ramp", type=opt.number, default=None,
                   help="--method fox-schedule only: ramp time t_r > 0 of τ(t) = τ_min + "
                        "(τ − τ_min)(1 − e^{−t/t_r}), with or without --tau-min (default "
                        "automatic: (τ − τ_min)/ε, docs/schedule.md)")
    s.add_argument("--t-min", type=opt.number, default=None,
                   help="end game: stop at forward time t_min > 0 and take one denoising step "
                        "x + v S with the score (docs/digits.md; not with --energetics). "
                        "Default 0, except a first-order method on a learned model: the time "
                        "its own validity scan gives (docs/learned.md); 0 turns it off")
    s.add_argument("--scheme", default=None, choices=tuple(SCHEMES),
                   help="time-stepping scheme (default the method's: heun for passive and the "
                        "active methods and a protocol replay, lawson for exact; euler with "
                        "--energetics; docs/performance.md)")
    s.add_argument("--tabulate", action="store_true",
                   help="fox/ucn/naive in d <= 2: tabulate the force once on a grid and run the "
                        "ensemble in its interpolation (fast with --model; docs/learned.md)")
    s.add_argument("--spacing", type=opt.number, default=None,
                   help="--tabulate: grid spacing (default σ_min/4; for a model the widest "
                        "span / 128); above σ_min/2 (a model: span/32) a warning (coarse)")
    s.add_argument("--time-points", type=int, default=None,
                   help="--tabulate: forward times of the table, geometric near t = 0 (default 50)")
    s.add_argument("--dt", type=opt.number, default=None,
                   help="step Δs (default the scheme's: heun min(τ/3, 0.02) for the active "
                        "methods, min(τ/4, 0.0125) for passive; lawson min(τ/2.5, 0.02); euler "
                        "min(τ/20, 0.002); at most σ_min²/(2D) and 0.1/β)")
    s.add_argument("--n", type=int, default=10_000, help="number of particles")
    s.add_argument("--seed", type=opt.seed, default=0,
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
    opt.add_cluster_options(s)
    s.add_argument("--task-blocks", type=int, default=None,
                   help="blocks per cluster task (default: about two tasks per worker)")
    s.add_argument("--out", required=True,
                   help="output .npz, or DIR/: one shard per cluster task and DIR/index.json")
    s.set_defaults(func=cmd_sample)


def cmd_sample(args) -> int:
    from ..samplers import sample
    from ..physics.targets import GaussianMixture

    shards = opt.is_dir_out(args.out)
    out = check_out_dir(args.out) if shards else opt.out_file(args.out, ".npz")
    src = opt.one_source(args, ("target", "protocol", "model"))
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
    if args.lab is not None:
        raise ActivegenError("--lab replays a --protocol (export it with export-potential "
                             "--lab)")
    if args.method is None:
        raise ActivegenError(f"--method is required with --{src}")
    if src == "model":
        target = _load_model_for_sampling(args)
        opt.fill_process_defaults(args)
    else:
        opt.fill_process_defaults(args)
        target = GaussianMixture.load(args.target)
    driver, proc = opt.driver_and_process(args, target.dim)
    check_positive("--t-final", args.t_final)
    check_count("--n", args.n)
    if args.dt is not None:
        check_positive("--dt", args.dt)
    opt.x64(args)
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
        with opt.cluster_client(args) as client:
            res = sample(target, args.method, proc, args.n, seed=args.seed,
                         t_final=args.t_final, dt=args.dt, save_every=args.save_every,
                         progress=not args.no_progress, chunk_size=args.chunk_size,
                         driver=driver, driver_correction=not args.no_driver_correction,
                         client=client, energetics=args.energetics, t_min=args.t_min,
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
    from ..lab.protocol import load_protocol, replay

    opt.reject_with_protocol(args, opt.PROCESS_NAMES + (
        "driver", "speed", "tumble_rate", "rot_diffusion", "no_driver_correction", "t_min",
        "tabulate", "spacing", "time_points"))
    proto = load_protocol(args.protocol)
    check_count("--n", args.n)
    if args.dt is not None:
        check_positive("--dt", args.dt)
    opt.x64(args)
    lab = None
    if args.lab is not None:
        from ..lab.units import check_lab_protocol, load_lab

        lab = load_lab(args.lab)
        check_lab_protocol(lab, proto.meta)
    fb = lab.feedback if lab is not None else None
    if fb is not None and fb.samples_the_position:
        res = _replay_loop(args, proto, lab)
    else:
        cap = None if fb is None or fb.max_force_pN is None else fb.max_force_pN / lab.gamma
        if cap is not None and args.energetics:
            raise ActivegenError("--energetics cannot be used with a lab's max_force_pN (the "
                                 "clipped force has no potential)")
        res = replay(proto, args.n, seed=args.seed, dt=args.dt, save_every=args.save_every,
                     progress=not args.no_progress, energetics=args.energetics,
                     scheme=args.scheme, max_force=cap)
    if lab is not None and args.energetics:
        from ..physics.energetics import ENERGETIC_KEYS

        for k in ENERGETIC_KEYS:
            res.info[k] = lab.energy_kT(res.info[k])
        res.info["energy_unit"] = "k_BT"
    if lab is not None:  # the samples are in µm, the times in s: the file says so
        res.info["lab"] = lab.meta()
    from ..files import save_samples

    src = proto.meta.get("source", {})
    meta = {"protocol": str(args.protocol)}
    if "target" in src:
        meta["target"] = json.dumps(src["target"])
    save_samples(out, res, seed=args.seed, **meta)
    print(f"replayed {args.protocol} ({proto.meta['method']}, τ = {proto.meta['tau']:g}): "
          f"wrote {res.samples.shape[0]} samples (d = {res.samples.shape[1]}) to {out}")
    return 0


def _replay_loop(args, proto, lab):
    """`sample --protocol P --lab L` with a feedback loop (`lab.feedback.loop_replay`)."""
    from ..lab.feedback import lab_loop, loop_replay

    for name, bad in (("energetics", args.energetics), ("dt", args.dt is not None),
                      ("scheme", args.scheme is not None),
                      ("chunk-size", args.chunk_size is not None),
                      ("block-size", args.block_size is not None)):
        if bad:
            raise ActivegenError(f"--{name} cannot be used with a lab's feedback loop (its "
                                 "steps are set by the update period and the latency)")
    res = loop_replay(proto, [lab_loop(proto, lab)], args.n, seed=args.seed,
                      save_every=args.save_every, progress=not args.no_progress)
    loop = res.info["loops"][0]
    print(f"feedback loop: update every {loop['update_period'] * 1e3:.4g} ms, latency "
          f"{loop['latency'] * 1e3:.4g} ms, localisation noise "
          f"{loop['position_noise'] * 1e3:.4g} nm, force limit "
          + ("none" if loop["max_force"] is None else f"{loop['max_force'] * lab.gamma:.4g} pN"))
    return res


def _load_model_for_sampling(args):
    """The learned model of --model; process options not given default to the model's (those
    given are checked against the model by the sampler)."""
    if args.hutchinson is not None and args.hutchinson < 0:
        raise ActivegenError(f"--hutchinson must be >= 0, got {args.hutchinson}")
    model = opt.load_model(args.model, hutchinson=args.hutchinson)
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
