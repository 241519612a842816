"""The demo (`activegen demo`): fox, refined, exact and naive on the 2D mixture; demo.png and
report.json."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..analysis.metrics import evaluate
from ..files import save_figure, write_json
from ..figures.samples import draw_density_2d
from ..physics.processes import ActiveOU
from ..physics.targets import default_target_2d
from ..samplers import VALIDITY_THRESHOLD, sample

def demo(out_dir, n: int = 20_000, tau: float = 0.1, seed: int = 0, progress: bool = True,
         log=None):
    """Generate a 2D mixture with fox, refined (fox-sc), exact and naive; write demo.png and
    report.json. Each method's warnings (the first-order warning where its τ‖∇F‖ exceeds
    VALIDITY_THRESHOLD) are kept, not shown, in report["methods"][m]["warnings"]; `log`
    (e.g. print) gets a status line before the silent phases (metrics, the figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = default_target_2d()
    proc = ActiveOU(beta=1.0, d_thermal=0.0, d_active=1.0, tau=tau)
    methods = ["fox", "refined", "exact", "naive"]
    report = {"tau": tau, "n": n, "seed": seed, "target": target.to_dict(),
              "validity_threshold": VALIDITY_THRESHOLD, "methods": {}}
    fig, axes = plt.subplots(1, len(methods), figsize=(4.4 * len(methods), 4.4))
    for ax, m in zip(axes, methods):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = sample(target, m, proc, n, seed=seed, progress=progress)
        if log is not None:
            log(f"{m}: sliced W1 and histogram KL against exact samples")
        ev = evaluate(res.samples, target, seed=seed)
        report["methods"][m] = {**ev, "info": res.info,
                                "warnings": [str(w.message) for w in caught]}
        draw_density_2d(ax, target, res.samples, f"{m}: sliced W1 {ev['metrics']['w1']:.3f} "
                 f"(floor {ev['floor']['w1']:.3f})\nhist KL {ev['metrics']['hist_kl']:.3f} "
                 f"(floor {ev['floor']['hist_kl']:.3f})", colorbar=True)
    if log is not None:
        log(f"drawing {out / 'demo.png'}")
    fig.suptitle(f"active generative diffusion, τ = {tau}, {n} particles "
                 "(grey: generated samples, red: exact density contours)")
    fig.tight_layout()
    save_figure(fig, out / "demo.png", dpi=110)
    plt.close(fig)
    write_json(out / "report.json", report)
    return out / "demo.png", out / "report.json", report
