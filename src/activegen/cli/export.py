"""`activegen export-potential`: V and F = −∇V of a method tabulated on a space × time grid
(a lab protocol, .npz + .json)."""

from __future__ import annotations

from . import options as opt


def add_parser(sub) -> None:
    """The `export-potential` command."""
    x = sub.add_parser("export-potential",
                       help="tabulate V and F = -grad V on a space × time grid (.npz + .json)")
    opt.add_source_options(x, with_protocol=False)
    x.add_argument("--out", required=True, help="output PROTOCOL.npz (sidecar PROTOCOL.json)")
    x.set_defaults(func=cmd_export_potential)


def cmd_export_potential(args) -> int:
    from ..lab.protocol import save_protocol

    out = opt.out_file(args.out, ".npz")
    proto, _ = opt.protocol_from_args(args, progress=not args.no_progress)
    npz, side = save_protocol(proto, out)
    g = proto.meta["grid"]
    print(f"wrote {npz} and {side}: {proto.meta['method']} potential on "
          f"{'×'.join(map(str, g['shape']))} points (spacing {g['spacing'][0]:g}) × "
          f"{len(proto.times)} times in [0, {proto.t_final:g}]")
    return 0
