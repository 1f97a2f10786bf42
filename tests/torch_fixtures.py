"""Shared helpers for the torch parity and conversion tests (import after `pytest.importorskip('torch')`)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from lsta_jax.reference.torch_resnet import TorchResNet, randomize_batch_norm


def rel_diff(a: Any, b: Any) -> float:
    """max|a - b| / max|b|: the parity measure of the tests (b is the reference)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max() / np.abs(b).max())


def to_nhwc(x: Any) -> np.ndarray:
    """An NCHW torch tensor / array -> NHWC numpy."""
    if isinstance(x, torch.Tensor):
        x = x.detach().numpy()
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


def numpy_state_dict(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """A module's state dict as numpy, without num_batches_tracked (what `torch_io` returns)."""
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items() if "num_batches" not in k}


def make_torch_resnet(seed: int = 0, **kwargs: Any) -> TorchResNet:
    """A TorchResNet with seeded random weights and non-trivial BN statistics, in eval mode."""
    torch.manual_seed(seed)
    model = TorchResNet(**kwargs)
    calibration = torch.randn(4, model.in_channels, 64, 64, generator=torch.Generator().manual_seed(seed + 1))
    return randomize_batch_norm(model, seed=seed, calibration_input=calibration)


@functools.lru_cache(maxsize=2)
def random_resnet34(seed: int = 0) -> TorchResNet:
    """A full-size ResNet-34 reference, built once per test process (callers must not modify it)."""
    return make_torch_resnet(seed)


def images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Normalised-image-like float32 NCHW input."""
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
