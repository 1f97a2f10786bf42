"""`Data`: what the training loop gets from an input source (the in-memory toy set or a tfds builder).

Its own module so that `input_pipeline` (which dispatches on the dataset) and `tfds_input` (one of the
sources) both depend on it without depending on each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Data:
    train: Any  # iterator of {'clip', 'label'} with get_state() -> bytes and set_state(bytes)
    make_eval: Callable[[], Iterator[dict[str, np.ndarray]]]
    class_names: list[str]
    steps_per_epoch: int
    num_train: int
    num_eval: int
