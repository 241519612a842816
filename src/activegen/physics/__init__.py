"""Physics: the forward process, targets, scores, forces, drivers, one-step formulas,
energetics and the interfaces (docs/architecture.md)."""
