"""Figures and animations (matplotlib, Agg)."""
