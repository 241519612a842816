"""`activegen export-potential`: V and F = −∇V of a method tabulated on a space × time grid
(a lab protocol, .npz + .json)."""

from __future__ import annotations

from . import options as opt


def add_parser(sub) -> None:
    """The `export-potential` command."""
    x = sub.add_parser("export-potential",
                       help="tabulate V and F = -grad V on a space × time grid (.npz + .json)")
    opt.add_source_options(x, with_protocol=False)
    x.add_argument("--lab", default=None,
                   help="LAB.json (docs/lab.md): lengths in µm, times in s; D_T = k_BT/γ (no "
                        "--d-thermal), τ and D_A from its activity block if it has one; adds "
                        "force_pN and potential_kT to the file")
    x.add_argument("--out", required=True, help="output PROTOCOL.npz (sidecar PROTOCOL.json)")
    x.set_defaults(func=cmd_export_potential)


def cmd_export_potential(args) -> int:
    from ..lab.protocol import save_protocol

    out = opt.out_file(args.out, ".npz")
    lab = lab_process(args) if args.lab is not None else None
    proto, _ = opt.protocol_from_args(args, progress=not args.no_progress)
    extra = None
    if lab is not None:
        proto.meta["lab"] = lab.meta()
        extra = {"force_pN": lab.force_pN(proto.force).astype("float32"),
                 "potential_kT": lab.energy_kT(proto.potential).astype("float32")}
    npz, side = save_protocol(proto, out, extra)
    g = proto.meta["grid"]
    print(f"wrote {npz} and {side}: {proto.meta['method']} potential on "
          f"{'×'.join(map(str, g['shape']))} points (spacing {g['spacing'][0]:g}) × "
          f"{len(proto.times)} times in [0, {proto.t_final:g}]")
    if lab is not None:
        import numpy as np

        fmax = float(np.max(np.linalg.norm(extra["force_pN"], axis=-1)))
        print(f"lab: γ = {lab.gamma:.4g} pN·s/µm, k_BT = {lab.kT:.4g} pN·µm, D_T = "
              f"{lab.d_thermal:.4g} µm²/s, τ = {proto.meta['tau']:g} s, D_A = "
              f"{proto.meta['d_active']:g} µm²/s; |force| up to {fmax:.3g} pN on the grid")
    return 0


def lab_process(args):
    """The lab of --lab, its D_T (and τ, D_A) written into the process options; a
    conflicting --d-thermal, --tau or --d-active is refused."""
    import math

    from ..errors import ActivegenError
    from ..lab.units import load_lab

    lab = load_lab(args.lab)
    given = {"d_thermal": lab.d_thermal}
    dim = 1
    if lab.activity is not None:
        if args.target is not None:
            from ..physics.targets import GaussianMixture

            dim = GaussianMixture.load(args.target).dim
        elif lab.activity["driver"] != "ou":
            raise ActivegenError("--lab: a swimmer's activity block needs --target (its "
                                 "dimension sets τ and D_A)")
        given["tau"], given["d_active"] = lab.tau_and_d_active(dim)
    for key, value in given.items():
        old = getattr(args, key)
        if old is not None and not math.isclose(old, value, rel_tol=1e-6):
            why = "k_BT/γ" if key == "d_thermal" else "its activity block's"
            raise ActivegenError(
                f"{opt.flag(key)} {old:g} contradicts --lab ({why}: {value:.4g}); leave it out")
        setattr(args, key, value)
    return lab
