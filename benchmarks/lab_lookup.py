"""Latency of the live force lookup (`lab/lookup.py`, numpy only): one measured position and
the elapsed time in, the force in pN out, as a feedback loop calls it (docs/lab.md).

    python benchmarks/lab_lookup.py --protocol lab_protocol.npz

prints the mean and the 99th percentile of the time per call over --calls calls (a scalar
position, the time advancing by 0.1 ms per call), loaded by path without JAX.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

LOOKUP = Path(__file__).resolve().parents[1] / "src" / "activegen" / "lab" / "lookup.py"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", required=True, help="PROTOCOL.npz exported with --lab")
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--max-force", type=float, default=None, help="clip |f| to this (pN)")
    args = ap.parse_args(argv)
    spec = importlib.util.spec_from_file_location("activegen_lookup", LOOKUP)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    f = mod.ForceLookup.load(args.protocol, max_force_pN=args.max_force)
    x = np.zeros(f.dim) + 0.7
    f(x, 0.0)
    dt = np.empty(args.calls)
    for i in range(args.calls):
        t0 = time.perf_counter()
        f(x, (i * 1e-4) % f.t_final)
        dt[i] = time.perf_counter() - t0
    print(f"lookup: {dt.mean() * 1e6:.0f} µs per call (99th percentile "
          f"{np.percentile(dt, 99) * 1e6:.0f} µs) over {args.calls} calls, d = {f.dim}; "
          f"jax loaded: {'jax' in sys.modules}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
