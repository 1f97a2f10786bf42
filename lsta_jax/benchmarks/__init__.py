"""Benchmarks: `python -m lsta_jax.benchmarks.<name> --help`."""
