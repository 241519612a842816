"""Studies: the demo, τ sweeps, the validity map, results, digits, learned gallery,
thermodynamics (they write md/json/png)."""
