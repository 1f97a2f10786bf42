"""Shared test set-up. Four simulated CPU devices so sharding tests can build a real Mesh.

XLA reads XLA_FLAGS once, when the first JAX backend starts, so this runs before any test imports jax.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
