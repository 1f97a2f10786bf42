"""ego-rnn joint two-stream state dicts (`twoStreamAttentionModel`, docs/differences.md §4.4) ->
`egornn_two_stream`.

    python -m lsta_jax.convert --kind egornn_two_stream --torch-checkpoint model_twoStream_state_dict.pth \\
        --output DIR

Input: what ego-rnn's `main-run-twoStream.py` saves, `torch.save(model.state_dict())`: `flowModel.*` (a whole
`flow_resnet34` state dict, `lsta_jax.convert.ego_rnn_flow`), `frameModel.*` (a whole ego-rnn RGB state dict
with its duplicates `frameModel.weight_softmax` and `frameModel.classifier.1.*`, `lsta_jax.convert.ego_rnn`),
`fc2.{weight,bias}` and its duplicate `classifier.1.*`. Duplicates are checked equal and dropped; the rest is
filled strictly (`mapping.fill_variables`) through the two streams' own name maps nested under their names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lsta_jax.convert import ConvertedModel
from lsta_jax.convert.ego_rnn import ego_rnn_name_map, merge_ego_rnn_duplicates
from lsta_jax.convert.ego_rnn import infer_config as infer_rgb_config
from lsta_jax.convert.ego_rnn_flow import flow_name_map
from lsta_jax.convert.ego_rnn_flow import infer_config as infer_flow_config
from lsta_jax.convert.lsta import merge_duplicates
from lsta_jax.convert.mapping import ConversionError, NameMap, dense_entries, fill_variables, nest
from lsta_jax.convert.mapping import export_state_dict as export_with_map

KIND = "egornn_two_stream"
FLOW, FRAME = "flowModel", "frameModel"
DUPLICATES = {"classifier.1.weight": "fc2.weight", "classifier.1.bias": "fc2.bias"}


def two_stream_name_map(config: Mapping[str, Any]) -> NameMap:
    """Torch key -> Flax target for every tensor of an `egornn_two_stream` model (duplicates excluded)."""
    name_map = nest(flow_name_map(config), f"{FLOW}.", (FLOW,))
    name_map |= nest(ego_rnn_name_map(config), f"{FRAME}.", (FRAME,))
    return name_map | dense_entries("fc2", ("fc2",))


def _sub(state_dict: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def infer_config(merged: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The `egornn_two_stream` config read from the shapes of a merged two-stream state dict."""
    flow = infer_flow_config(_sub(merged, f"{FLOW}."))
    rgb = infer_rgb_config(merged, f"{FRAME}.")
    layouts = {
        "flow": (flow["backbone_stage_sizes"], flow["backbone_widths"]),
        "rgb": (rgb["backbone_stage_sizes"], rgb["backbone_widths"]),
    }
    if layouts["flow"] != layouts["rgb"] or flow["num_classes"] != rgb["num_classes"]:
        raise ConversionError(
            f"the two streams differ: flow backbone {layouts['flow']} and {flow['num_classes']} classes, RGB "
            f"backbone {layouts['rgb']} and {rgb['num_classes']} classes (ego-rnn builds both alike)"
        )
    return {
        "num_classes": int(np.shape(merged["fc2.weight"])[0]),
        "mem_size": rgb["mem_size"],
        "attention_classes": rgb["attention_classes"],
        "in_channels": flow["in_channels"],
        "backbone_stage_sizes": rgb["backbone_stage_sizes"],
        "backbone_widths": rgb["backbone_widths"],
        "dropout_rate": 0.5,
        "batchnorm": "train",
        "dtype": "float32",
        "remat": False,
    }


def merge_all_duplicates(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop (after checking) `classifier.1.*`, `frameModel.classifier.1.*` and `frameModel.weight_softmax`."""
    return merge_ego_rnn_duplicates(merge_duplicates(state_dict, DUPLICATES), f"{FRAME}.")


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> ConvertedModel:
    """An ego-rnn two-stream state dict (numpy arrays) -> `ConvertedModel` of kind `egornn_two_stream`."""
    from lsta_jax.checkpoint import abstract_variables
    from lsta_jax.models.registry import create_model

    absent = [k for k in ("fc2.weight", f"{FLOW}.conv1.weight", f"{FRAME}.fc.weight") if k not in state_dict]
    if absent:
        raise ConversionError(
            f"not an ego-rnn two-stream state dict: no {', '.join(absent)} "
            f"(its first keys: {', '.join(list(state_dict)[:6])})",
            missing=absent,
        )
    merged = merge_all_duplicates(state_dict)
    config = infer_config(merged)
    model = create_model(KIND, **config)
    variables = fill_variables(merged, two_stream_name_map(config), abstract_variables(model, KIND, config))
    notes = (
        f"{config['num_classes']} classes; flowModel ({config['in_channels']} input channels) + frameModel "
        f"(ConvLSTM {config['mem_size']}) -> fc2 on {2 * config['backbone_widths'][-1]} features",
    )
    return ConvertedModel(KIND, config, variables, num_classes=config["num_classes"], notes=notes)


def export_state_dict(config: Mapping[str, Any], variables: Any) -> dict[str, np.ndarray]:
    """Flax `egornn_two_stream` variables -> ego-rnn's state dict (torch layouts, numpy), with duplicates."""
    state_dict = export_with_map(variables, two_stream_name_map(config))
    state_dict[f"{FRAME}.weight_softmax"] = state_dict[f"{FRAME}.resNet.fc.weight"]
    for duplicate, main in {
        **{f"{FRAME}.classifier.1.{p}": f"{FRAME}.fc.{p}" for p in ("weight", "bias")},
        **DUPLICATES,
    }.items():
        state_dict[duplicate] = state_dict[main]
    return state_dict
