"""The figures' matplotlib set-up: pyplot on the Agg back end, and PNGs saved small (a
256-colour palette) and atomically."""

from __future__ import annotations

from .. import files


def pyplot():
    """matplotlib.pyplot on the Agg back end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi):
    """Save as PNG with a 256-colour palette (figures are part of the docs: keep them small),
    atomically (`files.atomic_path`)."""
    from PIL import Image

    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
        with Image.open(tmp) as im:
            small = im.convert("RGB").quantize(256)
        small.save(tmp, optimize=True)
