"""Command-line interface: `activegen sample | train | demo | experiment tau-sweep | learned-gallery`."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from .errors import ActivegenError, check_count, check_positive
from .samplers import METHODS


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _floats(text: str) -> list[float]:
    return [_float(t) for t in text.split(",") if t.strip()]


def _out_file(path: str, suffix: str) -> Path:
    p = Path(path)
    if p.suffix != suffix:
        raise ActivegenError(f"--out must end in {suffix}, got {path!r}")
    if not p.parent.exists():
        raise ActivegenError(f"--out directory does not exist: {p.parent}")
    return p


def _process(args):
    from .processes import ActiveOU

    d_active = 1.0 if args.d_active is None else args.d_active
    return ActiveOU(beta=args.beta, d_thermal=args.d_thermal, d_active=d_active, tau=args.tau)


_RATE = {"rtp": "tumble_rate", "abp": "rot_diffusion"}


def _driver_and_process(args, dim: int):
    """The driver and the matched forward process. Either τ (and D_A) is given and the
    driver's speed and rate follow, or --speed and the driver's rate are given and (τ, D_A)
    follow; both at once must agree."""
    import math

    from .drivers import DRIVERS
    from .processes import ActiveOU

    kind = args.driver
    given = {k: getattr(args, k) for k in ("speed", "tumble_rate", "rot_diffusion")
             if getattr(args, k) is not None}
    allowed = {"speed", _RATE[kind]} if kind in _RATE else set()
    extra = sorted(set(given) - allowed)
    if extra:
        flags = ", ".join("--" + k.replace("_", "-") for k in extra)
        raise ActivegenError(f"{flags} cannot be used with --driver {kind}")
    if given and set(given) != allowed:
        need = " and ".join("--" + k.replace("_", "-") for k in sorted(allowed))
        raise ActivegenError(f"--driver {kind}: give both {need}, or neither (then --tau)")
    cls = DRIVERS[kind]
    if given:
        drv = cls(given["speed"], given[_RATE[kind]], dim)
        for flag, val, eff in (("--tau", args.tau, drv.tau), ("--d-active", args.d_active, drv.d_active)):
            if val is not None and not math.isclose(val, eff, rel_tol=1e-6):
                raise ActivegenError(
                    f"{flag} {val:g} contradicts the driver's effective value {eff:g} "
                    "(from --speed and the rate); give one or the other"
                )
        return drv, ActiveOU(beta=args.beta, d_thermal=args.d_thermal,
                             d_active=drv.d_active, tau=drv.tau)
    if args.tau is None:
        raise ActivegenError("--tau is required (or, with --driver rtp|abp, --speed and the rate)")
    proc = _process(args)
    if kind == "ou" or proc.tau == 0:
        return None, proc
    return cls.from_effective(proc.tau, proc.d_active, dim), proc


def _add_process_options(p: argparse.ArgumentParser, with_tau: bool = True):
    if with_tau:
        p.add_argument("--tau", type=_float, default=None, help="persistence time τ >= 0")
    p.add_argument("--d-active", type=_float, default=None, help="active strength D_A > 0 (default 1)")
    p.add_argument("--d-thermal", type=_float, default=0.0, help="thermal D_T >= 0")
    p.add_argument("--beta", type=_float, default=1.0, help="trap stiffness β > 0")
    p.add_argument("--t-final", type=_float, default=6.0, help="diffusion time T > 0")


def cmd_sample(args) -> int:
    import numpy as np

    from .samplers import sample
    from .targets import GaussianMixture

    out = _out_file(args.out, ".npz")
    if (args.target is None) == (args.model is None):
        raise ActivegenError("give exactly one of --target TARGET.json and --model MODEL_DIR")
    if args.model is not None:
        target = _load_model(args)
    else:
        target = GaussianMixture.load(args.target)
    driver, proc = _driver_and_process(args, target.dim)
    check_positive("--t-final", args.t_final)
    check_count("--n", args.n)
    if args.dt is not None:
        check_positive("--dt", args.dt)
    _x64(args)
    res = sample(
        target,
        args.method,
        proc,
        args.n,
        seed=args.seed,
        t_final=args.t_final,
        dt=args.dt,
        save_every=args.save_every,
        driver=driver,
        driver_correction=not args.no_driver_correction,
        progress=not args.no_progress,
    )
    back = target.to_data if args.model is not None else (lambda a: a)  # model: standardised
    extra = {} if res.trajectory is None else {"trajectory": back(res.trajectory), "times": res.times}
    np.savez(
        out,
        samples=back(res.samples),
        seed=args.seed,
        target=json.dumps(target.to_dict()),
        info=json.dumps(res.info),
        **{k: v for k, v in res.info.items() if isinstance(v, (int, float, str))},
        **extra,
    )
    print(f"wrote {res.samples.shape[0]} samples (d = {res.samples.shape[1]}) to {out}")
    return 0


def _load_model(args):
    """The learned model of --model; τ and D_A default to the model's (others as given,
    then checked against the model by the sampler)."""
    from .learned import load_model

    if args.hutchinson is not None and args.hutchinson < 0:
        raise ActivegenError(f"--hutchinson must be >= 0, got {args.hutchinson}")
    model = load_model(args.model, hutchinson=args.hutchinson)
    trained = model.config["process"]
    if args.tau is None and args.speed is None:
        args.tau = trained["tau"]
    if args.d_active is None and args.speed is None:
        args.d_active = trained["d_active"]
    return model


def cmd_train(args) -> int:
    from .learned import train

    out = Path(args.out)
    if args.resume:
        opts = {} if args.steps is None else {"steps": check_count("--steps", args.steps)}
        proc = None
        if args.tau is not None:
            proc = _process(args)
        model, rep = train(None, out, process=proc, resume=True,
                           progress=not args.no_progress, **opts)
    else:
        from .datasets import load_data

        if args.data is None:
            raise ActivegenError("--data is required (a built-in set, image:PATH.png, .npy or .csv)")
        if args.tau is None:
            raise ActivegenError("--tau is required")
        proc = _process(args)
        x = load_data(args.data, n=check_count("--n-data", args.n_data), seed=args.seed)
        check_positive("--t-max", args.t_max)
        opts = dict(kind=args.kind, marginal="joint" if args.joint else "x",
                    width=args.width, depth=args.depth, batch=args.batch, lr=args.lr,
                    n_fourier=args.n_fourier,
                    t_max=args.t_max, seed=args.seed,
                    steps=3000 if args.steps is None else args.steps)
        model, rep = train(x, out, process=proc, progress=not args.no_progress,
                           source=args.data, standardize=not args.no_standardize, **opts)
    print(f"trained {rep['steps']} steps in {rep['seconds']:.1f} s ({rep['n_params']} parameters, "
          f"last loss {rep['last_loss']:.4f}); model in {out}, loss log {out / 'loss.csv'}")
    return 0


def cmd_demo(args) -> int:
    from .experiments import demo

    check_count("--n", args.n)
    check_positive("--tau", args.tau)
    png, js, rep = demo(args.out, n=args.n, tau=args.tau, seed=args.seed,
                        progress=not args.no_progress)
    for m, r in rep["methods"].items():
        print(f"{m:6s} sliced W1 {r['metrics']['w1']:.4f}   (floor {r['floor']['w1']:.4f})")
    print(f"figure: {png}\nreport: {js}")
    return 0


def cmd_tau_sweep(args) -> int:
    from .experiments import plot_sweep, sweep_markdown, tau_sweep
    from .targets import GaussianMixture, default_target_1d

    target = GaussianMixture.load(args.target) if args.target else default_target_1d()
    check_count("--n", args.n)
    for t in args.taus:
        check_positive("--taus", t)
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        raise ActivegenError(f"--methods: unknown {bad}; choose from {', '.join(METHODS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _x64(args)
    n_runs = len(args.taus) * len(args.methods) * len(args.seeds or [0])
    print(f"tau-sweep: {n_runs} runs of {args.n} particles "
          f"(roughly {n_runs * args.n * 3000 / 5e6 / 60:.0f} min on 2 cores at T = 6)")
    seeds = args.seeds or [args.seed]
    res = tau_sweep(target, args.taus, args.methods, args.n, seed=seeds,
                    beta=args.beta, d_active=1.0 if args.d_active is None else args.d_active, d_thermal=args.d_thermal,
                    t_final=args.t_final, progress=not args.no_progress,
                    driver=args.driver, driver_correction=not args.no_driver_correction)
    md = sweep_markdown(res)
    (out / "tau_sweep.md").write_text(md + "\n")
    (out / "tau_sweep.json").write_text(json.dumps(res, indent=2))
    plot_sweep(res, out / "tau_sweep.png")
    print(md)
    print(f"wrote {out / 'tau_sweep.md'}, {out / 'tau_sweep.json'} and {out / 'tau_sweep.png'}")
    return 0


def cmd_learned_gallery(args) -> int:
    from .learned_gallery import run

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


def _x64(args):
    if getattr(args, "x64", False):
        import jax

        jax.config.update("jax_enable_x64", True)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="activegen", description="Generative diffusion driven by active matter."
    )
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sample", help="generate samples of a Gaussian-mixture target")
    s.add_argument("--target", default=None, help="target JSON: weights, means, stds|covs")
    s.add_argument("--model", default=None,
                   help="a learned model folder (activegen train) instead of --target")
    s.add_argument("--hutchinson", type=int, default=None,
                   help="--model: estimate grad(div S) with K random probes (0: exact)")
    s.add_argument("--method", required=True, choices=METHODS)
    _add_process_options(s)
    s.add_argument("--driver", choices=("ou", "rtp", "abp"), default="ou",
                   help="self-propulsion for fox/ucn/naive: active OU, run-and-tumble, active Brownian")
    s.add_argument("--speed", type=_float, default=None, help="rtp/abp swim speed v0")
    s.add_argument("--tumble-rate", type=_float, default=None, help="rtp tumble rate α (τ = 1/α)")
    s.add_argument("--rot-diffusion", type=_float, default=None, help="abp rotational diffusion D_r")
    s.add_argument("--no-driver-correction", action="store_true",
                   help="fox with rtp/abp: leave out the non-Gaussian driver correction")
    s.add_argument("--dt", type=_float, default=None, help="step Δs (default min(τ/20, 0.002))")
    s.add_argument("--n", type=int, default=10_000, help="number of particles")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--save-every", type=int, default=None, help="keep a trajectory frame every k steps")
    s.add_argument("--x64", action="store_true", help="compute in float64")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--out", required=True, help="output .npz")
    s.set_defaults(func=cmd_sample)

    tr = sub.add_parser("train", help="learn a score model from data (denoising score matching)")
    tr.add_argument("--data", default=None,
                    help="built-in set (two-moons, swiss-roll, rings, checkerboard, eight-gaussians, "
                         "pinwheel, image), image:PATH.png, or an N x d .npy/.csv file")
    tr.add_argument("--out", required=True, help="model folder (checkpoints, config, loss log)")
    _add_process_options(tr)
    tr.add_argument("--t-max", type=_float, default=6.0, help="largest training time = sampling T")
    tr.add_argument("--steps", type=int, default=None, help="training steps in all (default 3000)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--kind", choices=("energy", "vector"), default="energy",
                    help="scalar energy E(x,t) (S = -grad E) or a vector score network")
    tr.add_argument("--joint", action="store_true", help="learn the joint (x, eta) score (method exact)")
    tr.add_argument("--width", type=int, default=64)
    tr.add_argument("--depth", type=int, default=3)
    tr.add_argument("--n-fourier", type=int, default=32,
                    help="random Fourier input features (0: plain MLP on x)")
    tr.add_argument("--batch", type=int, default=512)
    tr.add_argument("--lr", type=_float, default=2e-3)
    tr.add_argument("--n-data", type=int, default=10_000, help="points drawn from a built-in set")
    tr.add_argument("--no-standardize", action="store_true", help="train in data coordinates")
    tr.add_argument("--resume", action="store_true", help="continue the model in --out")
    tr.add_argument("--no-progress", action="store_true")
    tr.set_defaults(func=cmd_train)

    d = sub.add_parser("demo", help="fox vs exact vs naive on a 2D mixture: figure + report")
    d.add_argument("--out", default="activegen-demo", help="output folder")
    d.add_argument("--n", type=int, default=20_000)
    d.add_argument("--tau", type=_float, default=0.1)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=cmd_demo)

    e = sub.add_parser("experiment", help="reproducible experiments")
    esub = e.add_subparsers(dest="experiment", required=True)
    t = esub.add_parser("tau-sweep", help="accuracy of each method against τ")
    t.add_argument("--target", default=None, help="target JSON (default: bimodal 1D mixture)")
    t.add_argument("--taus", type=_floats, default=[0.2, 0.1, 0.05])
    t.add_argument("--methods", type=lambda s: s.split(","), default=["exact", "fox", "naive"])
    t.add_argument("--n", type=int, default=40_000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=None,
                   help="comma-separated seeds (one run each; spread in the figure)")
    _add_process_options(t, with_tau=False)
    t.add_argument("--driver", choices=("ou", "rtp", "abp"), default="ou",
                   help="self-propulsion for fox/ucn/naive (effective τ, D_A matched)")
    t.add_argument("--no-driver-correction", action="store_true")
    t.add_argument("--x64", action="store_true")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--out", default="tau-sweep", help="output folder")
    t.set_defaults(func=cmd_tau_sweep)
    g = esub.add_parser("learned-gallery",
                        help="learned scores: gallery of 2D sets, energy vs vector, Hutchinson")
    g.add_argument("--out", default="docs/figures", help="output folder")
    g.add_argument("--steps", type=int, default=3000, help="training steps per model")
    g.add_argument("--n", type=int, default=5000, help="particles per gallery panel (2n: mixture)")
    g.add_argument("--tau", type=_float, default=0.05, help="τ of the gallery (mixture: 0.1)")
    g.add_argument("--t-final", type=_float, default=3.0, help="T of the gallery")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--parts", type=lambda s: s.split(","), default=["hutchinson", "mixture", "gallery"])
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=cmd_learned_gallery)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda msg, cat, *a, **k: print(
            f"activegen: warning: {msg}", file=sys.stderr
        )
        try:
            return args.func(args)
        except ActivegenError as exc:
            print(f"activegen: error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
