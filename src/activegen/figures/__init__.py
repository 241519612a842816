"""Figures and animations (matplotlib, Agg back end):

    canvas      pyplot on Agg; PNGs saved small and atomically
    samples     samples against the target, against reference points, as image tiles
    potential   snapshots of a protocol's V and F, particles moving in it (GIF/MP4)
    sweeps      error against τ, the thermodynamics study's panels
"""
