"""PyTorch references of the ego-rnn models, written by us from the spec; needs torch.

- `TorchEgoRNNModel`, the RGB model (docs/differences.md §4.5): keys `resNet.*`, `weight_softmax` (registered
as the
  same Parameter as `resNet.fc.weight`), `lstm_cell.conv_{i,f,c,o}_{xx,hh}.*`, `fc.*` and the duplicate
  `classifier.1.*`.
- `TorchFlowResNet`, the flow network `flow_resnet34` (docs/differences.md §4.2): torchvision keys without a
prefix and
  `fc_action.*`.
- `TorchEgoRNNTwoStream`, the joint two-stream model (docs/differences.md §4.4): `flowModel.*`,
`frameModel.*`, `fc2.*`
  and the duplicate `classifier.1.*`.
Clip time-major (T, B, 3, H, W) like the authors' forward; states zero-initialised; any spatial size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lsta_jax.reference.torch_resnet import TorchResNet


class TorchConvLSTMCell(nn.Module):
    """ego-rnn's ConvLSTM step: `forward(x, (h, c)) -> (h, c)` (see `lsta_jax.models.cells.ConvLSTMCell`)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        for gate in ("i", "f", "c", "o"):
            xx = nn.Conv2d(input_size, hidden_size, 3, padding=1)
            hh = nn.Conv2d(hidden_size, hidden_size, 3, padding=1, bias=False)
            nn.init.xavier_normal_(xx.weight)
            nn.init.zeros_(xx.bias)
            nn.init.xavier_normal_(hh.weight)
            setattr(self, f"conv_{gate}_xx", xx)
            setattr(self, f"conv_{gate}_hh", hh)

    def forward(self, x, state):
        h, c = state
        i = torch.sigmoid(self.conv_i_xx(x) + self.conv_i_hh(h))
        f = torch.sigmoid(self.conv_f_xx(x) + self.conv_f_hh(h))
        c_tilde = torch.tanh(self.conv_c_xx(x) + self.conv_c_hh(h))
        c = c_tilde * i + c * f
        o = torch.sigmoid(self.conv_o_xx(x) + self.conv_o_hh(h))
        return o * torch.tanh(c), c


class TorchEgoRNNModel(nn.Module):
    """ego-rnn's RGB `attentionModel`; `forward(clip (T,B,3,H,W), details=False)` like `TorchLSTAModel`."""

    def __init__(
        self,
        num_classes: int = 61,
        mem_size: int = 512,
        attention_classes: int = 1000,
        stage_sizes: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
        dropout_rate: float = 0.7,
    ) -> None:
        super().__init__()
        self.mem_size = mem_size
        self.resNet = TorchResNet(tuple(stage_sizes), tuple(widths), num_classes=attention_classes)
        self.weight_softmax = self.resNet.fc.weight
        self.lstm_cell = TorchConvLSTMCell(widths[-1], mem_size)
        self.dropout = nn.Dropout(dropout_rate)
        self.fc = nn.Linear(mem_size, num_classes)
        self.classifier = nn.Sequential(self.dropout, self.fc)

    def forward(self, clip: torch.Tensor, details: bool = False):
        state = None
        maps, classes, frame_feats = [], [], []
        for t in range(clip.shape[0]):
            logit, feature_conv, feature_nbn = self.resNet(clip[t])
            b, k, h, w = feature_conv.shape
            if state is None:
                zeros = torch.zeros(b, self.mem_size, h, w, dtype=clip.dtype)
                state = (zeros, zeros)
            class_idx = logit.sort(1, True)[1][:, 0]
            cam = torch.bmm(self.weight_softmax[class_idx].unsqueeze(1), feature_conv.view(b, k, h * w))
            attention = F.softmax(cam.squeeze(1), dim=1).view(b, 1, h, w)
            state = self.lstm_cell(feature_nbn * attention, state)
            maps.append(attention[:, 0])
            classes.append(class_idx)
            frame_feats.append(feature_conv.mean(dim=(2, 3)))
        feats = state[1].mean(dim=(2, 3))
        logits = self.classifier(feats)
        if not details:
            return logits, feats
        return {
            "logits": logits,
            "features": feats,
            "attention": torch.stack(maps),
            "attention_class": torch.stack(classes),
            "frame_features": torch.stack(frame_feats),
        }


class TorchFlowResNet(TorchResNet):
    """ego-rnn's `flow_resnet34` (docs/differences.md §4.2): torchvision ResNet on (B, 2L, H, W) flow stacks,
    global average pool, `dp` = Dropout(0.5), `fc_action`. State-dict keys: `conv1.*`, `bn1.*`,
    `layer{i}.{j}.*`, `fc_action.{weight,bias}` (no `fc`). `forward(x)` returns `(fc_action(dp(x1)), x1)` like
    ego-rnn's, x1 the pooled feature; `forward(x, details=True)` a dict adding `layer4` (B, K, h, w).
    """

    def __init__(
        self,
        num_classes: int = 61,
        in_channels: int = 10,
        stage_sizes: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
        dropout_rate: float = 0.5,
    ) -> None:
        super().__init__(tuple(stage_sizes), tuple(widths), in_channels=in_channels, include_fc=False)
        self.dp = nn.Dropout(dropout_rate)
        self.fc_action = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor, details: bool = False):
        _, layer4, _ = super().forward(x)
        x1 = layer4.mean(dim=(2, 3))
        logits = self.fc_action(self.dp(x1))
        if not details:
            return logits, x1
        return {"logits": logits, "features": x1, "layer4": layer4}


class TorchEgoRNNTwoStream(nn.Module):
    """ego-rnn's `twoStreamAttentionModel` (docs/differences.md §4.4): `flowModel` (TorchFlowResNet),
    `frameModel` (TorchEgoRNNModel), `fc2` = Linear(K_flow + K_rgb, M), registered again as `classifier.1`
    after Dropout(0.5).

    `forward(flow (B, 2L, H, W), clip (T, B, 3, H, W))` returns the logits of
    classifier(concat(flow x1, RGB feats)) (flow first), as ego-rnn's forward.
    """

    def __init__(
        self,
        num_classes: int = 61,
        mem_size: int = 512,
        in_channels: int = 10,
        attention_classes: int = 1000,
        stage_sizes: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
        dropout_rate: float = 0.5,
    ) -> None:
        super().__init__()
        self.flowModel = TorchFlowResNet(num_classes, in_channels, stage_sizes, widths)
        self.frameModel = TorchEgoRNNModel(num_classes, mem_size, attention_classes, stage_sizes, widths)
        self.fc2 = nn.Linear(widths[-1] + mem_size, num_classes)
        self.dropout = nn.Dropout(dropout_rate)
        self.classifier = nn.Sequential(self.dropout, self.fc2)

    def forward(self, flow: torch.Tensor, clip: torch.Tensor) -> torch.Tensor:
        _, flow_feats = self.flowModel(flow)
        _, rgb_feats = self.frameModel(clip)
        return self.classifier(torch.cat((flow_feats, rgb_feats), 1))
