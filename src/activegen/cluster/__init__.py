"""Dask clusters: a client for one command, the workers' setup, cells as tasks
(docs/distributed.md)."""
