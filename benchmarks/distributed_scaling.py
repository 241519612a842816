"""One process against local Dask clusters of 1 and 2 workers, side by side in one run
(docs/distributed.md): `fox` on the 1D bimodal mixture, n particles in blocks of 16 384,
float32, the default task size (about two tasks per worker). Each configuration runs twice:
the first compiles (workers fill the persistent cache), the second is timed. Prints wall seconds and particle-steps per second, and checks
that every configuration gives the same samples. Usage:
    python benchmarks/distributed_scaling.py [--n 131072] [--t-final 2]
"""

import argparse
import tempfile
import time
import warnings

import jax
import numpy as np

from activegen import ActiveOU, sample
from activegen.cluster.client import connect
from activegen.studies.common import STUDY_SCHEME
from activegen.physics.targets import default_target_1d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=131_072)
    ap.add_argument("--t-final", type=float, default=2.0)
    a = ap.parse_args()
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="xla-"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    tg, proc = default_target_1d(), ActiveOU(1.0, 0.0, 1.0, 0.1)
    kw = dict(seed=0, t_final=a.t_final, scheme=STUDY_SCHEME)
    print(f"fox, 1D mixture, n = {a.n} ({-(-a.n // 16384)} blocks), T = {a.t_final}, float32")
    ref, rows = None, []
    for workers in (None, 1, 2):
        with connect(workers=workers) as client, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            extra = {} if client is None else {"client": client}
            sample(tg, "fox", proc, a.n, **kw, **extra)  # compile
            t0 = time.perf_counter()
            res = sample(tg, "fox", proc, a.n, **kw, **extra)
            wall = time.perf_counter() - t0
        steps = res.info["n_steps"]
        ref = res.samples if ref is None else ref
        same = np.array_equal(ref, res.samples)
        name = "one process" if workers is None else f"{workers} worker(s)"
        rows.append((name, wall, a.n * steps / wall, res.info.get("tasks", 1),
                     res.info["compile_s"], res.info["run_s"], same))
    print(f"{steps} steps")
    print("| run | wall s | particle-steps/s | tasks | compile s (sum) | run s (sum) | "
          "same samples |\n|---|---|---|---|---|---|---|")
    for name, wall, rate, tasks, comp, run, same in rows:
        print(f"| {name} | {wall:.2f} | {rate:.3g} | {tasks} | {comp:.1f} | {run:.1f} | "
              f"{'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
