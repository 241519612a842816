"""The data of docs/results.md (`activegen experiment results`): the default 1D and 2D τ sweeps
and the validity map."""

from __future__ import annotations

from ..errors import check_count
from ..physics.targets import default_target_1d, default_target_2d
from .common import check_values
from .tau_sweep import check_sweep, run_tau_sweep, sweep_seconds
from .validity_map import run_validity_map

def run_results(out_dir="docs/results", *, methods=("passive", "exact", "fox", "ucn", "naive",
                                                    "fox-sc", "fox-schedule"),
                taus_1d=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5), taus_2d=(0.02, 0.05, 0.1, 0.2, 0.5),
                n: int = 20_000, n_2d: int = 10_000, vm_n: int = 20_000,
                vm_taus=(0.025, 0.05, 0.1, 0.2), vm_sigmas=(0.3, 0.4, 0.6, 0.8),
                seed: int = 0, beta: float = 1.0, d_active: float = 1.0,
                d_thermal: float = 0.0, t_final: float = 3.0, progress: bool = False,
                log=print, client=None):
    """The data of docs/results.md: the default 1D and 2D τ sweeps of `methods` and the
    validity map, written into out_dir (client: a Dask client, every cell a task)."""
    import time

    check_values("taus_1d", taus_1d)
    check_values("taus_2d", taus_2d)
    check_values("vm_taus", vm_taus)  # the validity map runs last: check it first
    check_values("vm_sigmas", vm_sigmas)
    check_sweep(list(taus_1d) + list(taus_2d), methods, n, t_final)
    check_count("n_2d", n_2d)
    check_count("vm_n", vm_n)
    total = (sweep_seconds(1, taus_1d, len(methods), n, 1, t_final)
             + sweep_seconds(2, taus_2d, len(methods), n_2d, 1, t_final))
    if log is not None:
        log(f"results: two τ sweeps and the validity map; the sweeps alone roughly "
            f"{total / 60:.0f} min on 2 cores")
    t0 = time.perf_counter()
    for stem, target, taus, nn in (("tau_sweep_1d", default_target_1d(), taus_1d, n),
                                   ("tau_sweep_2d", default_target_2d(), taus_2d, n_2d)):
        _, md = run_tau_sweep(target, out_dir, taus, methods, nn, [seed], stem=stem, beta=beta,
                              d_active=d_active, d_thermal=d_thermal, t_final=t_final,
                              progress=progress, log=log, client=client)
        if log is not None:
            slope = [ln for ln in md.splitlines() if ln.startswith("Fitted slope")][-1]
            log(slope + f" ({time.perf_counter() - t0:.0f} s)")
    run_validity_map(out_dir, vm_taus, vm_sigmas, n=vm_n, seed=seed, t_final=t_final, log=log,
                     client=client)
    if log is not None:
        log(f"wrote {out_dir}/ in {time.perf_counter() - t0:.0f} s")
