"""Accuracy per step (issue 17): error against Δs and against run time, old scheme beside
new, for each method on the broad 1D mixture (σ = 0.8, 1.0), τ = 0.05, T = 3.

For each method and scheme: W1 to a 4·10⁵-point exact reference at Δs = τ/40 … τ/2 and
at the method's default step, with the run time (compile apart) and the score/force
evaluations per particle. Then, for passive, exact and fox, the issue's target: the new
default step against the fine step (Δs = τ/40, the old scheme): W1 within 1.15× (+ half
the floor) in at most a third of the old default's run time.

    python benchmarks/bench_steps.py                    # 2·10⁵ particles (~15 min, 2 cores)
    python benchmarks/bench_steps.py --n 50000 --methods fox,passive
    python benchmarks/bench_steps.py --json docs/bench_steps.json

Run times on a shared machine are noisy: each configuration is timed `--repeat` times and
the smallest kept.
"""

from __future__ import annotations

import argparse
import json
import warnings

#: (method, old scheme, new scheme)
PAIRS = {"passive": ("euler", "heun"), "exact": ("euler", "lawson"), "fox": ("euler", "heun"),
         "ucn": ("euler", "heun"), "naive": ("euler", "heun"), "fox-sc": ("euler", "heun")}
FRACS = (40, 20, 10, 5, 4, 2.5, 2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--tau", type=float, default=0.05)
    ap.add_argument("--t-final", type=float, default=3.0)
    ap.add_argument("--methods", default="passive,exact,fox")
    ap.add_argument("--extra-schemes", default="exact:strang,exact:strang-euler",
                    help="more method:scheme pairs to measure (comma separated)")
    ap.add_argument("--fracs", default=",".join(map(str, FRACS)))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    import jax
    import numpy as np

    from activegen import ActiveOU, default_target_1d, sample, w1, w1_floor
    from activegen.samplers.schemes import SCHEMES

    warnings.simplefilter("ignore")
    tg = default_target_1d()
    ref = np.asarray(tg.sample(jax.random.key(11), 400_000))
    floor, floor_sd = w1_floor(tg, a.n, ref)
    proc = ActiveOU(1.0, 0.0, 1.0, a.tau)
    fracs = [float(f) for f in a.fracs.split(",")]
    runs = []
    todo = [(m, s) for m in a.methods.split(",") for s in PAIRS[m]]
    todo += [tuple(e.split(":")) for e in a.extra_schemes.split(",") if e
             and e.split(":")[0] in a.methods.split(",")]

    def one(m, scheme, dt):
        best = None
        for _ in range(a.repeat):
            r = sample(tg, m, proc, a.n, seed=a.seed, t_final=a.t_final, dt=dt, scheme=scheme)
            best = r if best is None or r.info["run_s"] < best.info["run_s"] else best
        evals = best.info["n_steps"] * SCHEMES[scheme].evals
        row = dict(method=m, scheme=scheme, dt=best.info["dt"], frac=a.tau / best.info["dt"],
                   w1=w1(best.samples, ref), run_s=best.info["run_s"], evals=evals,
                   default=dt is None)
        runs.append(row)
        print(f"{m:8s} {scheme:12s} dt=tau/{row['frac']:<5.3g} W1={row['w1']:.4f} "
              f"run={row['run_s']:6.2f}s evals={evals:6d}{'  (default)' if dt is None else ''}",
              flush=True)
        return row

    print(f"n = {a.n}, tau = {a.tau}, T = {a.t_final}; W1 floor {floor:.4f} ± {floor_sd:.4f}")
    for m, scheme in todo:
        for f in fracs:
            one(m, scheme, a.tau / f)
        one(m, scheme, None)

    print("\n| method | scheme | " + " | ".join(f"τ/{f:g}" for f in fracs) + " | default |")
    print("|---|---|" + "---|" * (len(fracs) + 1))
    for m, scheme in todo:
        rs = [r for r in runs if r["method"] == m and r["scheme"] == scheme]
        cells = [f"{r['w1']:.4f} ({r['run_s']:.2f} s)" for r in rs]
        print(f"| {m} | {scheme} | " + " | ".join(cells) + " |")

    print("\ntarget: new default vs the fine step (old scheme, τ/40) and the old default")
    summary = {}
    for m in a.methods.split(","):
        old, new = PAIRS[m]
        fine = next(r for r in runs if r["method"] == m and r["scheme"] == old
                    and abs(r["frac"] - 40) < 1e-6)
        d_old = next(r for r in runs if r["method"] == m and r["scheme"] == old and r["default"])
        d_new = next(r for r in runs if r["method"] == m and r["scheme"] == new and r["default"])
        bound = 1.15 * fine["w1"] + 0.5 * floor
        ratio_t = d_new["run_s"] / d_old["run_s"]
        ratio_e = d_new["evals"] / d_old["evals"]
        ok = d_new["w1"] <= bound and ratio_t <= 1 / 3
        summary[m] = dict(fine=fine["w1"], bound=bound, new=d_new["w1"], old=d_old["w1"],
                          time_ratio=ratio_t, eval_ratio=ratio_e, ok=ok,
                          new_dt=d_new["dt"], old_dt=d_old["dt"])
        print(f"{m:8s} fine {fine['w1']:.4f} bound {bound:.4f} | new default (dt {d_new['dt']:.4g}) "
              f"{d_new['w1']:.4f} | old default (dt {d_old['dt']:.4g}) {d_old['w1']:.4f} | "
              f"time ratio {ratio_t:.2f}, eval ratio {ratio_e:.2f} | {'met' if ok else 'NOT met'}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(dict(n=a.n, tau=a.tau, t_final=a.t_final, floor=floor, floor_sd=floor_sd,
                           runs=runs, summary=summary), fh, indent=1)


if __name__ == "__main__":
    main()
