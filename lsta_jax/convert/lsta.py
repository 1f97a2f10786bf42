"""The authors' LSTA RGB checkpoints (`attentionModel` state dicts) -> Flax variables of kind `lsta_rgb`.

    python -m lsta_jax.convert --kind lsta_rgb --torch-checkpoint best_checkpoint_stage2.pth.tar --output DIR

Input (docs/differences.md §2.5 and §7): what the authors' `main_rgb.py` saves, `{'epoch', 'model_state_dict',
'optimizer_state_dict', 'best_acc'}` (legacy PyTorch 0.3 serialisation, tensors saved from GPU), or a bare
state dict; reading, unwrapping and dropping `num_batches_tracked` is `torch_io`'s job. Keys: `resNet.*`
(torchvision ResNet-34 names, 182 keys), `lsta_cell.*` (26), `fc.weight`, `fc.bias` and their duplicates
`classifier.1.weight`, `classifier.1.bias` (the same Linear registered twice): 212 keys. The config is read
from the shapes: M from `fc.weight`, C_o from `lsta_cell.c_classifier.weight`, the attention classes from
`resNet.fc.weight`, the backbone layout from the `resNet.layer*` keys.

Accounting is strict (`mapping.fill_variables`): every torch key consumed, every Flax leaf filled, shapes
equal, else a `ConversionError` listing the missing, unexpected and mismatched names. `fc.*` is read;
`classifier.1.*` must hold the same values (in a real state dict they are one tensor) and is then dropped;
a file that has only `classifier.1.*` is read from it (on load PyTorch keeps the later key,
docs/differences.md §2.5). Mapping: a rename plus conv OIHW -> HWIO and Linear (out, in) -> Dense (in, out);
the output-gate naming swap (docs/differences.md §2.2) needs nothing special since names map one to one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lsta_jax.convert import ConvertedModel
from lsta_jax.convert.mapping import (
    TRANSFORMS,
    ConversionError,
    NameMap,
    conv_entries,
    dense_entries,
    fill_variables,
    nest,
)
from lsta_jax.convert.mapping import (
    export_state_dict as export_with_map,
)
from lsta_jax.convert.resnet import infer_resnet_layout, resnet_name_map

KIND = "lsta_rgb"
ATT_GATES = ("i", "f", "a", "o")
MEM_GATES = ("i", "f", "c", "o")
#: duplicate key -> the key it duplicates (attentionModel registers `fc` again as `classifier[1]`)
DUPLICATES = {"classifier.1.weight": "fc.weight", "classifier.1.bias": "fc.bias"}
RESNET_PREFIX = "resNet."


def lsta_cell_name_map(
    attention_pooling: bool = True, output_pooling: bool = True, bias_control: bool = True
) -> NameMap:
    """Torch key (relative to the cell) -> target inside the cell, in the authors' registration order.

    The switches drop the tensors of the ablated components (see `lsta_jax.models.cells.LSTACell`).
    """
    name_map: NameMap = {}
    if output_pooling:
        name_map |= dense_entries("c_classifier", ("c_classifier",), bias=False)
        if bias_control:
            name_map |= dense_entries("coupling_fc", ("coupling_fc",), bias=False)
    if attention_pooling:
        for g in ATT_GATES:
            name_map |= conv_entries(f"conv_{g}_s", (f"conv_{g}_s",), bias=True)
            name_map |= conv_entries(f"conv_{g}_cam", (f"conv_{g}_cam",), bias=False)
    for g in MEM_GATES:
        name_map |= conv_entries(f"conv_{g}_x", (f"conv_{g}_x",), bias=True)
        name_map |= conv_entries(f"conv_{g}_c", (f"conv_{g}_c",), bias=False)
    return name_map


def lsta_rgb_name_map(config: Mapping[str, Any]) -> NameMap:
    """Torch key -> Flax target for every tensor of an `lsta_rgb` model of `config` (no duplicates)."""
    from lsta_jax.models.lsta import VARIANTS

    attention_on, output_on, bias_on = VARIANTS[config.get("variant", "lsta")]
    backbone = resnet_name_map(
        tuple(config.get("backbone_stage_sizes", (3, 4, 6, 3))),
        tuple(config.get("backbone_widths", (64, 128, 256, 512))),
        include_fc=True,
    )
    name_map = nest(backbone, RESNET_PREFIX, ("resNet",))
    name_map |= nest(lsta_cell_name_map(attention_on, output_on, bias_on), "lsta_cell.", ("lsta_cell",))
    name_map |= dense_entries("fc", ("fc",))
    return name_map


def torch_cell_to_flax(state_dict: Mapping[str, Any], prefix: str = "", **switches: bool) -> dict[str, Any]:
    """`LSTACell` params from the tensors of a torch cell (keys `prefix + name`); for tests and tools."""
    params: dict[str, Any] = {}
    for key, target in lsta_cell_name_map(**switches).items():
        value = TRANSFORMS[target.transform][0](np.asarray(state_dict[prefix + key], np.float32))
        params.setdefault(target.path[0], {})[target.path[1]] = value
    return params


def merge_duplicates(
    state_dict: Mapping[str, np.ndarray], duplicates: Mapping[str, str] = DUPLICATES
) -> dict[str, np.ndarray]:
    """Fold each `duplicates` key (default `classifier.1.*`) into the key it duplicates (default `fc.*`,
    docs/differences.md §2.5); both present must be equal."""
    merged = dict(state_dict)
    for duplicate, main in duplicates.items():
        if duplicate not in merged:
            continue
        value = merged.pop(duplicate)
        if main not in merged:
            merged[main] = value
        elif np.shape(merged[main]) != np.shape(value) or not np.array_equal(merged[main], value):
            raise ConversionError(
                f"{duplicate} differs from {main}: in the authors' models they are one module registered "
                "twice (classifier = Sequential(dropout, fc)), so this is not such a state dict"
            )
    return merged


def infer_config(state_dict: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The JSON-able `lsta_rgb` config read from the tensor shapes of a (merged) authors' state dict."""
    required = ("fc.weight", "lsta_cell.c_classifier.weight", "resNet.fc.weight", "resNet.conv1.weight")
    absent = [key for key in required if key not in state_dict]
    if absent:
        sample = ", ".join(list(state_dict)[:6])
        raise ConversionError(
            f"not an LSTA RGB (attentionModel) state dict: no {', '.join(absent)} (its first keys: {sample})",
            missing=absent,
        )
    backbone = {k[len(RESNET_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(RESNET_PREFIX)}
    layout = infer_resnet_layout(backbone)
    fc = np.shape(state_dict["fc.weight"])
    return {
        "num_classes": int(fc[0]),
        "mem_size": int(fc[1]),
        "c_cam_classes": int(np.shape(state_dict["lsta_cell.c_classifier.weight"])[0]),
        "attention_classes": int(layout["num_classes"]),
        "backbone_stage_sizes": [int(s) for s in layout["stage_sizes"]],
        "backbone_widths": [int(w) for w in layout["widths"]],
        "dropout_rate": 0.7,
        "dtype": "float32",
        "remat": False,
        "variant": "lsta",
    }


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> ConvertedModel:
    """An authors'-layout LSTA RGB state dict (numpy arrays) -> `ConvertedModel` of kind `lsta_rgb`."""
    from lsta_jax.checkpoint import abstract_variables
    from lsta_jax.models.registry import create_model

    merged = merge_duplicates(state_dict)
    config = infer_config(merged)
    if config["mem_size"] != config["backbone_widths"][-1]:
        raise ConversionError(
            f"fc.weight has {config['mem_size']} inputs but the backbone's last width is "
            f"{config['backbone_widths'][-1]}; LSTA's memory must match it"
        )
    model = create_model(KIND, **config)
    variables = fill_variables(merged, lsta_rgb_name_map(config), abstract_variables(model, KIND, config))
    notes = (
        f"{config['num_classes']} classes, C_o = {config['c_cam_classes']}, attention selector over "
        f"{config['attention_classes']} classes, backbone {config['backbone_stage_sizes']}",
    )
    return ConvertedModel(KIND, config, variables, num_classes=config["num_classes"], notes=notes)


def export_state_dict(config: Mapping[str, Any], variables: Any) -> dict[str, np.ndarray]:
    """Flax `lsta_rgb` variables -> the authors' state dict (torch layouts, numpy), duplicates included."""
    state_dict = export_with_map(variables, lsta_rgb_name_map(config))
    for duplicate, main in DUPLICATES.items():
        state_dict[duplicate] = state_dict[main]
    return state_dict


def torch_model_from_state_dict(config: Mapping[str, Any], state_dict: Mapping[str, np.ndarray]) -> Any:
    """Our PyTorch reference (`TorchLSTAModel`) of `config` loaded strictly with `state_dict` (numpy).

    `classifier.1.*` is filled from `fc.*` when absent; BatchNorm `num_batches_tracked` (unused in eval) is
    the only thing allowed to be missing.
    """
    import torch

    from lsta_jax.reference.torch_lsta import TorchLSTAModel

    model = TorchLSTAModel(
        num_classes=config["num_classes"],
        mem_size=config["mem_size"],
        c_cam_classes=config["c_cam_classes"],
        attention_classes=config["attention_classes"],
        stage_sizes=config["backbone_stage_sizes"],
        widths=config["backbone_widths"],
        dropout_rate=config.get("dropout_rate", 0.7),
    )
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in merge_duplicates(state_dict).items()}
    for duplicate, main in DUPLICATES.items():
        tensors[duplicate] = tensors[main]
    result = model.load_state_dict(tensors, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ConversionError(
            "the state dict does not fit the PyTorch reference",
            missing=missing,
            unexpected=result.unexpected_keys,
        )
    return model.eval()
