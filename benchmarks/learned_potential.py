"""The learned effective potential (issue 30): accuracy and cost of learned `fox` by route.

Trains the default energy network with the Ψ head (docs/learned.md) on draws of each
Gaussian mixture, then samples with the learned score: `passive`, `fox` on the Ψ route
(the default) and `fox` on the third-derivative route (`route="derivatives"`, what models
without the Ψ head use), beside `fox` and `passive` with the analytic score and the
finite-sample floor; sliced W1 to 10⁵ exact draws. Same n, scheme, step and seed for every
run; the cost column is run seconds per step (compile excluded) relative to learned passive.

    python benchmarks/learned_potential.py --steps 3000,12000
    python benchmarks/learned_potential.py --targets examples/four_modes_2d.json --json out.json
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

#: the held-out mixtures (never used to choose a default): three modes with full
#: covariances off the origin, and the four-mode example
HELD_OUT = {
    "three_modes": {"weights": [0.3, 0.4, 0.3], "means": [[-2.0, 1.0], [1.5, 2.5], [2.5, -1.5]],
                    "covs": [[[1.0, 0.4], [0.4, 0.5]], [[0.6, -0.2], [-0.2, 0.8]],
                             [[0.7, 0.0], [0.0, 0.4]]]},
    "four_modes": "examples/four_modes_2d.json",
}


def load(spec):
    from activegen import GaussianMixture

    if isinstance(spec, dict):
        return GaussianMixture.from_dict(spec)
    return GaussianMixture.load(spec)


def run(targets, steps_list, n, tau, seed, width, depth):
    import jax
    import numpy as np

    from activegen import ActiveOU, sample, w1
    from activegen.learning.model import LearnedScore
    from activegen.learning.training import train

    proc = ActiveOU(1.0, 0.0, 1.0, tau)
    out = {}

    def go(score, method, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = sample(score, method, proc, n, seed=seed + 1, t_final=6.0, scheme="heun", **kw)
        return r

    for name, spec in targets.items():
        tg = load(spec)
        data = np.asarray(tg.sample(jax.random.key(seed), 20_000))
        ref = np.asarray(tg.sample(jax.random.key(seed + 11), 100_000))
        floor = float(np.mean([w1(np.asarray(tg.sample(jax.random.key(seed + 100 + i), n)), ref)
                               for i in range(3)]))
        res = {"floor": floor, "analytic": {m: w1(go(tg, m).samples, ref)
                                            for m in ("passive", "fox")}}
        print(f"[{name}] floor {floor:.4f}; analytic passive {res['analytic']['passive']:.4f}, "
              f"fox {res['analytic']['fox']:.4f}", flush=True)
        for steps in steps_list:
            t0 = time.perf_counter()
            model, rep = train(data, process=proc, steps=steps, seed=seed, width=width,
                               depth=depth)
            old = LearnedScore(model.net, model.config, model.data, route="derivatives")
            row = {"train_s": time.perf_counter() - t0, "val_loss": rep.get("val_loss")}
            for label, score, method in (("passive", model, "passive"), ("fox", model, "fox"),
                                         ("fox_derivatives", old, "fox")):
                r = go(score, method)
                row[label] = w1(r.samples, ref)
                row[f"{label}_step_ms"] = 1e3 * r.info["run_s"] / r.info["n_steps"]
                row[f"{label}_route"] = r.info.get("route")
            row["fox_vs_analytic"] = row["fox"] / res["analytic"]["fox"]
            row["fox_bound"] = 1.3 * res["analytic"]["fox"] + 0.5 * floor
            res[f"steps_{steps}"] = row
            print(f"[{name}] {steps} steps (val loss {row['val_loss']}): passive "
                  f"{row['passive']:.4f}; fox psi {row['fox']:.4f} "
                  f"({row['fox_vs_analytic']:.2f}x analytic, bound {row['fox_bound']:.4f}); "
                  f"fox derivatives {row['fox_derivatives']:.4f}; step ms passive "
                  f"{row['passive_step_ms']:.2f}, fox psi {row['fox_step_ms']:.2f}, "
                  f"derivatives {row['fox_derivatives_step_ms']:.2f}", flush=True)
        out[name] = res
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default=None, help="mixture JSON files (default: the held-out two)")
    ap.add_argument("--steps", default="3000,12000", help="training steps, comma-separated")
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--tau", type=float, default=0.05)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    targets = (HELD_OUT if a.targets is None
               else {Path(p).stem: p for p in a.targets.split(",")})
    t0 = time.perf_counter()
    res = run(targets, [int(s) for s in a.steps.split(",")], a.n, a.tau, a.seed, a.width,
              a.depth)
    res["settings"] = vars(a)
    if a.json:
        from activegen.files import write_json

        write_json(a.json, res)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
