"""The resummed-Fox candidate of issue 3, tried one-shot in 1D (docs/beyond_first_order.md §5).

Fox's closure of m = E[η | x] resummed: m = −D_A (g S + g′), g = 1/(1 − τF′) (1D), with F′
taken from the zeroth-order force F_0 = βx + D̄S instead of solved for consistently (the plain
fixed-point iteration diverges), and 1 − τF_0′ clipped below at ε (it vanishes between the
modes). Force: F = βx + (D_eff + D_T) S − m, run with `sample_field`; W1 against 10⁶ exact
draws, 50 000 particles, seed 0, T = 3.

    python benchmarks/resummed_fox.py
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import wasserstein_distance

from activegen import ActiveOU, MixtureScore, sample_field
from activegen.studies.common import STUDY_SCHEME
from activegen.studies.validity_map import validity_target


def run(s: float, tau: float, eps: float, n: int = 50_000, seed: int = 0) -> float:
    tg, p = validity_target(s), ActiveOU(1.0, 0.0, 1.0, tau)
    sc = MixtureScore(tg, p)

    def field(t, x):
        dv = sc.derivs_batch(sc.prepare(t, jnp.float32), x)
        S, H, S2 = dv.score[:, 0], dv.hessian[:, 0, 0], dv.grad_div[:, 0]
        db = p.d_bar(t)
        den = 1 - tau * (p.beta + db * H)  # 1 − τF_0′
        g = 1 / jnp.maximum(den, eps)
        gp = jnp.where(den > eps, tau * db * S2 * g**2, 0.0)  # g′ = τ F_0″ g²
        f = p.beta * x[:, 0] + (p.d_eff(t) + p.d_thermal) * S + p.d_active * (g * S + gp)
        return f[:, None], None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = sample_field(field, lambda k, m: sc.sample_marginal(k, m, 3.0, jnp.float32), p, n,
                         seed=seed, t_final=3.0, dim=1, scheme=STUDY_SCHEME)
    ref = np.asarray(tg.sample(jax.random.key(99), 1_000_000))[:, 0]
    return wasserstein_distance(r.samples[:, 0], ref)


if __name__ == "__main__":
    print("| σ_min | τ | ε = 0.5 | ε = 0.2 | ε = 0.05 |\n|---|---|---|---|---|")
    for s, tau in [(0.4, 0.1), (0.8, 0.1), (0.4, 0.05)]:
        print(f"| {s:g} | {tau:g} | " + " | ".join(f"{run(s, tau, e):.4f}" for e in (0.5, 0.2, 0.05))
              + " |", flush=True)
