"""Benchmarks of spaces-scheduler; `python -m bench` runs them all."""
