"""The learned-score experiment of docs/learned.md (`activegen experiment learned-gallery`).

1. gallery: one energy model per built-in 2D set and the shipped image, each sampled with
   fox; figure of generated against training data, sliced W1 to held-out data with its floor;
2. mixture: on the 2D demo mixture (known density) the energy and the vector-score
   parametrisations against the analytic score: fox sliced W1 (with the floor), relative score
   and ∇(∇·S) errors, training and sampling cost; the learned joint score with `exact`;
3. hutchinson: cost and noise of the Hutchinson ∇(∇·S) against the exact route, d = 2…32.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..learning.datasets import BUILTIN, load_data
from ..files import save_figure, write_json
from ..learning.derivatives import hutchinson_grad_div
from ..learning.model import LearnedScore
from ..learning.network import ScoreNet
from ..learning.training import train
from ..analysis.metrics import w1
from ..physics.processes import ActiveOU
from .common import study_options
from ..samplers import sample
from ..physics.scores import MixtureScore
from ..physics.targets import default_target_2d


def _quiet_sample(target, method, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sample(target, method, *a, **{**study_options(method), **k})


def gallery(out: Path, steps: int, n: int, tau: float, seed: int, progress: bool, sets=None,
            t_final: float = 3.0) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(sets or BUILTIN)
    proc = ActiveOU(1.0, 0.0, 1.0, tau)
    rows = {}
    fig, axes = plt.subplots(3, len(sets), figsize=(2.2 * len(sets), 7.0))
    axes = np.asarray(axes).reshape(3, len(sets))
    for j, name in enumerate(sets):
        data = load_data(name, n=10_000, seed=seed)
        held = load_data(name, n=n, seed=seed + 1000)
        model, rep = train(data, None, process=proc, steps=steps, t_max=t_final, seed=seed,
                           source=name, progress=progress)
        res = _quiet_sample(model, "fox", proc, n, seed=seed, t_final=t_final, dt=tau / 10,
                            progress=progress)
        pas = _quiet_sample(model, "passive", proc, n, seed=seed, t_final=t_final,
                            dt=max(tau / 10, 0.005), progress=progress)
        gen, gen_p = model.to_data(res.samples), model.to_data(pas.samples)
        floor = w1(data[:n], held)
        err, err_p = w1(gen, held), w1(gen_p, held)
        rows[name] = {"train_s": rep["seconds"], "params": rep["n_params"],
                      "final_loss": rep["last_loss"], "sample_s": res.info["wall_s"],
                      "w1": err, "w1_passive": err_p, "w1_floor": floor,
                      "tau_grad_force": res.info.get("tau_grad_force")}
        print(f"{name:16s} train {rep['seconds']:.0f} s, fox {res.info['wall_s']:.0f} s, "
              f"sliced W1 fox {err:.4f}, passive {err_p:.4f} (floor {floor:.4f}), "
              f"tau|grad F| {res.info.get('tau_grad_force'):.2f}", flush=True)
        lo, hi = np.percentile(data, [0.5, 99.5], axis=0)
        pad = 0.15 * (hi - lo)
        rng = [[lo[0] - pad[0], hi[0] + pad[0]], [lo[1] - pad[1], hi[1] + pad[1]]]
        panels = [(data[:n], "training data", ""), (gen_p, "passive, learned S", err_p),
                  (gen, "fox (V_F), learned E", err)]
        for i, (pts, lab, e) in enumerate(panels):
            ax = axes[i, j]
            ax.hist2d(pts[:, 0], pts[:, 1], bins=90, range=rng, cmap="Greys")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
            if i == 0:
                ax.set_title(f"{name} (W1 floor {floor:.3f})", fontsize=8)
            else:
                ax.set_title(f"sliced W1 {e:.3f}", fontsize=8)
            if j == 0:
                ax.set_ylabel(lab, fontsize=9)
    fig.suptitle(f"learned energy (τ = {tau}, T = {t_final}, {steps} steps, {n} particles): "
                 "rows: training data, passive reverse SDE, fox", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out / f"learned_gallery_tau{tau:g}.png", dpi=80)
    plt.close(fig)
    return rows


def _score_errors(model: LearnedScore, exact: MixtureScore, ts, n=2000, seed=0):
    """Relative errors E|S_θ − S|²/E|S|² and the same for ∇(∇·S), on draws of p(x, t)."""
    out = {}
    for t in ts:
        x = exact.sample_marginal(jax.random.key(seed), n, t)
        f = jax.jit(lambda x, t: (jax.vmap(model.derivs, (None, 0))(model.prepare(t), x),
                                  jax.vmap(exact.derivs, (None, 0))(exact.prepare(t), x)))
        a, b = f(x, t)
        rel = lambda u, v: float(jnp.mean(jnp.sum((u - v) ** 2, -1)) / jnp.mean(jnp.sum(v**2, -1)))  # noqa: E731
        out[str(t)] = {"score": rel(a.score, b.score), "grad_div": rel(a.grad_div, b.grad_div)}
    return out


def mixture(steps: int, n: int, tau: float, seed: int, progress: bool) -> dict:
    """Energy vs vector score vs analytic on the demo mixture (data coordinates)."""
    tgt = default_target_2d()
    proc = ActiveOU(1.0, 0.0, 1.0, tau)
    data = np.asarray(tgt.sample(jax.random.key(seed), 20_000))
    ref = np.asarray(tgt.sample(jax.random.key(seed + 11), 100_000))
    kw = dict(seed=seed + 1, t_final=3.0, dt=tau / 10, progress=progress)
    exact = MixtureScore(tgt, proc)
    out = {"floor": float(np.mean([w1(np.asarray(tgt.sample(jax.random.key(seed + 100 + i), n)), ref)
                                   for i in range(3)]))}
    res = _quiet_sample(tgt, "fox", proc, n, **kw)
    out["analytic_fox"] = {"w1": w1(res.samples, ref), "sample_s": res.info["wall_s"]}
    res = _quiet_sample(tgt, "exact", proc, n, **kw)
    out["analytic_exact"] = {"w1": w1(res.samples, ref), "sample_s": res.info["wall_s"]}
    for kind in ("energy", "vector"):
        model, rep = train(data, None, process=proc, kind=kind, steps=steps, t_max=3.0,
                           standardize=False, seed=seed, progress=progress)
        res = _quiet_sample(model, "fox", proc, n, **kw)
        out[f"learned_{kind}"] = {
            "w1": w1(res.samples, ref), "train_s": rep["seconds"], "params": rep["n_params"],
            "final_loss": rep["last_loss"], "sample_s": res.info["wall_s"],
            "particle_steps_per_s": n * res.info["n_steps"] / res.info["wall_s"],
            "rel_errors": _score_errors(model, exact, (0.01, 0.1, 1.0), seed=seed),
        }
        print(f"{kind}: fox W1 {out[f'learned_{kind}']['w1']:.4f}", flush=True)
    model, rep = train(data, None, process=proc, marginal="joint", steps=steps, t_max=3.0,
                       standardize=False, seed=seed, progress=progress)
    res = _quiet_sample(model, "exact", proc, n, **kw)
    out["learned_joint_exact"] = {"w1": w1(res.samples, ref), "train_s": rep["seconds"],
                                  "params": rep["n_params"], "sample_s": res.info["wall_s"]}
    # a fair cost reference: analytic autodiff route (closed_form=False) is not needed here
    return out


def hutchinson_cost(dims=(2, 8, 32), n: int = 2000, probes=(1, 4), seed: int = 0) -> dict:
    """Per-point time of ∇(∇·S) (exact: full derivs; Hutchinson: K probes) for an untrained
    width-64 energy network, and the relative mean-square error of the estimate."""
    out = {}
    for d in dims:
        cfg = dict(kind="energy", marginal="x", width=64, depth=3, n_freq=6, t_min=1e-3,
                   t_max=6.0, seed=seed, hutchinson=0, step=0,
                   process=dict(beta=1.0, d_thermal=0.0, d_active=1.0, tau=0.1),
                   data={"source": "random", "n": 1, "d": d},
                   standardizer={"mean": [0.0] * d, "scale": 1.0})
        net = ScoreNet(d, "energy", 64, 3, 6, jax.random.key(seed))
        import equinox as eqx

        net = eqx.tree_at(lambda m: m.out.weight, net, net.out.weight * 30.0)
        model = LearnedScore(net, cfg, np.zeros((2, d)))
        x = jax.random.normal(jax.random.key(seed + 1), (n, d))
        st = model.prepare(0.3)
        sfn = lambda y: model.score(st, y)  # noqa: E731

        def timed(f, *a):
            r = jax.block_until_ready(f(*a))
            t0 = time.perf_counter()
            for _ in range(3):
                r = jax.block_until_ready(f(*a))
            return r, (time.perf_counter() - t0) / 3 / n * 1e6

        f_exact = jax.jit(jax.vmap(lambda y: model.derivs(st, y).grad_div))
        f_div_only = jax.jit(jax.vmap(lambda y: jax.grad(lambda z: jnp.trace(jax.jacfwd(sfn)(z)))(y)))
        g, t_exact = timed(f_exact, x)
        _, t_gd = timed(f_div_only, x)
        row = {"exact_us": t_exact, "exact_grad_div_only_us": t_gd}
        for k in probes:
            f_h = jax.jit(jax.vmap(lambda y, kk: hutchinson_grad_div(sfn, y, kk, k)))
            keys = jax.random.split(jax.random.key(seed + 2), n)
            est, t_h = timed(f_h, x, keys)
            rel = float(jnp.mean(jnp.sum((est - g) ** 2, -1)) / jnp.mean(jnp.sum(g**2, -1)))
            row[f"hutchinson{k}_us"] = t_h
            row[f"hutchinson{k}_rel_mse"] = rel
        out[str(d)] = row
        print(f"d = {d}: {row}", flush=True)
    return out


def run(out_dir, steps: int = 3000, n: int = 5000, tau: float = 0.05, seed: int = 0,
        progress: bool = True, parts=("gallery", "mixture", "hutchinson"),
        t_final: float = 3.0) -> dict:
    """Everything of docs/learned.md: writes learned_gallery_tau{τ}.png and
    learned_results.json (parts already there are kept)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "learned_results.json"
    res = json.loads(path.read_text()) if path.exists() else {}
    res.setdefault("settings", {})["seed"] = seed
    if "hutchinson" in parts:
        res["hutchinson"] = hutchinson_cost(seed=seed)
        write_json(path, res)
    if "mixture" in parts:
        res["mixture"] = mixture(steps, 2 * n, 0.1, seed, progress)
        res["settings"]["mixture"] = {"steps": steps, "n": 2 * n, "tau": 0.1, "t_final": 3.0}
        write_json(path, res)
    if "gallery" in parts:
        res[f"gallery_tau{tau:g}"] = gallery(out, steps, n, tau, seed, progress, t_final=t_final)
        res["settings"][f"gallery_tau{tau:g}"] = {"steps": steps, "n": n, "tau": tau,
                                                 "t_final": t_final}
        write_json(path, res)
    return res
