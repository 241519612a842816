"""`activegen experiment thermodynamics`: what generating a sample costs (docs/thermodynamics.md).

For passive, naive, fox and fox-sc on the demo mixture (`targets.default_target_2d`) at each
τ: the mean per sample of the heat Q, protocol work W, active work W_act, potential change ΔU
(`physics.energetics`), passive's entropy production, beside each method's accuracy (W1
against exact draws, with its finite-sample floor). Also the likelihood of exact data under
the model (probability-flow ODE) beside the entropy-rate bound. Writes thermodynamics.json,
thermodynamics.md and thermodynamics.png to the output folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np

from ..physics.energetics import ENERGETIC_KEYS, ENTROPY_KEYS
from ..analysis.metrics import evaluate
from ..physics.processes import ActiveOU
from ..samplers import sample
from ..physics.targets import default_target_2d

METHODS = ("passive", "naive", "fox", "fox-sc")
#: The default run: ≈ 2 min on 2 quiet cores (the cost: 3000 steps of Δs = 0.002 per run).
TAUS = (0.1, 0.2)


def run_thermodynamics(out_dir, *, taus=TAUS, methods=METHODS, n: int = 1000, seed: int = 0,
                       t_final: float = 6.0, d_thermal: float = 0.0, n_likelihood: int = 200,
                       n_bound: int = 4000, n_bound_times: int = 200,
                       progress: bool = False, echo=None) -> dict:
    """Run the experiment (module doc); returns the result dict (also written as JSON)."""
    from ..analysis.likelihood import entropy_rate_bound, log_likelihood
    from ..figures.sweeps import plot_thermodynamics

    from ..errors import check_count
    from .common import check_values
    from ..samplers import get_method

    taus = check_values("taus", taus)  # before any work
    n = check_count("n", n)
    for m in methods:
        get_method(m)  # an unknown name is refused with the list
    echo = echo or (lambda *a: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = default_target_2d()
    rows = []
    t0 = time.perf_counter()
    for tau in taus:
        p = ActiveOU(beta=1.0, d_thermal=d_thermal, d_active=1.0, tau=float(tau))
        for m in methods:
            r = sample(target, m, p, n, seed=seed, t_final=t_final, energetics=True,
                       warn=False, progress=progress)
            row = dict(method=m, tau=float(tau), n=n)
            for k in ENERGETIC_KEYS + ENTROPY_KEYS:
                if k in r.info:
                    a = np.asarray(r.info[k], np.float64)
                    row[k] = float(a.mean())
                    row[k + "_se"] = float(a.std(ddof=1) / np.sqrt(len(a)))
            fl = r.info["potential_change"] - (r.info["work"] + r.info["active_work"]
                                               - r.info["heat"])
            row["first_law_max"] = float(np.max(np.abs(fl)))
            ev = evaluate(r.samples, target, seed=seed)
            row["w1"], row["w1_floor"] = ev["metrics"]["w1"], ev["floor"]["w1"]
            rows.append(row)
            echo(f"tau={tau:g} {m:8s} Q={row['heat']:8.3f} W={row['work']:7.3f} "
                 f"W_act={row['active_work']:8.3f} dU={row['potential_change']:7.3f} "
                 + (f"EP={row['entropy_production']:7.3f} " if "entropy_production" in row
                    else "") + f"W1={row['w1']:.4f} (floor {row['w1_floor']:.4f})")
    # likelihood of exact data and the entropy-rate bound, at the middle τ
    tau_l = float(taus[len(taus) // 2])
    p = ActiveOU(beta=1.0, d_thermal=d_thermal, d_active=1.0, tau=tau_l)
    data = np.asarray(target.sample(jax.random.key(seed + 1), n_likelihood))
    ll = log_likelihood(target, p, data, t_final=t_final)
    exact = np.asarray(target.log_prob(data))
    bound = entropy_rate_bound(target, p, t_final=t_final, n=n_bound, n_times=n_bound_times,
                               seed=seed)
    lik = dict(tau=tau_l, n=n_likelihood, nll_per_dim=ll["nll_per_dim"],
               nll_se=float(np.std(-ll["log_prob"], ddof=1) / np.sqrt(len(data)) / 2),
               max_abs_error=float(np.max(np.abs(ll["log_prob"] - exact))),
               bound=bound["bound"], bound_se=bound["bound_se"])
    echo(f"likelihood (tau={tau_l:g}, {n_likelihood} exact draws): NLL = "
         f"{lik['nll_per_dim']:.4f} ± {lik['nll_se']:.4f} nats/dim, entropy-rate bound "
         f"{lik['bound']:.4f} ± {lik['bound_se']:.4f}, max |log p error| {lik['max_abs_error']:.1e}")
    lik.update(bound_n=n_bound, bound_times=n_bound_times)
    result = dict(target="default_target_2d", t_final=t_final, d_thermal=d_thermal,
                  seed=seed, rows=rows, likelihood=lik, wall_s=time.perf_counter() - t0)
    (out / "thermodynamics.json").write_text(json.dumps(result, indent=1))
    (out / "thermodynamics.md").write_text(thermodynamics_markdown(result))
    plot_thermodynamics(result, out / "thermodynamics.png")
    echo(f"wrote {out / 'thermodynamics.json'}, .md, .png ({result['wall_s']:.0f} s)")
    return result


def thermodynamics_markdown(result: dict) -> str:
    lines = ["| τ | method | heat Q | work W | active work W_act | ΔU | entropy prod. | W1 (floor) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        ep = (f"{r['entropy_production']:.3f} ± {r['entropy_production_se']:.3f}"
              if "entropy_production" in r else "—")
        lines.append(
            f"| {r['tau']:g} | {r['method']} | {r['heat']:.3f} ± {r['heat_se']:.3f} | "
            f"{r['work']:.3f} ± {r['work_se']:.3f} | {r['active_work']:.3f} ± "
            f"{r['active_work_se']:.3f} | {r['potential_change']:.3f} | {ep} | "
            f"{r['w1']:.4f} ({r['w1_floor']:.4f}) |")
    lk = result["likelihood"]
    lines += ["", f"Likelihood at τ = {lk['tau']:g} of {lk['n']} exact draws: NLL "
              f"{lk['nll_per_dim']:.4f} ± {lk['nll_se']:.4f} nats/dim; entropy-rate bound "
              f"{lk['bound']:.4f} ± {lk['bound_se']:.4f} nats/dim; largest |log p error| "
              f"{lk['max_abs_error']:.1e}."]
    return "\n".join(lines) + "\n"
