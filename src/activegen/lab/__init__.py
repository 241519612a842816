"""Lab protocols (docs/protocol.md): a method's effective potential tabulated on a grid, a
file that drives an experiment without any score or target.

    grid        the time and space grids, their defaults and checks (coarse, away from data)
    protocol    `Protocol` (the tables, their interpolation), its file, its replay
    export      `export_protocol`: a method's V and F = −∇V on the grids
    tabulated   `sample_tabulated`: a method's force tabulated once, the ensemble run in it
    lookup      numpy only: the file's checksum and reading, the interpolation, the live
                `ForceLookup` in pN (docs/lab.md)
    units       `Lab`: a bead in a bath, γ = 6πηr, k_BT, D_T = k_BT/γ, the loop's `Feedback`
    feedback    the feedback loop's twin: held, late, noisy, limited force (`loop_replay`)
    check       `lab check`: each imperfection scanned alone, its tolerance
"""
