"""Closed-form Gaussian-mixture derivatives against autodiff, inside the `fox` sampler.

Prints particle-steps per second (compile time apart, from the sampler's info) for a 2D mixture of 8 isotropic modes
(σ = 0.5, the REFERENCE-FIGURES.md speed setting), float32. Usage:
    python benchmarks/bench_derivs.py [--n 20000] [--steps 500]
"""

import argparse
import warnings

import numpy as np

from activegen import ActiveOU, GaussianMixture, sample
from activegen.studies.common import STUDY_SCHEME


def eight_modes() -> GaussianMixture:
    ang = 2 * np.pi * np.arange(8) / 8
    return GaussianMixture.from_stds(np.ones(8), np.c_[3 * np.cos(ang), 3 * np.sin(ang)], [0.5] * 8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--steps", type=int, default=500)
    a = ap.parse_args()
    tg, proc = eight_modes(), ActiveOU(1.0, 0.0, 1.0, 0.1)
    t_final = a.steps * 0.002
    print(f"fox sampler, 2D 8-mode mixture, N = {a.n}, {a.steps} steps, float32")
    for closed in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = sample(tg, "fox", proc, a.n, seed=0, t_final=t_final, closed_form=closed,
                          scheme=STUDY_SCHEME).info
        rate = a.n * a.steps / info["run_s"]
        name = "closed form" if closed else "autodiff   "
        print(f"  {name}: compile {info['compile_s']:5.1f} s, run {info['run_s']:6.1f} s, "
              f"{rate:.3g} particle-steps/s")


if __name__ == "__main__":
    main()
