"""Per-step cost of each method and scheme against its Euler step (issue 29), and what a
short run pays for being cut into segments.

Per step: each method's compiled segment program (`engine.programs`, the engine's own: one
group of LANES blocks of ≤ 16 384 particles side by side) timed over K steps, all
configurations in turn, `--repeat` rounds; the ratio to the method's `euler` step is taken
within each round (side by side: the machine is shared) and reported as the median and the
range over the rounds. FLOPs per particle-step: XLA's cost analysis of one vmapped step of
the group; the fraction of the 2-core float32 FMA peak (2 × 2.45 GHz × 32 = 157 GFLOP/s)
at the measured rate.

Runs (`--runs`): `sample()`'s run_s per step of a default-length `fox` run (heun, the
default step) against the same at a tenth of the step (10× the steps), alternated, and the
measured overhead of one segment call (`engine.measure_overhead`).

Fixed costs (`--fixed`): the whole `activegen sample` command in fresh processes, caches
warm, split into the import (JAX alone and the CLI), compile_s (tracing and loading the
compiled programs), run_s and the rest.

    python benchmarks/bench_step_cost.py                  # 2D 8 modes, 10⁵ particles
    python benchmarks/bench_step_cost.py --d 1 --n 200000 --runs
    python benchmarks/bench_step_cost.py --no-steps --fixed   # the command's fixed costs
    python benchmarks/bench_step_cost.py --json docs/step_cost.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEAK = 2 * 2.45e9 * 32  # 2 cores, AVX2: 2 FMA units × 8 float32 lanes × 2 FLOPs
CONFIGS = (("fox", "euler"), ("fox", "heun"), ("ucn", "euler"), ("ucn", "heun"),
           ("naive", "euler"), ("naive", "heun"), ("fox-sc", "euler"), ("fox-sc", "heun"),
           ("passive", "euler"), ("passive", "heun"), ("exact", "euler"), ("exact", "lawson"))


def target(d: int):
    if d == 1:
        from activegen import default_target_1d

        return default_target_1d()
    sys.path.insert(0, str(HERE))
    from bench_samplers import mixture

    return mixture(8, d)


def compiled_step(method, scheme, tg, proc, n):
    """(segment call of K steps on one group, particles per group, FLOPs per particle-step)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from activegen._xla import unrolled_threefry
    from activegen.samplers import engine
    from activegen.samplers.api import build_plan

    dtype = jnp.float32
    _, _, plan = build_plan(tg, method, proc, n, t_final=3.0, dt=0.01, scheme=scheme,
                            dtype=dtype)
    b, nb, _ = engine.blocks(n, None)
    lanes = min(engine.LANES, nb)
    key = jax.random.key(0)
    init_c, seg, _ = engine.programs(plan.stepper, plan.grid, key, n, b, lanes, dtype)
    carry = init_c(np.arange(lanes, dtype=np.int32), key)

    state = {k: v for k, v in carry.items() if k != "block"}
    s, h = plan.grid.point(0, dtype)
    v_step = jax.vmap(plan.stepper.step, in_axes=(0, None, None, None, 0))
    with unrolled_threefry():
        cost = jax.jit(lambda c, k: v_step(c, 0, s, h, k)).lower(
            state, jax.random.split(key, lanes)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops = cost.get("flops", float("nan")) / (lanes * b)

    def call(k_steps):
        t0 = time.perf_counter()
        jax.block_until_ready(seg(carry, key, np.int32(0), np.int32(k_steps), np.int32(1)))
        return time.perf_counter() - t0

    return call, lanes * b, flops


def step_table(a, tg, proc):
    import numpy as np

    calls = {}
    for m, sch in CONFIGS:
        if m in a.skip.split(","):
            continue
        call, work, flops = compiled_step(m, sch, tg, proc, a.n)
        call(2)  # warm-up
        k = max(4, int(a.seconds / max(call(4) / 4, 1e-6)))  # about a.seconds per timing
        calls[(m, sch)] = (call, work, flops, k)
    times = {c: [] for c in calls}
    for _ in range(a.repeat):
        for c, (call, work, _, k) in calls.items():
            times[c].append(call(k) / (k * work))  # seconds per particle-step
    rows = []
    print(f"{'method':8s} {'scheme':7s} {'ns/p-step':>10s} {'vs euler (range)':>22s} "
          f"{'FLOPs/p-step':>12s} {'of peak':>8s}")
    for (m, sch), (_, work, flops, _) in calls.items():
        t = np.array(times[(m, sch)])
        base = np.array(times.get((m, "euler"), t))
        ratio = t / base
        row = dict(method=m, scheme=sch, ns_per_particle_step=float(np.median(t) * 1e9),
                   ratio=float(np.median(ratio)), ratio_min=float(ratio.min()),
                   ratio_max=float(ratio.max()), flops=flops,
                   flops_ratio=flops / calls.get((m, "euler"), calls[(m, sch)])[2],
                   peak_fraction=flops / float(np.median(t)) / PEAK)
        rows.append(row)
        print(f"{m:8s} {sch:7s} {row['ns_per_particle_step']:10.2f} "
              f"{row['ratio']:8.2f} ({row['ratio_min']:.2f}–{row['ratio_max']:.2f}) "
              f"{flops:12.0f} {100 * row['peak_fraction']:7.0f}%", flush=True)
    return rows


def run_table(a, tg, proc):
    """A default-length fox run against a 10× longer one (per step), alternated."""
    import numpy as np

    from activegen import sample
    from activegen.samplers import engine
    from activegen.samplers.schemes import active_heun_default_dt

    dt = active_heun_default_dt(proc.tau)
    per = {"default": [], "long": []}
    for _ in range(a.repeat):
        for name, step in (("default", dt), ("long", dt / 10)):
            r = sample(tg, "fox", proc, a.n, seed=1, t_final=3.0, dt=step)
            per[name].append(r.info["run_s"] / r.info["n_steps"])
    ratio = np.array(per["default"]) / np.array(per["long"])
    out = dict(default_ms=float(np.median(per["default"]) * 1e3),
               long_ms=float(np.median(per["long"]) * 1e3), ratio=float(np.median(ratio)),
               ratio_min=float(ratio.min()), ratio_max=float(ratio.max()))
    import jax

    x = jax.numpy.zeros(8)
    out["call_overhead_ms"] = engine.measure_overhead(lambda: x + 1, repeat=20) * 1e3
    print(f"fox heun per step: default run {out['default_ms']:.2f} ms, 10x longer run "
          f"{out['long_ms']:.2f} ms: ratio {out['ratio']:.3f} "
          f"({out['ratio_min']:.3f}–{out['ratio_max']:.3f}); one call's overhead "
          f"{out['call_overhead_ms']:.3f} ms", flush=True)
    return out


def fixed_costs(a, tg, repeat):
    """The whole `activegen sample --method fox` command (fresh processes, cache warm): its
    wall time, the import of JAX and of activegen's CLI, and the command's compile_s
    (tracing + loading the programs) and run_s from the .npz; the rest is the process
    start, argument parsing, building the plan, the start draw and writing."""
    import subprocess
    import tempfile

    import numpy as np

    exe = [sys.executable, "-m", "activegen"]
    imp = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tpath = Path(tmp) / "t.json"
        tpath.write_text(json.dumps(tg.to_dict()))
        out = Path(tmp) / "o.npz"
        cmd = exe + ["sample", "--target", str(tpath), "--method", "fox", "--tau",
                     str(a.tau), "--n", str(a.n), "--t-final", "3", "--seed", "0",
                     "--no-progress", "--out", str(out)]
        subprocess.run(cmd, check=True, capture_output=True)  # the caches warm
        for _ in range(repeat):
            t_jax, t_cli = (float(subprocess.run(
                [sys.executable, "-c", imp.format(m)], check=True, capture_output=True,
                text=True).stdout) for m in ("jax", "activegen.cli"))
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            wall = time.perf_counter() - t0
            with np.load(out, allow_pickle=True) as z:
                info = json.loads(str(z["info"])) if "info" in z.files else {}
            rows.append(dict(wall=wall, import_jax=t_jax, import_cli=t_cli,
                             compile_s=info.get("compile_s"), run_s=info.get("run_s")))
    med = {k: float(np.median([r[k] for r in rows if r[k] is not None] or [np.nan]))
           for k in rows[0]}
    med["rest"] = med["wall"] - med["import_cli"] - med["compile_s"] - med["run_s"]
    print("whole command (median of %d): %.2f s = import %.2f (JAX %.2f) + compile/load "
          "%.2f + run %.2f + rest %.2f" % (repeat, med["wall"], med["import_cli"],
                                          med["import_jax"], med["compile_s"], med["run_s"],
                                          med["rest"]), flush=True)
    return dict(median=med, rows=rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=2, help="1: the broad 1D mixture; else 8 modes")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--tau", type=float, default=0.05)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.2, help="per timing")
    ap.add_argument("--skip", default="", help="methods to leave out (comma separated)")
    ap.add_argument("--runs", action="store_true", help="also the short-run overhead")
    ap.add_argument("--fixed", action="store_true", help="also the command's fixed costs")
    ap.add_argument("--no-steps", action="store_true", help="leave out the per-step table")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    import os

    import activegen  # noqa: F401  (XLA flags before JAX starts)
    from activegen import ActiveOU

    warnings.simplefilter("ignore")
    tg, proc = target(a.d), ActiveOU(1.0, 0.0, 1.0, a.tau)
    print(f"d = {a.d}, n = {a.n}, tau = {a.tau}, float32; load {os.getloadavg()[0]:.1f}",
          flush=True)
    out = dict(d=a.d, n=a.n, tau=a.tau, load=os.getloadavg()[0])
    if not a.no_steps:
        out["steps"] = step_table(a, tg, proc)
    if a.runs:
        out["runs"] = run_table(a, tg, proc)
    if a.fixed:
        out["fixed"] = fixed_costs(a, tg, a.repeat)
    out["load_after"] = os.getloadavg()[0]
    if a.json:
        from activegen.files import write_json

        write_json(a.json, out, indent=1)


if __name__ == "__main__":
    main()
