"""ego-rnn RGB state dicts (docs/differences.md §4.5, §7) -> Flax variables of kind `convlstm_rgb`.

Keys: `resNet.*` (torchvision ResNet-34 names), `weight_softmax` (the same tensor as `resNet.fc.weight`),
`lstm_cell.conv_{i,f,c,o}_xx.{weight,bias}`, `lstm_cell.conv_{i,f,c,o}_hh.weight`, `fc.*` and possibly the
duplicate `classifier.1.*`. Both duplicates are checked for equality and dropped; the rest is filled
strictly by `mapping.fill_variables`. The config is read from the shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lsta_jax.convert import ConvertedModel
from lsta_jax.convert.lsta import DUPLICATES, RESNET_PREFIX, merge_duplicates
from lsta_jax.convert.mapping import (
    ConversionError,
    NameMap,
    conv_entries,
    dense_entries,
    fill_variables,
    nest,
)
from lsta_jax.convert.resnet import infer_resnet_layout, resnet_name_map

KIND = "convlstm_rgb"


def ego_rnn_name_map(config: Mapping[str, Any]) -> NameMap:
    """Torch key -> Flax target for every tensor of a `convlstm_rgb` model (duplicates excluded)."""
    backbone = resnet_name_map(tuple(config["backbone_stage_sizes"]), tuple(config["backbone_widths"]))
    name_map = nest(backbone, RESNET_PREFIX, ("resNet",))
    for g in ("i", "f", "c", "o"):
        name_map |= conv_entries(f"lstm_cell.conv_{g}_xx", ("lstm_cell", f"conv_{g}_xx"), bias=True)
        name_map |= conv_entries(f"lstm_cell.conv_{g}_hh", ("lstm_cell", f"conv_{g}_hh"), bias=False)
    name_map |= dense_entries("fc", ("fc",))
    return name_map


def merge_ego_rnn_duplicates(state_dict: Mapping[str, np.ndarray], prefix: str = "") -> dict[str, np.ndarray]:
    """Check and drop the RGB model's two duplicates (keys under `prefix`, e.g. 'frameModel.'):
    `classifier.1.*` (folded into `fc.*`) and `weight_softmax` (must equal `resNet.fc.weight`)."""
    merged = merge_duplicates(state_dict, {prefix + k: prefix + v for k, v in DUPLICATES.items()})
    if prefix + "weight_softmax" in merged:
        softmax = merged.pop(prefix + "weight_softmax")
        fc = merged.get(prefix + "resNet.fc.weight")
        if fc is None or np.shape(fc) != np.shape(softmax) or not np.array_equal(fc, softmax):
            raise ConversionError(
                f"{prefix}weight_softmax differs from {prefix}resNet.fc.weight; in ego-rnn they are one "
                "tensor"
            )
    return merged


def infer_config(merged: Mapping[str, np.ndarray], prefix: str = "") -> dict[str, Any]:
    """The `convlstm_rgb` config read from the shapes of a merged ego-rnn RGB state dict (keys under
    `prefix`)."""
    required = [prefix + k for k in ("fc.weight", "lstm_cell.conv_i_xx.weight", "resNet.fc.weight")]
    absent = [k for k in required if k not in merged]
    if absent:
        raise ConversionError(f"not an ego-rnn RGB state dict: no {', '.join(absent)}", missing=absent)
    backbone = prefix + RESNET_PREFIX
    layout = infer_resnet_layout({k[len(backbone) :]: v for k, v in merged.items() if k.startswith(backbone)})
    return {
        "num_classes": int(np.shape(merged[prefix + "fc.weight"])[0]),
        "mem_size": int(np.shape(merged[prefix + "fc.weight"])[1]),
        "attention_classes": int(layout["num_classes"]),
        "backbone_stage_sizes": [int(s) for s in layout["stage_sizes"]],
        "backbone_widths": [int(w) for w in layout["widths"]],
        "dropout_rate": 0.7,
        "dtype": "float32",
        "remat": False,
    }


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> ConvertedModel:
    """An ego-rnn RGB state dict (numpy arrays) -> `ConvertedModel` of kind `convlstm_rgb`."""
    from lsta_jax.checkpoint import abstract_variables
    from lsta_jax.models.registry import create_model

    merged = merge_ego_rnn_duplicates(state_dict)
    config = infer_config(merged)
    model = create_model(KIND, **config)
    variables = fill_variables(merged, ego_rnn_name_map(config), abstract_variables(model, KIND, config))
    return ConvertedModel(KIND, config, variables, num_classes=config["num_classes"])
