"""Two-stream fusion of an appearance (RGB) and a motion (flow) stream.

`late_fusion`: the paper's "two stream late fusion" row (Table 1, 78.45% on GTEA61*), computed with ego-rnn's
`eval-run-twoStream.py` rule (docs/differences.md §4.4), which LSTA never released for itself.

`CrossModalTwoStream`, kind `lsta_two_stream`: cross-modal fusion of the two LSTA streams (paper 5.3).

The paper (docs/differences.md §4.4; the authors never released this part):
  "the flow feature from the conv5_3 of the motion stream CNN is applied as bias to the gates of the LSTA
  layer"; "the sequence of features from the conv5_3 of the RGB stream CNN are 3D convolved into a summary
  feature. We add a ConvLSTM cell of memory size 512 in the motion stream as an embedding layer and use the
  RGB summary feature to control the bias of the ConvLSTM gates"; "a late average fusion of the two
  individual streams' output to obtain the class scores".

What `CrossModalTwoStream` computes, in order (one forward, both streams):
1. motion trunk: f = flow `layer4` (B, h, w, K_f) of the stack (`flowModel.trunk`);
2. flow -> appearance biases: x_flow_g = conv_x_flow_g(f), g in {i, f, c}, added inside the LSTA memory gates
   at every frame (`LSTACell` gate_biases; the authors' cell ignores an `o` hook, docs/differences.md §2.4
   item 7);
3. appearance stream = the LSTA RGB model (`frameModel`, `lsta.LSTAClassifier`) with those biases; it also
   returns each frame's conv5_3 map (B, T, h, w, K);
4. RGB summary: s = mean over time of the 3D convolution `rgb_summary` of that sequence (B, h, w, C_s);
5. appearance -> motion biases: x_rgb_g = conv_x_rgb_g(s), g in {i, f, c, o};
6. motion embedding: `flow_lstm_cell` (ego-rnn's ConvLSTM, memory `flow_mem_size`) steps over the flow
   feature(s) from zero states with the gate biases x_rgb; embedding e = f + h (residual) or h;
7. motion head = the motion stream's attention pooling and classifier (`flowModel.head`) on e;
8. `logits` = (rgb_logits + flow_logits) / 2 (`late_fusion`, flow weight 0.5, one stack): the late average.

Parameter trees: `frameModel/...` is exactly an `lsta_rgb` tree and `flowModel/...` exactly an `lsta_flow`
tree, so a trained RGB workdir and a trained motion-stream workdir graft in unchanged (`config.init_from_rgb`,
`config.init_from_flow`); the fusion parameters are `conv_x_flow_{i,f,c}`, `rgb_summary`,
`conv_x_rgb_{i,f,c,o}` and `flow_lstm_cell/conv_{i,f,c,o}_{xx,hh}`.

Choices where the paper is silent (attributes; docs/differences.md §4.4):
- `fusion_kernel` = 3: the bias maps are 3x3 convolutions (stride 1, padding 1), one per gate, as every gate
  of LSTA ("all the gates use a kernel size of 3x3", paper 5.1); a per-gate conv (not the raw feature) lets
  each gate learn its own use of the other stream and lets the widths differ.
- `fusion_init` = 'zeros': those bias convs start at zero, so a freshly grafted two-stream model computes
  exactly the trained RGB model (and the motion stream up to its new embedding); the gradient of a zero conv
  is not zero, so they train. 'xavier' gives the cells' xavier-normal init instead.
- `summary_kernel` = (3, 3, 3) (time, height, width) with `summary_features` = 512 output channels, zero
  ("same") padding, then the mean over time: works for any number of frames T and gives one map per clip.
- `flow_mem_size` = 512 (paper); the ConvLSTM runs one step per flow stack of the input: the paper's input is
  the single stack at the temporal centre, so ONE step from zero states (an (B, S, H, W, 2L) input of S stacks
  gives S steps, the motion head then reads the last).
- `flow_embedding_residual` = True: e = f + h_S. The motion head (attention with the verb-trained selector,
  `fc`) was trained on f; the residual keeps it meaningful when the fusion training starts, and lets the RGB
  summary move the motion attention (the paper's Fig. 2 sees it expand to objects after this training).
- the fused output is the plain mean of the two streams' logits (ego-rnn's late fusion also averages raw
  scores); the training loss is the cross-entropy of that mean. `features` is concat(RGB, flow) features.
- BatchNorm (`batchnorm`): 'frozen' by default in both streams (the RGB stream's reference protocol; the paper
  gives none for the fusion stage); 'train' puts the flow ResNet's BatchNorm in training mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lsta_jax.models.cells import ConvLSTMCell
from lsta_jax.models.layers import config_to_attributes, xavier_normal
from lsta_jax.models.lsta import LSTAClassifier
from lsta_jax.models.motion import FLOW_CHANNELS, FlowAttentionClassifier
from lsta_jax.models.registry import register
from lsta_jax.models.resnet import RESNET34_STAGES, RESNET34_WIDTHS

#: ego-rnn's `flow_wt`: the weight of the flow scores in the late average.
LATE_FUSION_FLOW_WEIGHT = 0.5
#: ego-rnn's `--numSegs` default: flow stacks per video, starts `transforms.flow_segment_starts`.
LATE_FUSION_FLOW_SEGMENTS = 10


def late_fusion(
    rgb_logits: jax.Array, flow_logits: jax.Array, flow_weight: float = LATE_FUSION_FLOW_WEIGHT
) -> jax.Array:
    """Late fusion scores: flow_weight * mean_s flow_logits[:, s] + (1 - flow_weight) * rgb_logits.

    ego-rnn's `eval-run-twoStream.py`: the flow network runs on `numSegs` (10) stacks of the video, its RAW
    logits are averaged over the stacks, and the result is averaged with the RGB model's RAW logits with
    weight `flow_wt` = 0.5; the prediction is the argmax. No softmax on either side (softmax first would
    change which class wins whenever the two streams' logit scales differ).

    rgb_logits: (B, M). flow_logits: (B, S, M), one row per stack, or (B, M) for a single stack.
    Returns (B, M) float32 fused scores (logit-like: apply a softmax only to display them).
    """
    rgb = jnp.asarray(rgb_logits, jnp.float32)
    flow = jnp.asarray(flow_logits, jnp.float32)
    if flow.ndim == 3:
        flow = jnp.mean(flow, axis=1)
    if rgb.ndim != 2 or flow.shape != rgb.shape:
        raise ValueError(
            f"late fusion needs RGB logits (B, M) and flow logits (B, S, M) or (B, M) of the same B and M; "
            f"got {tuple(jnp.shape(rgb_logits))} and {tuple(jnp.shape(flow_logits))}"
        )
    if not 0.0 <= flow_weight <= 1.0:
        raise ValueError(f"flow_weight must lie in [0, 1], got {flow_weight}")
    return flow_weight * flow + (1.0 - flow_weight) * rgb


FUSION_INITS = ("zeros", "xavier")


class CrossModalTwoStream(nn.Module):
    """Cross-modal two-stream LSTA (kind `lsta_two_stream`); see the module docstring.

    Attributes:
      num_classes: M, activity classes of both streams.
      mem_size, c_cam_classes, attention_classes, rgb_dropout_rate, variant: the RGB stream's
        (`LSTAClassifier`'s mem_size, c_cam_classes, attention_classes, dropout_rate, variant).
      verb_classes, in_channels, flow_dropout_rate: the motion stream's (`FlowAttentionClassifier`).
      backbone_stage_sizes, backbone_widths: the ResNet layout of both streams (ResNet-34).
      backbone_stage_strides, backbone_max_pool: the downsampling of both streams (torchvision's by
        default), so that their `layer4` maps have the same size.
      fusion_kernel, fusion_init, summary_kernel, summary_features, flow_mem_size, flow_embedding_residual:
        the open choices of the module docstring.
      batchnorm: 'frozen' or 'train' (the flow ResNet's BatchNorm in training mode while training).
      dtype: compute dtype.
      scan_unroll: the RGB stream's `nn.scan` unrolling (`LSTAClassifier.scan_unroll`).
      gate_conv: both cells' gate convolutions (`LSTAClassifier.gate_conv`).

    `__call__(clip, flow, train=False, return_selections=False)`:
      clip (B, T, H, W, 3) normalised frames; flow (B, H, W, in_channels) one stack (or (B, S, H, W, C)).
    Returns `logits` (B, M) the late average, `rgb_logits`, `flow_logits` (B, M), `features` (B, K + K_f),
    `attention` (B, T, h, w) the RGB maps u_t, `flow_attention` (B, 1, h, w) the motion map; with
    `return_selections` also the RGB stream's `attention_class`, `pooling_class` (B, T) and
    `flow_attention_class` (B, 1).
    """

    num_classes: int = 61
    mem_size: int = 512
    c_cam_classes: int = 100
    attention_classes: int = 1000
    rgb_dropout_rate: float = 0.7
    variant: str = "lsta"
    verb_classes: int = 61
    in_channels: int = FLOW_CHANNELS
    flow_dropout_rate: float = 0.5
    backbone_stage_sizes: Sequence[int] = RESNET34_STAGES
    backbone_widths: Sequence[int] = RESNET34_WIDTHS
    backbone_stage_strides: Sequence[int] | None = None
    backbone_max_pool: bool = True
    fusion_kernel: int = 3
    fusion_init: str = "zeros"
    summary_kernel: Sequence[int] = (3, 3, 3)
    summary_features: int = 512
    flow_mem_size: int = 512
    flow_embedding_residual: bool = True
    batchnorm: str = "frozen"
    dtype: Any = jnp.float32
    scan_unroll: int | str = "auto"
    gate_conv: str = "auto"

    def _conv(self, features: int, name: str) -> nn.Conv:
        """A per-gate bias conv (fusion_kernel x fusion_kernel, stride 1, 'same' zero padding, with bias)."""
        if self.fusion_init not in FUSION_INITS:
            raise ValueError(f"fusion_init must be one of {FUSION_INITS}, got {self.fusion_init!r}")
        pad = self.fusion_kernel // 2
        return nn.Conv(
            features,
            (self.fusion_kernel, self.fusion_kernel),
            padding=((pad, pad), (pad, pad)),
            kernel_init=nn.initializers.zeros if self.fusion_init == "zeros" else xavier_normal,
            bias_init=nn.initializers.zeros,
            dtype=self.dtype,
            name=name,
        )

    @nn.compact
    def __call__(
        self, clip: jax.Array, flow: jax.Array, train: bool = False, return_selections: bool = False
    ) -> dict[str, jax.Array]:
        if self.flow_embedding_residual and self.flow_mem_size != self.backbone_widths[-1]:
            raise ValueError(
                f"flow_embedding_residual adds the ConvLSTM state to the flow feature: flow_mem_size "
                f"{self.flow_mem_size} must equal the backbone's last width {self.backbone_widths[-1]}"
            )
        flow_model = FlowAttentionClassifier(
            num_classes=self.num_classes,
            verb_classes=self.verb_classes,
            in_channels=self.in_channels,
            backbone_stage_sizes=self.backbone_stage_sizes,
            backbone_widths=self.backbone_widths,
            backbone_stage_strides=self.backbone_stage_strides,
            backbone_max_pool=self.backbone_max_pool,
            dropout_rate=self.flow_dropout_rate,
            batchnorm=self.batchnorm,
            dtype=self.dtype,
            name="flowModel",
        )
        frame_model = LSTAClassifier(
            num_classes=self.num_classes,
            mem_size=self.mem_size,
            c_cam_classes=self.c_cam_classes,
            attention_classes=self.attention_classes,
            backbone_stage_sizes=self.backbone_stage_sizes,
            backbone_widths=self.backbone_widths,
            backbone_stage_strides=self.backbone_stage_strides,
            backbone_max_pool=self.backbone_max_pool,
            dropout_rate=self.rgb_dropout_rate,
            dtype=self.dtype,
            variant=self.variant,
            scan_unroll=self.scan_unroll,
            gate_conv=self.gate_conv,
            name="frameModel",
        )
        b, t = clip.shape[:2]
        stacks = flow[:, None] if flow.ndim == 4 else flow  # (B, S, H, W, C)
        s = stacks.shape[1]
        f = flow_model.trunk(stacks.reshape(b * s, *stacks.shape[2:]), train)
        f = f.reshape(b, s, *f.shape[1:])  # (B, S, h, w, K_f)
        f_last = f[:, -1]

        # 2-3: flow conv5_3 -> additive biases of the LSTA memory gates (x_flow_i/f/c), at every frame.
        biases = {
            f"x_flow_{g}": jnp.broadcast_to(
                self._conv(self.mem_size, f"conv_x_flow_{g}")(f_last)[:, None].astype(jnp.float32),
                (b, t, *f_last.shape[1:3], self.mem_size),
            )
            for g in "ifc"
        }
        rgb = frame_model(
            clip,
            train=train,
            return_selections=return_selections,
            gate_biases=biases,
            return_frame_maps=True,
        )

        # 4-5: RGB conv5_3 sequence -> 3D conv -> mean over time -> per-gate biases of the flow ConvLSTM.
        kt, kh, kw = (int(k) for k in self.summary_kernel)
        summary = nn.Conv(
            self.summary_features,
            (kt, kh, kw),
            padding=((kt // 2, kt // 2), (kh // 2, kh // 2), (kw // 2, kw // 2)),
            kernel_init=xavier_normal,
            bias_init=nn.initializers.zeros,
            dtype=self.dtype,
            name="rgb_summary",
        )(rgb.pop("frame_maps"))
        summary = jnp.mean(summary.astype(jnp.float32), axis=1)  # (B, h, w, C_s)
        rgb_biases = {
            f"x_rgb_{g}": self._conv(self.flow_mem_size, f"conv_x_rgb_{g}")(summary).astype(jnp.float32)
            for g in "ifco"
        }

        # 6: the ConvLSTM embedding of the motion stream, one step per flow stack, from zero states.
        cell = ConvLSTMCell(
            mem_size=self.flow_mem_size, dtype=self.dtype, gate_conv=self.gate_conv, name="flow_lstm_cell"
        )
        carry = ConvLSTMCell.initial_carry(b, *f.shape[2:4], self.flow_mem_size)
        for step in range(s):
            carry, _ = cell(carry, f[:, step], rgb_biases)
        hidden = carry[0]
        embedding = f_last + hidden if self.flow_embedding_residual else hidden

        # 7-8: the motion head on the embedding, then the late average.
        motion = flow_model.head(embedding, train)
        result = {
            "logits": late_fusion(rgb["logits"], motion["logits"]),
            "rgb_logits": rgb["logits"],
            "flow_logits": motion["logits"],
            "features": jnp.concatenate([rgb["features"], motion["features"]], axis=-1),
            "attention": rgb["attention"],
            "flow_attention": motion["attention"],
        }
        if return_selections:
            result["attention_class"] = rgb["attention_class"]
            result["pooling_class"] = rgb["pooling_class"]
            result["flow_attention_class"] = motion["attention_class"]
        return result


def build_attributes(config: dict[str, Any]) -> dict[str, Any]:
    attrs = config_to_attributes(config, CrossModalTwoStream)
    if "summary_kernel" in attrs:
        attrs["summary_kernel"] = tuple(int(k) for k in attrs["summary_kernel"])
    return attrs


@register(
    "lsta_two_stream",
    "two-stream LSTA: cross-modal fusion of the LSTA RGB stream and the attention motion stream",
    inputs=("clip", "flow"),
    attention=("clip", "flow"),
    selector_from_init=True,
)
def build_lsta_two_stream(**config: Any) -> CrossModalTwoStream:
    """Registry builder of kind `lsta_two_stream`; config keys are CrossModalTwoStream attributes."""
    return CrossModalTwoStream(**build_attributes(config))
