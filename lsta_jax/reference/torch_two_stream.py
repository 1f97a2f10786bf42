"""PyTorch references of the LSTA motion stream (paper 5.2) and the cross-modal two-stream model (paper 5.3).

Written by us from `lsta_jax.models.motion.FlowAttentionClassifier` / `lsta_jax.models.two_stream`'s
documented equations (the authors never released this part, docs/differences.md §4.3-4.4), as a plain literal
transcription in NCHW with explicit loops, independent of the Flax code; used by the parity tests. Parameter
names are the Flax tree's with '.' (`resNet.fc_action.weight`, `frameModel.lsta_cell.conv_i_x.weight`,
`flow_lstm_cell.conv_i_xx.weight`, `rgb_summary.weight` (a Conv3d), ...), so `lsta_jax.convert.two_stream`'s
name maps move weights between the two.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lsta_jax.reference.torch_ego_rnn import TorchConvLSTMCell, TorchFlowResNet
from lsta_jax.reference.torch_lsta import TorchLSTAModel


class TorchLSTAFlow(nn.Module):
    """The motion stream: `resNet` (ego-rnn's flow network, its `fc_action` the verb selector), `fc`.

    `forward(flow (B, 2L, H, W))` returns a dict: `logits` (B, M), `features` (B, K), `attention` (B, h, w)
    and `attention_class` (B,). `head(feature_map)` is the part after the trunk.
    """

    def __init__(
        self,
        num_classes: int = 61,
        verb_classes: int = 61,
        in_channels: int = 10,
        stage_sizes: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
        dropout_rate: float = 0.5,
    ) -> None:
        super().__init__()
        self.resNet = TorchFlowResNet(verb_classes, in_channels, stage_sizes, widths)
        self.dropout = nn.Dropout(dropout_rate)
        self.fc = nn.Linear(widths[-1], num_classes)

    def trunk(self, flow: torch.Tensor) -> torch.Tensor:
        return self.resNet(flow, details=True)["layer4"]

    def head(self, feature_map: torch.Tensor) -> dict[str, torch.Tensor]:
        b, k, h, w = feature_map.shape
        flat = feature_map.view(b, k, h * w)
        scores = self.resNet.fc_action(flat.mean(dim=2))  # the verb scores, with the bias
        verb = scores.sort(1, True)[1][:, 0]
        rows = self.resNet.fc_action.weight[verb]  # (B, K): the selected verb's weights, no bias
        cam = torch.bmm(rows.unsqueeze(1), flat)  # (B, 1, h*w)
        u = F.softmax(cam, dim=2)
        features = (flat * u).sum(dim=2)  # Σ_i u_i f_i
        logits = self.fc(self.dropout(features))
        return {"logits": logits, "features": features, "attention": u.view(b, h, w), "attention_class": verb}

    def forward(self, flow: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.trunk(flow))


class TorchCrossModalTwoStream(nn.Module):
    """The cross-modal two-stream model: `frameModel` (TorchLSTAModel), `flowModel` (TorchLSTAFlow),
    `conv_x_flow_{i,f,c}`, `rgb_summary` (Conv3d), `conv_x_rgb_{i,f,c,o}`, `flow_lstm_cell` (ego-rnn's
    ConvLSTM). Fusion convs get random (xavier-normal) weights here so that every path is exercised.

    `forward(clip (T, B, 3, H, W), flow (B, 2L, H, W))` returns a dict: `logits` (the mean of the two),
    `rgb_logits`, `flow_logits`, `attention` (T, B, h, w), `flow_attention` (B, h, w), `attention_class`
    (T, B), `pooling_class` (T, B), `flow_attention_class` (B,).
    """

    def __init__(
        self,
        num_classes: int = 61,
        mem_size: int = 512,
        c_cam_classes: int = 100,
        attention_classes: int = 1000,
        verb_classes: int = 61,
        in_channels: int = 10,
        stage_sizes: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
        fusion_kernel: int = 3,
        summary_kernel: Sequence[int] = (3, 3, 3),
        summary_features: int = 512,
        flow_mem_size: int = 512,
        flow_embedding_residual: bool = True,
    ) -> None:
        super().__init__()
        self.residual = flow_embedding_residual
        self.frameModel = TorchLSTAModel(
            num_classes, mem_size, c_cam_classes, attention_classes, stage_sizes, widths
        )
        self.flowModel = TorchLSTAFlow(num_classes, verb_classes, in_channels, stage_sizes, widths)
        k_flow, pad = widths[-1], fusion_kernel // 2
        for g in ("i", "f", "c"):
            setattr(self, f"conv_x_flow_{g}", nn.Conv2d(k_flow, mem_size, fusion_kernel, padding=pad))
        self.rgb_summary = nn.Conv3d(
            widths[-1], summary_features, tuple(summary_kernel), padding=tuple(k // 2 for k in summary_kernel)
        )
        for g in ("i", "f", "c", "o"):
            setattr(
                self,
                f"conv_x_rgb_{g}",
                nn.Conv2d(summary_features, flow_mem_size, fusion_kernel, padding=pad),
            )
        self.flow_lstm_cell = TorchConvLSTMCell(k_flow, flow_mem_size)

    def forward(self, clip: torch.Tensor, flow: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.flowModel.trunk(flow)  # (B, K_f, h, w)
        x_flow = {f"x_flow_{g}": getattr(self, f"conv_x_flow_{g}")(f) for g in ("i", "f", "c")}
        rgb = self.frameModel(clip, details=True, gate_biases=x_flow)
        sequence = rgb["frame_maps"].permute(1, 2, 0, 3, 4)  # (T, B, K, h, w) -> (B, K, T, h, w)
        summary = self.rgb_summary(sequence).mean(dim=2)  # (B, C_s, h, w)
        x_rgb = {g: getattr(self, f"conv_x_rgb_{g}")(summary) for g in ("i", "f", "c", "o")}
        # One ConvLSTM step from zero states, each gate's pre-activation plus its RGB bias.
        cell = self.flow_lstm_cell
        h0 = torch.zeros(f.shape[0], cell.conv_i_hh.out_channels, *f.shape[2:])
        c0 = torch.zeros_like(h0)
        i = torch.sigmoid(cell.conv_i_xx(f) + cell.conv_i_hh(h0) + x_rgb["i"])
        fg = torch.sigmoid(cell.conv_f_xx(f) + cell.conv_f_hh(h0) + x_rgb["f"])
        c_tilde = torch.tanh(cell.conv_c_xx(f) + cell.conv_c_hh(h0) + x_rgb["c"])
        c = c_tilde * i + c0 * fg
        o = torch.sigmoid(cell.conv_o_xx(f) + cell.conv_o_hh(h0) + x_rgb["o"])
        hidden = o * torch.tanh(c)
        motion = self.flowModel.head(f + hidden if self.residual else hidden)
        return {
            "logits": (rgb["logits"] + motion["logits"]) / 2,
            "rgb_logits": rgb["logits"],
            "flow_logits": motion["logits"],
            "attention": rgb["attention"],
            "flow_attention": motion["attention"],
            "attention_class": rgb["attention_class"],
            "pooling_class": rgb["pooling_class"],
            "flow_attention_class": motion["attention_class"],
        }
