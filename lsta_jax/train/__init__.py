"""Training: the reference optimiser and schedule, train state, jitted sharded steps, the loop, checkpoints.

`python -m lsta_jax.train --config configs/X.py[:arg] --workdir DIR`; see `trainer.train_and_evaluate`.
"""
