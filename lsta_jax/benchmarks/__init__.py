"""Benchmarks: `python -m lsta_jax.benchmarks.pipeline` (clips/s of the training input pipeline)."""
