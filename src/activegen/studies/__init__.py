"""The studies behind docs/ (each writes md, json and png; `activegen demo`, `activegen
experiment …`); cells run as Dask tasks where a client is given.

    common            the studies' time-stepping scheme, checks of their lists
    demo              fox, refined, exact and naive on a 2D mixture
    tau_sweep         accuracy of each method against τ
    validity_map      where first order breaks down; the τ‖∇F‖ warning's calibration
    results           the data of docs/results.md (two τ sweeps and the validity map)
    digits            real data: the 8×8 digits with learned scores
    learned_gallery   learned scores on 2D sets, energy vs vector, Hutchinson
    thermodynamics    heat, work and entropy production against τ
"""
