"""The activity-schedule sampler (`activegen.samplers.schedule`) against fox and exact on the
validity-map mixtures (`studies.validity_map.validity_target`), D_T = 0, β = D_A = 1, T = 3:
W1 to a 10⁶-draw reference, with the finite-sample floor (docs/schedule.md).

    python benchmarks/schedule_sweep.py --sigma 0.4 --tau 0.1 \
        --configs 0.005:0.1,0.01:0.3,eps0.1 [--methods fox,exact] [--n 100000] [--seeds 1,2,3] \
        [--grid adaptive] [--out results.jsonl]

One JSON line per (config, seed) is appended to --out; a config is tau_min:t_ramp, or
epsE for ActivitySchedule.auto with budget E.
"""

import argparse
import json
import time

import jax
import numpy as np

from activegen import ActiveOU, sample, w1
from activegen.studies.common import study_options
from activegen.studies.validity_map import validity_target
from activegen.samplers.schedule import sample_scheduled


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sigma", type=float, default=0.4)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--configs", default="")
    ap.add_argument("--methods", default="")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--grid", default="adaptive")
    ap.add_argument("--floor", type=int, default=0, help="number of exact draws for the floor")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    tg = validity_target(a.sigma)
    ref = np.asarray(tg.sample(jax.random.key(123), 1_000_000))
    p = ActiveOU(1.0, 0.0, 1.0, a.tau)
    seeds = [int(s) for s in a.seeds.split(",")]
    rows = []
    if a.floor:
        keys = jax.random.split(jax.random.key(104729), a.floor)
        vals = [w1(np.asarray(tg.sample(k, a.n)), ref) for k in keys]
        rows.append(dict(sigma=a.sigma, tau=a.tau, method="floor", n=a.n,
                         w1=float(np.mean(vals)), w1_sd=float(np.std(vals, ddof=1))))
    for m in filter(None, a.methods.split(",")):
        for sd in seeds:
            r = sample(tg, m, p, a.n, seed=sd, t_final=3.0, warn=False, **study_options(m))
            rows.append(dict(sigma=a.sigma, tau=a.tau, method=m, n=a.n, seed=sd,
                             w1=w1(r.samples, ref), n_steps=r.info["n_steps"],
                             run_s=r.info["run_s"], tjf=r.info.get("tau_grad_force")))
            print(rows[-1], flush=True)
    for cfg in filter(None, a.configs.split(",")):
        if cfg.startswith("eps"):  # the automatic schedule with budget eps
            kw = dict(eps=float(cfg[3:]))
        else:
            tmin, tr = (float(v) for v in cfg.split(":"))
            kw = dict(tau_min=tmin, t_ramp=tr)
        for sd in seeds:
            t0 = time.perf_counter()
            r = sample_scheduled(tg, p, a.n, seed=sd, t_final=3.0, grid=a.grid, warn=False, **kw)
            rows.append(dict(sigma=a.sigma, tau=a.tau, method="scheduled", config=cfg,
                             tau_min=r.info["tau_min"], t_ramp=r.info["t_ramp"],
                             grid=a.grid, n=a.n, seed=sd, w1=w1(r.samples, ref),
                             n_steps=r.info["n_steps"], run_s=r.info["run_s"],
                             wall_s=time.perf_counter() - t0, tjf=r.info["tau_grad_force"]))
            print(rows[-1], flush=True)
    if a.out:
        with open(a.out, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
