"""Dask clusters (docs/distributed.md), used by the samplers (`samplers.cluster`: an
ensemble's blocks as tasks), the studies (their cells as tasks) and the CLI:

    workers   every worker's set-up (JAX settings, its share of the cores); a failed
              cluster as one line
    client    `connect`: a local cluster or a scheduler for one command; `map_cells`
"""
