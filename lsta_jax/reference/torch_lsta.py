"""PyTorch reference of the LSTA RGB model, written by us from `docs/differences.md` §2.1-2.5.

Needs the optional `torch` extra. Parameter names, registration order and state-dict keys are the authors'
(`resNet.*`, `lsta_cell.*`, `fc.*` and the duplicate `classifier.1.*`: 212 keys at full size), so a state
dict of the authors' `attentionModel` loads into `TorchLSTAModel` and vice versa. Layout is PyTorch's NCHW
and, like the authors' forward, the clip is time-major (T, B, 3, H, W). Used by the parity tests and by
`python -m lsta_jax.compare`; it is deliberately a plain, literal transcription of the spec (a Python loop
over time, one conv per gate), independent of the Flax code.

Generalisations that do not change the numbers at the authors' size: AvgPool2d(7) is a spatial mean and the
states take the feature map's spatial size, so any input size and the small test backbones work.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _gate_conv(in_channels: int, out_channels: int, bias: bool) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=bias)
    nn.init.xavier_normal_(conv.weight)
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


class TorchLSTACell(nn.Module):
    """One LSTA step (docs/differences.md §2.2-2.3). Registration order = the authors' state-dict order.

    `forward(x, cam, state_att, state_inp, x_flow_i=0, x_flow_f=0, x_flow_c=0, x_flow_o=0)` with x (B,K,H,W)
    the pre-BN feature, cam (B,1,H,W), state_att = (a, s) each (B,1,H,W), state_inp = (c, o) each (B,K,H,W).
    Returns `(state_att, state_inp, x_att, u, j)`: the new states, the attended input, the softmax map u_t
    (B,1,H,W) and the output-pooling class j_t (B,) (the authors' cell returns the first three).
    """

    def __init__(self, input_size: int, memory_size: int, c_cam_classes: int = 100) -> None:
        super().__init__()
        self.c_classifier = nn.Linear(memory_size, c_cam_classes, bias=False)
        self.coupling_fc = nn.Linear(memory_size, c_cam_classes, bias=False)
        for gate in ("i", "f", "a", "o"):
            setattr(self, f"conv_{gate}_s", _gate_conv(1, 1, True))
            setattr(self, f"conv_{gate}_cam", _gate_conv(1, 1, False))
        for gate in ("i", "f", "c"):
            setattr(self, f"conv_{gate}_x", _gate_conv(input_size, memory_size, True))
            setattr(self, f"conv_{gate}_c", _gate_conv(memory_size, memory_size, False))
        # Naming swap (docs/differences.md §2.2): conv_o_x acts on the hidden state, conv_o_c on the pooled
        # memory.
        self.conv_o_x = _gate_conv(input_size, memory_size, True)
        self.conv_o_c = _gate_conv(memory_size, memory_size, False)

    def forward(self, x, cam, state_att, state_inp, x_flow_i=0, x_flow_f=0, x_flow_c=0, x_flow_o=0):
        a_prev, s_prev = state_att
        c_prev, o_prev = state_inp

        # Attention recurrence (eqs. 4-6).
        i_a = torch.sigmoid(self.conv_i_s(s_prev) + self.conv_i_cam(cam))
        f_a = torch.sigmoid(self.conv_f_s(s_prev) + self.conv_f_cam(cam))
        o_a = torch.sigmoid(self.conv_o_s(s_prev) + self.conv_o_cam(cam))
        a_tilde = torch.tanh(self.conv_a_s(s_prev) + self.conv_a_cam(cam))
        a = f_a * a_prev + i_a * a_tilde
        s = o_a * torch.tanh(a)
        b, _, h, w = s.shape
        u = F.softmax((s + cam).view(b, h * w), dim=1).view(b, 1, h, w)
        x_att = x * u

        # Memory recurrence (eqs. 7-8).
        hidden = o_prev * torch.tanh(c_prev)
        i = torch.sigmoid(self.conv_i_c(hidden) + self.conv_i_x(x_att) + x_flow_i)
        f = torch.sigmoid(self.conv_f_c(hidden) + self.conv_f_x(x_att) + x_flow_f)
        c_tilde = torch.tanh(self.conv_c_c(hidden) + self.conv_c_x(x_att) + x_flow_c)
        c = f * c_prev + i * c_tilde

        # Output pooling (eq. 9): scores with coupling_fc, map with the plain selected row of c_classifier.
        scores = self.c_classifier(c.mean(dim=(2, 3))) + self.coupling_fc(x_att.mean(dim=(2, 3)))
        j = scores.sort(1, True)[1][:, 0]
        rows = self.c_classifier.weight[j]  # (B, K)
        c_cam = rows.unsqueeze(2).unsqueeze(3) * c
        o = torch.sigmoid(self.conv_o_x(hidden) + self.conv_o_c(c_cam))  # x_flow_o unused, as in the code
        return (a, s), (c, o), x_att, u, j


class TorchLSTAModel(nn.Module):
    """The authors' `attentionModel` (docs/differences.md §2.1): ResNet (`resNet`), `lsta_cell`, `fc`,
    `classifier`.

    `forward(clip)` with clip (T, B, 3, H, W) returns `(logits (B,M), feats (B,K))` like the authors'; with
    `details=True` it returns a dict adding `attention` (T, B, H', W') maps u_t, `attention_class` (T, B) k_t,
    `pooling_class` (T, B) j_t, `frame_features` (T, B, K) (spatial means of the BN'd layer4) and
    `frame_maps` (T, B, K, H', W') (the BN'd layer4). `gate_biases` ({'x_flow_i': ..., ...}, each
    broadcastable to (B, K, H', W')) go to every step of the cell, as the two-stream hooks of the authors'.
    """

    def __init__(
        self,
        num_classes: int = 61,
        mem_size: int = 512,
        c_cam_classes: int = 100,
        attention_classes: int = 1000,
        stage_sizes: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
        dropout_rate: float = 0.7,
    ) -> None:
        from lsta_jax.reference.torch_resnet import TorchResNet

        super().__init__()
        self.mem_size = mem_size
        self.resNet = TorchResNet(tuple(stage_sizes), tuple(widths), num_classes=attention_classes)
        self.lsta_cell = TorchLSTACell(mem_size, mem_size, c_cam_classes)
        self.dropout = nn.Dropout(dropout_rate)
        self.fc = nn.Linear(mem_size, num_classes)
        self.classifier = nn.Sequential(self.dropout, self.fc)  # registers fc twice: classifier.1.* keys

    def forward(self, clip: torch.Tensor, details: bool = False, gate_biases: dict | None = None):
        steps = clip.shape[0]
        state_att = state_inp = None
        maps, att_classes, pool_classes, frame_feats, frame_maps = [], [], [], [], []
        for t in range(steps):
            logit, feature_conv, x = self.resNet(clip[t])
            b, k, h, w = feature_conv.shape
            if state_att is None:  # zero states of the feature map's size (7x7 at 224x224)
                zeros_att = torch.zeros(b, 1, h, w, dtype=x.dtype, device=x.device)
                zeros_inp = torch.zeros(b, self.mem_size, h, w, dtype=x.dtype, device=x.device)
                state_att, state_inp = (zeros_att, zeros_att), (zeros_inp, zeros_inp)
            class_idx = logit.sort(1, True)[1][:, 0]
            rows = self.resNet.fc.weight[class_idx]  # (B, K), no bias
            cam = torch.bmm(rows.unsqueeze(1), feature_conv.view(b, k, h * w)).view(b, 1, h, w)
            state_att, state_inp, _, u, j = self.lsta_cell(
                x, cam, state_att, state_inp, **(gate_biases or {})
            )
            maps.append(u[:, 0])
            frame_maps.append(feature_conv)
            att_classes.append(class_idx)
            pool_classes.append(j)
            frame_feats.append(feature_conv.mean(dim=(2, 3)))
        feats = state_inp[0].mean(dim=(2, 3))
        logits = self.classifier(feats)
        if not details:
            return logits, feats
        return {
            "logits": logits,
            "features": feats,
            "attention": torch.stack(maps),
            "attention_class": torch.stack(att_classes),
            "pooling_class": torch.stack(pool_classes),
            "frame_features": torch.stack(frame_feats),
            "frame_maps": torch.stack(frame_maps),
        }
