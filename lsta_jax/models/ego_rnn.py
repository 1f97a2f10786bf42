"""The ego-rnn RGB baseline (BMVC 2018; the paper's "ego-rnn" row, 63.79 on GTEA61*), kind `convlstm_rgb`.

What ego-rnn's `objectAttentionModelConvLSTM.attentionModel` computes (`docs/differences.md` §4.5):
per frame the same ResNet-34 outputs as LSTA (`lsta.frame_features_and_cam`: one backbone call over the
B*T folded frames, BatchNorm in inference mode, CAM ν_a of the argmax ImageNet class on the BN'd `layer4`,
without bias); then a NON-recurrent attention u_t = softmax over positions of ν_a, the attended pre-BN
feature u_t ⊙ f_NBN_t into a ConvLSTM (`cells.ConvLSTMCell`, zero states, `nn.scan`), features = spatial
mean of the memory c_T, Dropout(0.7), `fc` = Dense(M).

Parameter tree: `resNet/...` (with `fc`), `lstm_cell/conv_{i,f,c,o}_{xx,hh}`, `fc`. ego-rnn's state dict
also carries `weight_softmax`, the same tensor as `resNet.fc.weight` (`lsta_jax.convert.ego_rnn`).

`EgoRNNTwoStream` (kind `egornn_two_stream`, the paper's "ego-rnn" two-stream row, 77.59 on GTEA61*) is
ego-rnn's joint `twoStreamAttentionModel` (docs/differences.md §4.4): this RGB model as `frameModel`, the flow
network (`lsta_jax.models.motion.FlowResNet`) as `flowModel`, and `fc2` on Dropout(0.5) of concat(flow
feature, RGB feature).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lsta_jax.models import selector
from lsta_jax.models.cells import ConvLSTMCell
from lsta_jax.models.layers import classifier_head, config_to_attributes
from lsta_jax.models.lsta import frame_features_and_cam, scan_unroll_steps
from lsta_jax.models.motion import FLOW_CHANNELS, FlowResNet
from lsta_jax.models.registry import register
from lsta_jax.models.resnet import RESNET34_STAGES, RESNET34_WIDTHS, check_batchnorm


class EgoRNNClassifier(nn.Module):
    """ego-rnn RGB classifier; attributes as `LSTAClassifier` (no C_o, no variants; `scan_unroll` and
    `gate_conv` as there).

    `__call__(clip, train=False, return_selections=False, return_frame_features=False)` with clip
    (B, T, H, W, 3) returns `logits` (B, M), `features` (B, K) = mean of c_T, `attention` (B, T, h, w) the
    softmax of the CAM; `attention_class` (B, T) with `return_selections`; `frame_features` (B, T, K) with
    `return_frame_features`. `train=True` makes the dropout stochastic (rngs={'dropout': key}) and, with
    `batchnorm='train'`, BatchNorm use batch statistics (apply with `mutable=['batch_stats']`).
    """

    num_classes: int = 61
    mem_size: int = 512
    attention_classes: int = 1000
    backbone_stage_sizes: Sequence[int] = RESNET34_STAGES
    backbone_widths: Sequence[int] = RESNET34_WIDTHS
    backbone_stage_strides: Sequence[int] | None = None
    backbone_max_pool: bool = True
    batchnorm: str = "frozen"
    dropout_rate: float = 0.7
    dtype: Any = jnp.float32
    remat: bool = False
    scan_unroll: int | str = "auto"
    gate_conv: str = "auto"

    @nn.compact
    def __call__(
        self,
        clip: jax.Array,
        train: bool = False,
        return_selections: bool = False,
        return_frame_features: bool = False,
    ) -> dict[str, jax.Array]:
        if self.mem_size != self.backbone_widths[-1]:
            raise ValueError(
                f"mem_size {self.mem_size} must equal the backbone's last width {self.backbone_widths[-1]}"
            )
        check_batchnorm(self.batchnorm)
        b, t = clip.shape[:2]
        out = frame_features_and_cam(
            clip,
            self.backbone_stage_sizes,
            self.backbone_widths,
            self.attention_classes,
            self.dtype,
            self.remat,
            stage_strides=self.backbone_stage_strides,
            max_pool=self.backbone_max_pool,
            batchnorm_train=train and self.batchnorm == "train",
        )
        n, h, w, k = out["layer4"].shape
        attention = selector.spatial_softmax(out["cam"])  # (B*T, h, w), no recurrence
        attended = out["layer4_prebn"] * attention[..., None]

        scan_cell = nn.scan(
            ConvLSTMCell,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=1,
            out_axes=1,
            unroll=scan_unroll_steps(self.scan_unroll, t),
        )
        cell = scan_cell(mem_size=self.mem_size, dtype=self.dtype, gate_conv=self.gate_conv, name="lstm_cell")
        (_, c_last), _ = cell(
            ConvLSTMCell.initial_carry(b, h, w, self.mem_size), attended.reshape(b, t, h, w, k)
        )

        features = selector.spatial_mean(c_last)
        result = {
            "logits": classifier_head(features, self.num_classes, self.dropout_rate, train),
            "features": features,
            "attention": attention.reshape(b, t, h, w),
        }
        if return_selections:
            result["attention_class"] = out["attention_class"].reshape(b, t)
        if return_frame_features:
            result["frame_features"] = out["pooled"].reshape(b, t, k)
        return result


@register(
    "convlstm_rgb",
    "ego-rnn RGB baseline: ResNet-34 + CAM softmax attention + ConvLSTM",
    clip_classifier=True,
)
def build_convlstm_rgb(**config: Any) -> EgoRNNClassifier:
    """Registry builder of kind `convlstm_rgb`; config keys are EgoRNNClassifier attributes."""
    return EgoRNNClassifier(**config_to_attributes(config, EgoRNNClassifier))


class EgoRNNTwoStream(nn.Module):
    """ego-rnn's joint two-stream model (kind `egornn_two_stream`; docs/differences.md §4.4,
    `twoStreamModel.py`).

    logits = fc2(Dropout(0.5)(concat(x1_flow, feats_rgb))): x1_flow the flow network's pooled `layer4`
    (before its own dropout), feats_rgb the ConvLSTM feature of the RGB model (mean of c_T); the two streams'
    own heads (`flowModel/fc_action`, `frameModel/fc`) are kept (they are in the state dict) but unused.

    Parameter tree = ego-rnn's state dict: `flowModel/...` (a whole `egornn_flow` tree), `frameModel/...`
    (a whole `convlstm_rgb` tree) and `fc2`, so trained single-stream workdirs graft in unchanged.

    Attributes: `num_classes`, `mem_size`, `attention_classes`, `in_channels`, `backbone_stage_sizes`,
    `backbone_widths` as the two streams (both use the same ResNet layout); `dropout_rate` before `fc2` (0.5);
    `batchnorm`: 'train' = ego-rnn's protocol (`main-run-twoStream.py` sets only `flowModel.layer4` to
    training mode: its BatchNorm uses batch statistics while training and its running statistics are
    updated; everything else keeps its running statistics) or 'frozen'; `dtype`, `remat` (RGB backbone),
    `scan_unroll`, `gate_conv` (the RGB ConvLSTM's scan and gate convolutions, as `EgoRNNClassifier`).

    `__call__(clip, flow, train=False)` with clip (B, T, H, W, 3) and flow (B, H', W', in_channels) returns
    `logits` (B, M), `features` (B, K_flow + K_rgb) the concatenation, `attention` (B, T, h, w) the RGB
    stream's maps, and each stream's own `flow_logits`, `rgb_logits` (B, M).
    """

    num_classes: int = 61
    mem_size: int = 512
    attention_classes: int = 1000
    in_channels: int = FLOW_CHANNELS
    backbone_stage_sizes: Sequence[int] = RESNET34_STAGES
    backbone_widths: Sequence[int] = RESNET34_WIDTHS
    dropout_rate: float = 0.5
    batchnorm: str = "train"
    dtype: Any = jnp.float32
    remat: bool = False
    scan_unroll: int | str = "auto"
    gate_conv: str = "auto"

    @nn.compact
    def __call__(self, clip: jax.Array, flow: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        check_batchnorm(self.batchnorm)
        if clip.shape[0] != flow.shape[0]:
            raise ValueError(f"clip batch {clip.shape[0]} and flow batch {flow.shape[0]} differ")
        flow_out = FlowResNet(
            num_classes=self.num_classes,
            in_channels=self.in_channels,
            backbone_stage_sizes=self.backbone_stage_sizes,
            backbone_widths=self.backbone_widths,
            batchnorm=self.batchnorm,
            batch_stats_from=len(self.backbone_stage_sizes),  # only the last stage (layer4), as ego-rnn
            dtype=self.dtype,
            name="flowModel",
        )(flow, train)
        rgb_out = EgoRNNClassifier(
            num_classes=self.num_classes,
            mem_size=self.mem_size,
            attention_classes=self.attention_classes,
            backbone_stage_sizes=self.backbone_stage_sizes,
            backbone_widths=self.backbone_widths,
            dtype=self.dtype,
            remat=self.remat,
            scan_unroll=self.scan_unroll,
            gate_conv=self.gate_conv,
            name="frameModel",
        )(clip, train)
        features = jnp.concatenate([flow_out["features"], rgb_out["features"]], axis=-1)  # flow first
        return {
            "logits": classifier_head(features, self.num_classes, self.dropout_rate, train, "fc2"),
            "features": features,
            "attention": rgb_out["attention"],
            "flow_logits": flow_out["logits"],
            "rgb_logits": rgb_out["logits"],
        }


@register(
    "egornn_two_stream",
    "ego-rnn joint two-stream: ConvLSTM RGB + flow ResNet-34 features concatenated, fc2",
    inputs=("clip", "flow"),
    attention=("clip",),
)
def build_egornn_two_stream(**config: Any) -> EgoRNNTwoStream:
    """Registry builder of kind `egornn_two_stream`; config keys are EgoRNNTwoStream attributes."""
    return EgoRNNTwoStream(**config_to_attributes(config, EgoRNNTwoStream))
