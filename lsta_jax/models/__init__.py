"""Flax models. Importing this package registers every model kind (see `registry.py`)."""

from lsta_jax.models import baselines, ego_rnn, lsta, motion, resnet, two_stream  # noqa: F401
from lsta_jax.models.registry import available_kinds, create_model, example_input

__all__ = ["available_kinds", "create_model", "example_input"]
