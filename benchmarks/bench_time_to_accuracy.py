"""Time to accuracy (issue 17): the whole `activegen sample --method fox` command against the
plain numpy V_F sampler (numpy_fox.py, float64, Euler steps with the exact OU step of η) at
Δs = τ/20, on the 2D 8-mode mixture of bench_samplers.py (σ = 0.5 on a circle of radius 3),
10⁵ and 10⁶ particles (`--ns`), T = 3, τ = 0.05.

For numpy: its loop time (the start drawn apart) and sliced W1 to 10⁶ exact draws. For
activegen: the whole command (fresh process: import, compile or compiled-program cache,
run, write) at its default step and at coarser steps, each run twice and the second timed
(the cache warm, as a user's second run), and the W1 of its samples. The figure: numpy's
time over the command's for the coarsest step whose W1 is no worse than numpy's (within
the W1 floor's standard deviation, which is what one seed resolves).

numpy's steps all cost the same: above `--numpy-max-n` particles (default 10⁵: 10⁶ would
take ~30 min) it runs the N particles for a tenth of the steps (`--numpy-fraction`) at the
same Δs and its time is scaled up by the steps (said so in the output; per particle it is
not the 10⁵ figure: its (N, K) arrays leave the cache at 10⁶), and the step's accuracy is
judged at 10⁵, where both ran to the end (the bias of a step does not depend on N; only the
W1 floor does).

    python benchmarks/bench_time_to_accuracy.py [--ns 100000,1000000] [--dts default,0.025]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def command(tpath, out, tau, n, t_final, dt, seed):
    exe = Path(sys.executable).parent / "activegen"
    cmd = [str(exe) if exe.exists() else "activegen", "sample", "--target", str(tpath),
           "--method", "fox", "--tau", str(tau), "--n", str(n), "--t-final", str(t_final),
           "--seed", str(seed), "--no-progress", "--out", str(out)]
    if dt != "default":
        cmd += ["--dt", str(dt)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", default="100000,1000000", help="particle numbers")
    ap.add_argument("--numpy-max-n", type=int, default=100_000)
    ap.add_argument("--numpy-fraction", type=float, default=0.1,
                    help="above --numpy-max-n: the share of numpy's steps run")
    ap.add_argument("--tau", type=float, default=0.05)
    ap.add_argument("--t-final", type=float, default=3.0)
    ap.add_argument("--dts", default="default,0.02,0.025",
                    help="activegen steps to time ('default': the method's own)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    import jax
    import numpy as np

    sys.path.insert(0, str(HERE))
    from bench_samplers import mixture
    from numpy_fox import fox_numpy

    from activegen import ActiveOU, w1, w1_floor

    tg, proc = mixture(8, 2), ActiveOU(1.0, 0.0, 1.0, a.tau)
    ref = np.asarray(tg.sample(jax.random.key(11), 1_000_000))
    n_steps = round(a.t_final / (a.tau / 20))
    fox_numpy(tg, proc, 1000, 1, a.t_final / n_steps)  # warm-up (the JAX start draw compiles)
    results, numpy_runs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tpath = Path(tmp) / "eight.json"
        tpath.write_text(json.dumps(tg.to_dict()))
        for n in (int(v) for v in a.ns.split(",")):
            floor, floor_sd = w1_floor(tg, n, ref)
            print(f"2D 8 modes, tau = {a.tau}, T = {a.t_final}, n = {n}: W1 floor {floor:.4f} "
                  f"± {floor_sd:.4f}", flush=True)
            n_np = min(n, a.numpy_max_n)
            if n_np not in numpy_runs:
                t0 = time.perf_counter()
                x_np = fox_numpy(tg, proc, n_np, n_steps, a.t_final, seed=a.seed)
                numpy_runs[n_np] = (time.perf_counter() - t0, w1(x_np, ref),
                                    w1_floor(tg, n_np, ref)[1])
            np_s, np_w1, np_sd = numpy_runs[n_np]
            scaled = ""
            if n_np < n:  # n particles for part of the steps, the time scaled by the steps
                k = max(1, round(n_steps * a.numpy_fraction))
                t0 = time.perf_counter()
                fox_numpy(tg, proc, n, k, a.t_final * k / n_steps, seed=a.seed)
                np_s = (time.perf_counter() - t0) * n_steps / k
                scaled = f" ({k} of the steps run, scaled x{n_steps / k:g})"
            print(f"numpy fox, dt = tau/20 ({n_steps} steps): {np_s:.1f} s{scaled}, W1 "
                  f"{np_w1:.4f} at n = {n_np}", flush=True)
            rows = []
            for dt in a.dts.split(","):
                out = Path(tmp) / "o.npz"
                command(tpath, out, a.tau, n, a.t_final, dt, a.seed)  # cache warm-up
                wall = command(tpath, out, a.tau, n, a.t_final, dt, a.seed)
                with np.load(out) as z:
                    x = z["samples"]
                err = w1(x, ref)
                # accuracy judged where numpy ran: the row at n_np (this one if n = n_np)
                same = [r for r in (results[-1]["rows"] if n_np < n and results else [])
                        if r["dt"] == dt]
                ok = (same[0]["no_worse"] if same else err <= np_w1 + np_sd)
                rows.append(dict(dt=dt, command_s=wall, w1=err, speedup=np_s / wall,
                                 no_worse=bool(ok)))
                print(f"activegen sample --method fox (dt {dt}): {wall:.2f} s, W1 {err:.4f} "
                      f"-> {np_s / wall:.0f}x numpy"
                      f"{'' if ok else '  (less accurate than numpy)'}", flush=True)
            good = [r for r in rows if r["no_worse"]]
            best = max(good, key=lambda r: r["speedup"]) if good else None
            if best:
                print(f"time to accuracy at n = {n}: {best['speedup']:.0f}x (dt {best['dt']})")
            results.append(dict(n=n, floor=floor, floor_sd=floor_sd, numpy_s=np_s,
                                numpy_w1_n=n_np, numpy_w1=np_w1, rows=rows,
                                speedup=best["speedup"] if best else None))
    if a.json:
        Path(a.json).write_text(json.dumps(dict(tau=a.tau, t_final=a.t_final, runs=results),
                                           indent=1))

if __name__ == "__main__":
    main()
