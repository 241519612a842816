"""Accuracy of a replayed protocol against its grid resolution (docs/protocol.md).

The 2D mixture `default_target_2d()`, τ = 0.1, β = D_A = 1, D_T = 0, T = 6, method fox.
For each grid (spatial spacing, number of time points, time-grid kind) the protocol is
exported, replayed with n particles (same seeds and step Δs as the direct sampler) and the
sliced W1 to the target is measured; the direct `fox` sampler and the finite-sample floor
are reported beside it. Usage:
    python benchmarks/protocol_resolution.py [--n 20000] [--seeds 0,1] [--out table.md]
"""

import argparse
import json
import time
import warnings

import numpy as np

from activegen import ActiveOU, default_target_2d, evaluate, sample
from activegen.studies.common import STUDY_SCHEME
from activegen.lab.export import export_protocol
from activegen.lab.grid import DEFAULT_TIME_POINTS
from activegen.lab.protocol import replay

# (spacing, time points, t0): spacing None = the default (σ_min/4 rounded); t0 None = the
# default geometric time grid, 1e6 ≈ uniform in t
GRIDS = [
    (0.8, 100, None), (0.4, 100, None), (0.2, 100, None), (0.1, 100, None), (0.05, 100, None),
    (0.1, 5, None), (0.1, 10, None), (0.1, 25, None), (0.1, 50, None), (0.1, 200, None),
    (0.1, 10, 1e6), (0.1, 50, 1e6),
    (None, DEFAULT_TIME_POINTS, None),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--out", default=None, help="write the Markdown table and a JSON here")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    tg, proc = default_target_2d(), ActiveOU(1.0, 0.0, 1.0, a.tau)

    def score(x, seed):
        ev = evaluate(x, tg, seed=seed)
        return ev["metrics"]["w1"], ev["floor"]["w1"]

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = [score(sample(tg, "fox", proc, a.n, seed=s, scheme=STUDY_SCHEME).samples, s) for s in seeds]
        d_w1 = float(np.mean([d[0] for d in direct]))
        floor = float(np.mean([d[1] for d in direct]))
        print(f"direct fox: W1 {d_w1:.4f} (per seed {[round(d[0], 4) for d in direct]}), "
              f"floor {floor:.4f}", flush=True)
        for sp, nt, t0 in GRIDS:
            t = time.perf_counter()
            pr = export_protocol(tg, "fox", proc, spacing=sp, time_points=nt, t0=t0)
            t_exp = time.perf_counter() - t
            w = [score(replay(pr, a.n, seed=s, scheme=STUDY_SCHEME).samples, s)[0] for s in seeds]
            row = dict(spacing=float(pr.spacing[0]), default=sp is None, time_points=nt, time_grid="uniform" if t0 else "geometric",
                       shape=list(pr.shape), w1=float(np.mean(w)), w1_seeds=w,
                       ratio=float(np.mean(w)) / d_w1, export_s=t_exp,
                       mbytes=(pr.force.nbytes + pr.potential.nbytes) / 1e6)
            rows.append(row)
            print(f"spacing {row['spacing']:5.3f}  {nt:4d} {row['time_grid']:9s} times: W1 {row['w1']:.4f} "
                  f"({row['ratio']:.2f}x direct)  grid {pr.shape}  {row['mbytes']:.1f} MB",
                  flush=True)
    lines = [f"direct fox: sliced W1 {d_w1:.4f}, floor {floor:.4f} "
             f"(n = {a.n}, seeds {seeds}, τ = {a.tau})", "",
             "| spacing | time points | time grid | grid | W1 replay | × direct fox | table MB |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['spacing']:g}{' (default)' if r['default'] else ''} | {r['time_points']} | {r['time_grid']} | "
                     f"{r['shape'][0]}×{r['shape'][1]} | {r['w1']:.4f} | {r['ratio']:.2f} | "
                     f"{r['mbytes']:.1f} |")
    md = "\n".join(lines)
    print(md)
    if a.out:
        with open(a.out, "w") as f:
            f.write(md + "\n")
        with open(a.out.rsplit(".", 1)[0] + ".json", "w") as f:
            json.dump(dict(direct_w1=d_w1, direct=direct, floor=floor, rows=rows, n=a.n,
                           seeds=seeds, tau=a.tau), f, indent=2)


if __name__ == "__main__":
    main()
