"""Benchmarks of securescore-fetcher against the simulator: `python -m benchmarks [--quick] [--only NAME]`.

Not part of the test suite. See docs/benchmarks.md for what each one measures and the latest figures.
"""
