"""Reproducible performance figures: ``python -m benchmarks --database URL --json FILE``."""
