"""ego-rnn flow-network state dicts (`flow_resnet34`, docs/differences.md §4.2) -> Flax variables of kind
`egornn_flow`.

    python -m lsta_jax.convert --kind egornn_flow --torch-checkpoint model_flow_state_dict.pth --output DIR

Input: what ego-rnn's `main-run-flow.py` saves, `torch.save(model.state_dict())`: torchvision ResNet-34 keys
WITHOUT a prefix (`conv1.weight` [64, 10, 7, 7], `bn1.*`, `layer{i}.{j}.*`, `layer{i}.0.downsample.{0,1}.*`)
and `fc_action.{weight,bias}`; no `fc.*` (its ImageNet fc is dropped at initialisation). The config is read
from the shapes (M from `fc_action.weight`, in_channels from `conv1.weight`, the layout from `layer*`).
Strict accounting by `mapping.fill_variables`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lsta_jax.convert import ConvertedModel
from lsta_jax.convert.mapping import ConversionError, NameMap, dense_entries, fill_variables
from lsta_jax.convert.mapping import export_state_dict as export_with_map
from lsta_jax.convert.resnet import infer_resnet_layout, resnet_name_map

KIND = "egornn_flow"


def flow_name_map(config: Mapping[str, Any]) -> NameMap:
    """Torch key -> Flax target for every tensor of an `egornn_flow` model of `config`."""
    name_map = resnet_name_map(
        tuple(config.get("backbone_stage_sizes", (3, 4, 6, 3))),
        tuple(config.get("backbone_widths", (64, 128, 256, 512))),
        include_fc=False,
    )
    return name_map | dense_entries("fc_action", ("fc_action",))


def infer_config(state_dict: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The JSON-able `egornn_flow` config read from the tensor shapes of a `flow_resnet34` state dict."""
    absent = [key for key in ("fc_action.weight", "conv1.weight") if key not in state_dict]
    if absent:
        sample = ", ".join(list(state_dict)[:6])
        raise ConversionError(
            f"not an ego-rnn flow_resnet34 state dict: no {', '.join(absent)} (its first keys: {sample})",
            missing=absent,
        )
    layout = infer_resnet_layout(state_dict)
    return {
        "num_classes": int(np.shape(state_dict["fc_action.weight"])[0]),
        "in_channels": int(layout["in_channels"]),
        "backbone_stage_sizes": [int(s) for s in layout["stage_sizes"]],
        "backbone_widths": [int(w) for w in layout["widths"]],
        "dropout_rate": 0.5,
        "batchnorm": "train",
        "batch_stats_from": 0,
        "dtype": "float32",
    }


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> ConvertedModel:
    """An ego-rnn flow state dict (numpy arrays) -> `ConvertedModel` of kind `egornn_flow`."""
    from lsta_jax.checkpoint import abstract_variables
    from lsta_jax.models.registry import create_model

    config = infer_config(state_dict)
    model = create_model(KIND, **config)
    variables = fill_variables(state_dict, flow_name_map(config), abstract_variables(model, KIND, config))
    notes = (
        f"{config['num_classes']} classes, {config['in_channels']} input channels "
        f"({config['in_channels'] // 2} stacked x/y flow frames), backbone {config['backbone_stage_sizes']}",
    )
    return ConvertedModel(KIND, config, variables, num_classes=config["num_classes"], notes=notes)


def export_state_dict(config: Mapping[str, Any], variables: Any) -> dict[str, np.ndarray]:
    """Flax `egornn_flow` variables -> ego-rnn's `flow_resnet34` state dict (torch layouts, numpy)."""
    return export_with_map(variables, flow_name_map(config))


def flow_init_from_resnet(variables: Mapping[str, Any], resnet: Mapping[str, Any]) -> dict[str, Any]:
    """ego-rnn's `flow_resnet34(pretrained=True)` initialisation (`change_key_names`, docs/differences.md
    §4.2) on Flax variables: every backbone leaf of a flow network's `variables` (top-level `conv1`, `bn1`,
    `layer*`) taken from a ResNet's `resnet` variables (e.g. the converted ImageNet ResNet-34), its `fc`
    dropped, conv1 by the cross-modality rule (`flow_conv1_from_rgb`) when the channel counts differ; the flow
    head (`fc_action`) keeps its fresh initialisation. Returns new nested dicts (the inputs are not
    modified)."""
    from lsta_jax.convert.resnet import flow_conv1_from_rgb

    out = {collection: dict(tree) for collection, tree in variables.items()}
    for collection in ("params", "batch_stats"):
        source = {k: v for k, v in resnet.get(collection, {}).items() if k != "fc"}
        unknown = sorted(set(source) - set(out.get(collection, {})))
        if unknown:
            raise ConversionError(f"the ResNet's {collection} {unknown} have no place in the flow network")
        out[collection].update(source)
    kernel = np.asarray(resnet["params"]["conv1"]["kernel"])
    channels = np.shape(variables["params"]["conv1"]["kernel"])[2]
    if kernel.shape[2] != channels:
        out["params"]["conv1"] = {"kernel": flow_conv1_from_rgb(kernel, channels, layout="HWIO")}
    return out


def torch_model_from_state_dict(config: Mapping[str, Any], state_dict: Mapping[str, np.ndarray]) -> Any:
    """Our PyTorch reference (`TorchFlowResNet`) of `config` loaded strictly with `state_dict` (numpy), in
    eval mode; only BatchNorm `num_batches_tracked` may be missing."""
    import torch

    from lsta_jax.reference.torch_ego_rnn import TorchFlowResNet

    model = TorchFlowResNet(
        num_classes=config["num_classes"],
        in_channels=config["in_channels"],
        stage_sizes=config["backbone_stage_sizes"],
        widths=config["backbone_widths"],
        dropout_rate=config.get("dropout_rate", 0.5),
    )
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict.items()}
    result = model.load_state_dict(tensors, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ConversionError(
            "the state dict does not fit the PyTorch reference",
            missing=missing,
            unexpected=result.unexpected_keys,
        )
    return model.eval()
