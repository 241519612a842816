"""`activegen animate`: particles in the time-dependent potential (GIF, or MP4 where ffmpeg
exists)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ActivegenError, check_count, check_positive
from . import options as opt


def add_parser(sub) -> None:
    """The `animate` command."""
    an = sub.add_parser("animate", help="particles in the time-dependent potential (GIF/MP4)")
    opt.add_source_options(an)
    an.add_argument("--n", type=int, default=1000, help="number of particles")
    an.add_argument("--frames", type=int, default=60,
                    help="frames in [2, 1000], crowded near t = 0; exactly this many are "
                         "written (default 60)")
    an.add_argument("--fps", type=int, default=12)
    an.add_argument("--dt", type=opt.number, default=None,
                    help="step Δs (default the replay's: heun min(τ/3, 0.02), finer where "
                         "--frames needs more saved times)")
    an.add_argument("--seed", type=opt.seed, default=0)
    an.add_argument("--still", default=None, help="also write one frame as PNG")
    an.add_argument("--still-frame", type=int, default=None,
                    help="index of that frame (default 90%% of the way)")
    an.add_argument("--out", required=True, help="output .gif (or .mp4 where ffmpeg exists)")
    an.set_defaults(func=cmd_animate)


def cmd_animate(args) -> int:
    import math

    from ..figures import potential
    from ..lab.protocol import replay

    out = Path(args.out)
    check_count("--fps", args.fps)
    potential.movie_writer(out, args.fps)  # refuses a bad suffix, or MP4 without ffmpeg
    opt.out_file(args.out, out.suffix)
    if args.still is not None:
        opt.out_file(args.still, ".png", "--still")
    check_count("--n", args.n)
    if args.n > 5000:
        raise ActivegenError(f"--n: an animation shows at most 5000 particles, got {args.n}")
    check_count("--frames", args.frames)
    if not 2 <= args.frames <= potential.MAX_FRAMES:
        raise ActivegenError(f"--frames must lie in [2, {potential.MAX_FRAMES}], got {args.frames}")
    if args.still_frame is not None and not 0 <= args.still_frame < args.frames:
        raise ActivegenError(f"--still-frame must lie in [0, {args.frames - 1}], got {args.still_frame}")
    if args.dt is not None:
        check_positive("--dt", args.dt)
    proto, target = opt.protocol_from_args(args, progress=not args.no_progress)
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
    t0 = potential.protocol_t0(proto)
    finest = t0 * math.log1p(proto.t_final / t0) / max(1, args.frames - 1)
    every = max(1, int(finest / dt))
    res = replay(proto, args.n, seed=args.seed, dt=dt, save_every=every,
                 progress=not args.no_progress)
    idx = potential.animation_frames(res.times, proto.t_final, args.frames, t0)
    r = potential.animate(proto, res.trajectory[idx], res.times[idx], out, fps=args.fps,
                      target=target, still=args.still, still_index=args.still_frame,
                      progress=not args.no_progress)
    opt.note(potential.FIRST_ORDER_NOTE)
    why = "" if r["frames"] == args.frames else (
        f"; {args.frames} asked for, but the replay saved only {len(res.times)} distinct "
        "times: a smaller --dt gives more")
    print(f"wrote {out} ({r['frames']} frames{why})"
          + (f" and {r['still']}" if r["still"] else ""))
    return 0
