"""`fox` driven by OU, run-and-tumble and active Brownian noise in 2D and 3D, with and
without the driver correction: sliced W1 against τ (docs/drivers.md, "d > 1").

    python benchmarks/drivers_sweep.py [--n 40000] [--seeds 0,1] [--out docs/drivers_sweep]
"""

import argparse
import json
from pathlib import Path

import numpy as np

from activegen import GaussianMixture, default_target_2d
from activegen.studies.tau_sweep import tau_sweep

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40_000)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--taus", default="0.2,0.1,0.05")
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "drivers_sweep"))
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    taus = [float(t) for t in a.taus.split(",")]
    targets = {"2D (default_target_2d)": default_target_2d(),
               "3D (examples/three_modes_3d.json)":
                   GaussianMixture.load(HERE.parent / "examples" / "three_modes_3d.json")}
    runs = [("ou", True), ("rtp", False), ("rtp", True), ("abp", False), ("abp", True)]
    out = {}
    lines = ["| target | driver | correction | " + " | ".join(f"τ = {t}" for t in taus)
             + " | slope | floor |", "|---|---|---|" + "---|" * (len(taus) + 2)]
    for name, tg in targets.items():
        for drv, corr in runs:
            res = tau_sweep(tg, taus, ["fox"], a.n, seed=seeds, t_final=3.0, driver=drv,
                            driver_correction=corr)
            w = {t: np.mean([r["metrics"]["w1"] for r in res["rows"] if r["tau"] == t])
                 for t in taus}
            floor = np.mean([r["floor"]["w1"] for r in res["rows"]])
            key = f"{name} {drv} {'corrected' if corr and drv != 'ou' else 'plain'}"
            out[key] = {"w1": w, "slope": res["slopes"]["fox"], "floor": floor}
            lines.append(f"| {name} | {drv} | {'yes' if corr and drv != 'ou' else 'no'} | "
                         + " | ".join(f"{w[t]:.4f}" for t in taus)
                         + f" | {res['slopes']['fox']:.2f} | {floor:.4f} |")
            print(lines[-1], flush=True)
    Path(a.out + ".json").write_text(json.dumps(out, indent=2))
    Path(a.out + ".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
