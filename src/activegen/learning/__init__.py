"""Learned scores: data sets and score models trained from data (docs/learned.md)."""
