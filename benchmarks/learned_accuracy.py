"""Learned against analytic scores: sampler accuracy in the user's units (issue 14).

Trains energy networks (one per architecture) by DSM on draws of a Gaussian mixture whose
spread is not 1 and whose mean is not 0 (so that standardising the physics would change
it), in data units (the default) or with --standardize, and compares fox, naive and
passive with the learned score against the same samplers with the analytic score: sliced W1
(exact 1D W1 in 1D) to 10⁵ exact draws, with the finite-sample floor (mean W1 of exact
draws of the same size).

    python benchmarks/learned_accuracy.py --archs 64x3x32,32x2x16,24x2x8 --sets 2d,1d
    python benchmarks/learned_accuracy.py --archs 16x2x16 --methods fox,fox:tab

A method written M:tab runs M with its force tabulated on a grid (`activegen.lab.tabulated`).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

TAB = ":tab"


def target(name: str):
    from activegen import GaussianMixture

    if name == "2d":  # three modes, full covariances, data std ≈ 2, mean ≈ (0.6, 0.8)
        return GaussianMixture([0.3, 0.4, 0.3], [[-2.0, 1.0], [1.5, 2.5], [2.5, -1.5]],
                               [[[1.0, 0.4], [0.4, 0.5]], [[0.6, -0.2], [-0.2, 0.8]],
                                [[0.7, 0.0], [0.0, 0.4]]])
    if name == "1d":  # two narrow modes far apart: data std ≈ 2.5, mean ≈ 4
        return GaussianMixture.from_stds([0.4, 0.6], [[1.0], [6.0]], [0.6, 0.9])
    raise SystemExit(f"unknown set {name}")


def run(sets, archs, steps, n, tau, t_final, dt, seed, standardize, methods):
    import jax
    import numpy as np

    from activegen import ActiveOU, sample, w1
    from activegen.studies.common import study_options
    from activegen.learning.training import train

    proc = ActiveOU(1.0, 0.0, 1.0, tau)
    out = {}

    def quiet(target, method, *a, **k):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if method.endswith(TAB):  # the force tabulated once on a grid (activegen.lab.tabulated)
                from activegen.lab.tabulated import sample_tabulated

                base = method[:-len(TAB)]
                return sample_tabulated(target, base, *a, **study_options(base), **k)
            return sample(target, method, *a, **study_options(method), **k)

    for name in sets:
        tg = target(name)
        data = np.asarray(tg.sample(jax.random.key(seed), 20_000))
        ref = np.asarray(tg.sample(jax.random.key(seed + 11), 100_000))
        floor = float(np.mean([w1(np.asarray(tg.sample(jax.random.key(seed + 100 + i), n)), ref)
                               for i in range(3)]))
        kw = dict(seed=seed + 1, t_final=t_final, dt=dt)
        res = {"floor": floor, "analytic": {}, "learned": {}}
        for m in methods:
            r = quiet(tg, m, proc, n, **kw)
            res["analytic"][m] = w1(r.samples, ref)
        print(f"[{name}] floor {floor:.4f}; analytic " +
              ", ".join(f"{m} {v:.4f}" for m, v in res["analytic"].items()), flush=True)
        for arch in archs:
            w, dp, nf = (int(v) for v in arch.split("x"))
            model, rep = train(data, None, process=proc, width=w, depth=dp, n_fourier=nf,
                               steps=steps, t_max=t_final, seed=seed, standardize=standardize)
            row = {"params": rep["n_params"], "train_s": rep["seconds"],
                   "last_loss": rep["last_loss"]}
            for m in methods:
                r = quiet(model, m, proc, n, **kw)
                row[m] = w1(model.to_data(r.samples), ref)
                row[f"{m}_run_s"] = r.info["run_s"]
            res["learned"][arch] = row
            print(f"[{name}] {arch}: {rep['n_params']} params, train {rep['seconds']:.0f} s; " +
                  ", ".join(f"{m} {row[m]:.4f} ({row[m] / res['analytic'][m]:.2f}×)"
                            for m in methods), flush=True)
        out[name] = res
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="2d,1d")
    ap.add_argument("--archs", default="64x3x32,32x2x16", help="WIDTHxDEPTHxN_FOURIER,...")
    ap.add_argument("--methods", default="fox,naive,passive")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--tau", type=float, default=0.05)
    ap.add_argument("--t-final", type=float, default=3.0)
    ap.add_argument("--dt", type=float, default=0.005)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--standardize", action="store_true")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    import activegen  # noqa: F401

    t0 = time.perf_counter()
    res = run(a.sets.split(","), a.archs.split(","), a.steps, a.n, a.tau, a.t_final, a.dt,
              a.seed, a.standardize, a.methods.split(","))
    res["settings"] = vars(a)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
