"""Read PyTorch checkpoint files into plain `{name: numpy array}` state dicts (needs the `torch` extra).

Accepted (docs/differences.md §7): zip (torch >= 1.6) and legacy (`_use_new_zipfile_serialization=False`,
PyTorch 0.3-era) files; tensors saved from GPU (loaded with `map_location='cpu'`); a bare state dict or one
wrapped as `{'state_dict': ...}` or `{'model_state_dict': ...}` (the authors' training files are
`{'epoch', 'model_state_dict', 'optimizer_state_dict', 'best_acc'}`); `module.` prefixes (DataParallel)
are stripped and `num_batches_tracked` buffers (PyTorch >= 0.4.1) are dropped.

Files are read with `torch.load(weights_only=True)`, which cannot run code from the file. NumPy scalars
and dtypes (e.g. a `best_acc` saved as `np.float64`) are additionally allowed. A file that needs anything
else (a pickled `nn.Module`, custom classes) is refused with a message; `trust_pickle=True`
(`--trust-pickle` on the command line) then loads it with `weights_only=False`, which executes the pickle:
only for files you trust.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

INSTALL_HINT = "pip install -e '.[torch]'  (installs torch==2.13.0)"
WRAPPER_KEYS = ("state_dict", "model_state_dict")
DROPPED_SUFFIXES = ("num_batches_tracked",)
STRIPPED_PREFIX = "module."


class CheckpointReadError(ValueError):
    """A file that is not a readable PyTorch checkpoint or holds no state dict (the message names it)."""


def require_torch() -> Any:
    """Import torch, or raise ImportError with one line saying how to install it."""
    try:
        import torch
    except ImportError as err:
        raise ImportError(
            f"PyTorch is needed to read .pth checkpoints but is not installed: {INSTALL_HINT}"
        ) from err
    return torch


@dataclass
class TorchCheckpoint:
    """A state dict read from `path` and what was done to get it (for conversion summaries)."""

    path: Path
    state_dict: dict[str, np.ndarray]
    wrapper: str | None = None  # 'state_dict' / 'model_state_dict' when the file wrapped it
    other_entries: list[str] = field(default_factory=list)  # top-level keys beside the wrapper (not used)
    stripped_prefix: int = 0  # keys that lost a 'module.' prefix
    dropped: list[str] = field(default_factory=list)  # num_batches_tracked keys
    legacy_format: bool = False


def _numpy_safe_globals() -> list[Any]:
    """NumPy objects that old training scripts put beside the weights (e.g. `best_acc` as np.float64).

    Each is allowed under its NumPy 2 name and under the `numpy.core` name NumPy 1.x pickles use.
    """
    objects = [np._core.multiarray.scalar, np._core.multiarray._reconstruct, np.ndarray, np.dtype]
    objects += [type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32", "bool")]
    allowed: list[Any] = []
    for obj in objects:
        allowed.append(obj)
        module = obj.__module__
        if module.startswith("numpy._core"):
            allowed.append((obj, f"numpy.core{module[len('numpy._core') :]}.{obj.__name__}"))
    return allowed


def _torch_load(path: Path, trust_pickle: bool) -> Any:
    torch = require_torch()
    if trust_pickle:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        unsupported = next((line for line in lines if "Unsupported global" in line), None)
        if unsupported is not None:
            raise CheckpointReadError(
                f"{path}: the file holds Python objects beyond tensors, which a safe load refuses "
                f"({unsupported.split(' was not')[0]}). If you trust this file, rerun with --trust-pickle "
                "(trust_pickle=True), which unpickles it with weights_only=False and can execute code in it."
            ) from err
        raise CheckpointReadError(f"{path}: not a PyTorch checkpoint ({_unpickler_reason(lines)})") from err


def _unpickler_reason(lines: list[str]) -> str:
    """The informative part of torch's 'Weights only load failed' message."""
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            detail = line.split("WeightsUnpickler error:", 1)[1].strip()
            if not detail and i + 1 < len(lines):
                detail = lines[i + 1]
            return f"unpickling failed: {detail}"
    return lines[0] if lines else "unreadable"


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _to_numpy(name: str, value: Any, path: Path) -> np.ndarray:
    torch = require_torch()
    if not isinstance(value, torch.Tensor):
        raise CheckpointReadError(
            f"{path}: state-dict entry {name!r} is a {type(value).__name__}, not a tensor"
        )
    value = value.detach().cpu()
    if value.dtype in (torch.float16, torch.bfloat16):
        value = value.float()
    return value.numpy().copy()


def read_torch_checkpoint(path: str | Path, trust_pickle: bool = False) -> TorchCheckpoint:
    """Read `path` into a `TorchCheckpoint` (see the module docstring for what is accepted)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    legacy = not _is_zip(path)
    try:
        obj = _torch_load(path, trust_pickle)
    except (CheckpointReadError, ImportError):
        raise
    except Exception as err:  # torch.load fails in many ways on a file that is not a checkpoint
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        raise CheckpointReadError(f"{path}: not a PyTorch checkpoint ({reason})") from err

    if hasattr(obj, "state_dict") and callable(obj.state_dict) and not isinstance(obj, Mapping):
        obj = obj.state_dict()  # a pickled nn.Module (only reachable with trust_pickle)
    if not isinstance(obj, Mapping):
        raise CheckpointReadError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    wrapper = next((key for key in WRAPPER_KEYS if isinstance(obj.get(key), Mapping)), None)
    other: list[str] = []
    if wrapper is not None:
        other = [str(key) for key in obj if key != wrapper]
        obj = obj[wrapper]
    torch = require_torch()
    non_tensors = [str(key) for key, value in obj.items() if not isinstance(value, torch.Tensor)]
    if non_tensors:
        raise CheckpointReadError(
            f"{path}: no state dict found; top-level keys {sorted(map(str, obj))[:20]} include non-tensors "
            f"{non_tensors[:10]} and none of the wrappers {list(WRAPPER_KEYS)} holds a dict"
        )
    if not obj:
        raise CheckpointReadError(f"{path}: the state dict is empty")

    state_dict: dict[str, np.ndarray] = {}
    dropped: list[str] = []
    stripped = 0
    for key, value in obj.items():
        name = str(key)
        if name.startswith(STRIPPED_PREFIX):
            name = name[len(STRIPPED_PREFIX) :]
            stripped += 1
        if name.rsplit(".", 1)[-1] in DROPPED_SUFFIXES:
            dropped.append(name)
            continue
        if name in state_dict:
            raise CheckpointReadError(f"{path}: key {name!r} appears both with and without 'module.'")
        state_dict[name] = _to_numpy(name, value, path)
    return TorchCheckpoint(path, state_dict, wrapper, other, stripped, dropped, legacy)


def load_torch_state_dict(path: str | Path, trust_pickle: bool = False) -> dict[str, np.ndarray]:
    """`{torch_key: numpy array}` from a PyTorch checkpoint file (see the module docstring)."""
    return read_torch_checkpoint(path, trust_pickle).state_dict
