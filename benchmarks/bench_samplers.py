"""Sampler speed and memory, side by side with a plain numpy baseline (issue 6).

Prints, per configuration, particle-steps per second (run only), compile time (apart)
and the peak resident memory of the process; each configuration runs in a fresh
subprocess (float64 needs its own JAX setting, and peak RSS is per process).
Then the two targets of docs/performance.md: the whole `activegen sample` command
against the numpy `fox` (numpy_fox.py) at N = 10⁵ on a 2D 8-mode mixture, and
10⁶ particles × 1000 steps of `fox`, compile included; and XLA's FLOP count per
particle-step against the machine's peak.

    python benchmarks/bench_samplers.py            # the default grid (~10 min on 2 cores)
    python benchmarks/bench_samplers.py --quick    # a few configurations (~2 min)
    python benchmarks/bench_samplers.py --full     # every method × N × K × d × dtype (long)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = ("fox", "ucn", "exact", "passive", "naive")
TAU = 0.1


def mixture(k: int, d: int, sigma: float = 0.5):
    """K isotropic modes of std σ: in 2D on a circle of radius 3 (the REFERENCE-FIGURES
    setting at K = 8), otherwise at reproducible random points in [−3, 3]^d."""
    import numpy as np

    from activegen import GaussianMixture

    if d == 2:
        ang = 2 * np.pi * np.arange(k) / k
        means = np.c_[3 * np.cos(ang), 3 * np.sin(ang)]
    else:
        means = np.random.default_rng(k * 100 + d).uniform(-3, 3, size=(k, d))
    return GaussianMixture.from_stds(np.ones(k), means, [sigma] * k)


def worker(method, d, k, dtype, n, chunk):
    """One configuration: returns run rate, compile estimate and peak RSS."""
    if dtype == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
    import warnings

    import jax.numpy as jnp

    from activegen import ActiveOU, sample
    from activegen.studies.common import study_options

    tg, proc = mixture(k, d), ActiveOU(1.0, 0.0, 1.0, TAU)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    h = 0.002
    steps = int(min(2000, max(20, 3e7 / n / max(1, k * d * d / 32))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = sample(tg, method, proc, n, seed=0, t_final=steps * h, dt=h,
                      dtype=getattr(jnp, dtype), chunk_size=chunk,
                      **study_options(method)).info
    run_rate, compile_s = n * steps / info["run_s"], info["compile_s"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rate": run_rate, "compile_s": compile_s, "peak_mb": peak, "base_mb": rss0,
            "steps": steps}


def run_worker(cfg):
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(cfg)],
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def grid(args):
    ns = (1_000, 10_000, 100_000, 1_000_000)
    if args.full:
        return [dict(method=m, d=d, k=k, dtype=t, n=n, chunk=None)
                for m, d, k, t, n in itertools.product(
                    METHODS, (1, 2, 8), (1, 8, 64), ("float32", "float64"), ns)]
    if args.quick:
        return [dict(method="fox", d=2, k=8, dtype="float32", n=n, chunk=None)
                for n in (1_000, 100_000)]
    cfgs = [dict(method=m, d=2, k=8, dtype="float32", n=n, chunk=None)
            for m in METHODS for n in ns]
    cfgs += [dict(method="fox", d=2, k=8, dtype="float64", n=n, chunk=None) for n in ns]
    cfgs += [dict(method="fox", d=d, k=k, dtype="float32", n=100_000, chunk=None)
             for d in (1, 2, 8) for k in (1, 8, 64) if (d, k) != (2, 8)]
    cfgs += [dict(method="fox", d=2, k=8, dtype="float32", n=1_000_000, chunk=65_536)]
    return cfgs


def whole_command(n, t_final, dt, tmp):
    """Wall time of `activegen sample` (fresh process: import, compile, run, write)."""
    from activegen import GaussianMixture  # noqa: F401  (import check only)

    tg = mixture(8, 2)
    tpath = Path(tmp) / "eight.json"
    tpath.write_text(json.dumps(tg.to_dict()))
    exe = Path(sys.executable).parent / "activegen"
    cmd = [str(exe) if exe.exists() else "activegen", "sample", "--target", str(tpath),
           "--method", "fox", "--tau", str(TAU), "--n", str(n), "--t-final", str(t_final),
           "--dt", str(dt), "--scheme", "euler", "--seed", "0", "--no-progress",
           "--out", str(Path(tmp) / "o.npz")]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def flops_per_particle_step(n=100_000):
    """XLA's cost analysis of one `fox` step (force field + OU driver) on n particles."""
    import jax
    import jax.numpy as jnp

    from activegen import ActiveOU, MixtureScore
    from activegen._xla import unrolled_threefry
    from activegen.physics.drivers import OUDriver
    from activegen.physics.forces import force_fox
    from activegen.samplers import score_field as _score_field

    tg, proc = mixture(8, 2), ActiveOU(1.0, 0.0, 1.0, TAU)
    field = _score_field(force_fox, MixtureScore(tg, proc), proc, jnp.float32, 0.0)
    drv = OUDriver(TAU, 1.0)

    def step(x, eta, key):  # the engine's layout: particles last, (d, N)
        f, jn = field(1.0, x, eta)
        eta_new = drv.step(eta, 0.002, key)
        return x + (f + 0.5 * (eta + eta_new)) * 0.002, eta_new, jnp.mean(jn)

    x = jnp.zeros((2, n), jnp.float32)
    with unrolled_threefry():
        cost = jax.jit(step).lower(x, x, jax.random.key(0)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return cost.get("flops", float("nan")) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(**json.loads(args.worker))))
        return
    import numpy as np

    import activegen  # noqa: F401  (XLA settings)
    from activegen import ActiveOU

    sys.path.insert(0, str(HERE))
    from numpy_fox import rate as numpy_rate

    print(f"cores: {os.cpu_count()}  XLA_FLAGS: {os.environ.get('XLA_FLAGS', '')}")
    results = {"configs": []}
    print(f"{'method':8s}{'d':>3s}{'K':>4s} {'dtype':8s}{'N':>9s}{'chunk':>8s}"
          f"{'particle-steps/s':>18s}{'compile s':>11s}{'peak MB':>9s}")
    for cfg in grid(args):
        r = run_worker(cfg)
        results["configs"].append({**cfg, **r})
        if "error" in r:
            print(f"{cfg} failed: {r['error']}")
            continue
        print(f"{cfg['method']:8s}{cfg['d']:3d}{cfg['k']:4d} {cfg['dtype']:8s}{cfg['n']:9d}"
              f"{cfg['chunk'] or '-':>8}{r['rate']:18.3g}{r['compile_s']:11.1f}{r['peak_mb']:9.0f}")

    tg, proc = mixture(8, 2), ActiveOU(1.0, 0.0, 1.0, TAU)
    np_rate = numpy_rate(tg, proc, 100_000, 10, 6.0)
    with tempfile.TemporaryDirectory() as tmp:
        wall = whole_command(100_000, 6.0, 0.002, tmp)
        wall_big = whole_command(1_000_000, 2.0, 0.002, tmp)
    np_time = 100_000 * 3000 / np_rate
    fl = flops_per_particle_step()
    jax_rate = next((c["rate"] for c in results["configs"] if c.get("rate") and c["method"] == "fox"
                     and c["d"] == 2 and c["k"] == 8 and c["dtype"] == "float32"
                     and c["n"] == 100_000), float("nan"))
    peak = 2 * 2.45e9 * 32  # 2 cores × 2.45 GHz × 2 FMA units × 8 float32 lanes × 2
    results.update(numpy_rate=np_rate, numpy_time_s=np_time, command_s=wall,
                   speedup=np_time / wall, big_command_s=wall_big, flops=fl,
                   fraction_of_peak=fl * jax_rate / peak if np.isfinite(jax_rate) else None)
    print(f"\nnumpy fox (float64, closed form), 2D 8 modes, N = 1e5: {np_rate:.3g} particle-steps/s")
    print(f"`activegen sample --method fox --n 100000` (T = 6, 3000 steps), whole command: "
          f"{wall:.1f} s; numpy for the same 3·10⁸ particle-steps: {np_time:.0f} s "
          f"-> {np_time / wall:.0f}×")
    print(f"`activegen sample --method fox --n 1000000` × 1000 steps, whole command: {wall_big:.1f} s")
    print(f"XLA flops per particle-step (fox, 2D, 8 modes): {fl:.0f}; at {jax_rate:.3g} "
          f"particle-steps/s that is {fl * jax_rate / 1e9:.1f} GFLOP/s, "
          f"{100 * fl * jax_rate / peak:.1f}% of the 2-core float32 FMA peak ({peak / 1e9:.0f} GFLOP/s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
