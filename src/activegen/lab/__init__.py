"""Lab protocols (docs/protocol.md): a method's effective potential tabulated on a grid, a
file that drives an experiment without any score or target.

    grid        the time and space grids, their defaults and checks (coarse, away from data)
    protocol    `Protocol` (the tables, their interpolation), its file, its replay
    export      `export_protocol`: a method's V and F = −∇V on the grids
    tabulated   `sample_tabulated`: a method's force tabulated once, the ensemble run in it
"""
