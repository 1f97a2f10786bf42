"""Name maps of the LSTA motion stream (`lsta_flow`) and the cross-modal two-stream model (`lsta_two_stream`).

The authors never released these models (docs/differences.md §4.1), so there is no checkpoint format to
convert; these maps tie the Flax trees to our PyTorch references (`lsta_jax.reference.torch_two_stream`),
whose state-dict keys are the Flax paths with '.', for the parity tests and for exporting weights to PyTorch:
  `lsta_flow`       `resNet.*` (an `egornn_flow` state dict under `resNet.`, `fc_action` included), `fc.*`
  `lsta_two_stream` `frameModel.*` (an `lsta_rgb` map), `flowModel.*` (an `lsta_flow` map),
                    `conv_x_flow_{i,f,c}.*`, `rgb_summary.*` (Conv3d), `conv_x_rgb_{i,f,c,o}.*`,
                    `flow_lstm_cell.conv_{i,f,c,o}_{xx,hh}.*`
Strict in both directions (`mapping.fill_variables`, `mapping.export_state_dict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lsta_jax.convert.ego_rnn_flow import flow_name_map
from lsta_jax.convert.lsta import lsta_rgb_name_map
from lsta_jax.convert.mapping import NameMap, conv_entries, dense_entries, nest

RGB_KEYS = ("num_classes", "mem_size", "c_cam_classes", "attention_classes", "variant")


def _layout(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: config[k] for k in ("backbone_stage_sizes", "backbone_widths") if k in config}


def lsta_flow_name_map(config: Mapping[str, Any]) -> NameMap:
    """Torch key -> Flax target for every tensor of an `lsta_flow` model of `config`."""
    name_map = nest(flow_name_map(_layout(config)), "resNet.", ("resNet",))
    return name_map | dense_entries("fc", ("fc",))


def lsta_two_stream_name_map(config: Mapping[str, Any]) -> NameMap:
    """Torch key -> Flax target for every tensor of an `lsta_two_stream` model of `config`."""
    rgb = {k: config[k] for k in RGB_KEYS if k in config} | _layout(config)
    name_map = nest(lsta_rgb_name_map(rgb), "frameModel.", ("frameModel",))
    name_map |= nest(lsta_flow_name_map(config), "flowModel.", ("flowModel",))
    for g in ("i", "f", "c"):
        name_map |= conv_entries(f"conv_x_flow_{g}", (f"conv_x_flow_{g}",), bias=True)
    name_map |= conv_entries("rgb_summary", ("rgb_summary",), bias=True)
    for g in ("i", "f", "c", "o"):
        name_map |= conv_entries(f"conv_x_rgb_{g}", (f"conv_x_rgb_{g}",), bias=True)
    for g in ("i", "f", "c", "o"):
        name_map |= conv_entries(f"flow_lstm_cell.conv_{g}_xx", ("flow_lstm_cell", f"conv_{g}_xx"), bias=True)
        name_map |= conv_entries(f"flow_lstm_cell.conv_{g}_hh", ("flow_lstm_cell", f"conv_{g}_hh"))
    return name_map
