"""The ego-rnn RGB baseline (BMVC 2018; the paper's "ego-rnn" row, 63.79 on GTEA61*), kind `convlstm_rgb`.

What ego-rnn's `objectAttentionModelConvLSTM.attentionModel` computes (`shared/docs/reference-lsta.md` 4.5):
per frame the same ResNet-34 outputs as LSTA (`lsta.frame_features_and_cam`: one backbone call over the
B*T folded frames, BatchNorm in inference mode, CAM ν_a of the argmax ImageNet class on the BN'd `layer4`,
without bias); then a NON-recurrent attention u_t = softmax over positions of ν_a, the attended pre-BN
feature u_t ⊙ f_NBN_t into a ConvLSTM (`cells.ConvLSTMCell`, zero states, `nn.scan`), features = spatial
mean of the memory c_T, Dropout(0.7), `fc` = Dense(M).

Parameter tree: `resNet/...` (with `fc`), `lstm_cell/conv_{i,f,c,o}_{xx,hh}`, `fc`. ego-rnn's state dict
also carries `weight_softmax`, the same tensor as `resNet.fc.weight` (`lsta_jax.convert.ego_rnn`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lsta_jax.models import selector
from lsta_jax.models.cells import ConvLSTMCell
from lsta_jax.models.lsta import (
    classifier_head,
    config_to_attributes,
    frame_features_and_cam,
    scan_unroll_steps,
)
from lsta_jax.models.registry import register
from lsta_jax.models.resnet import RESNET34_STAGES, RESNET34_WIDTHS, check_batchnorm


class EgoRNNClassifier(nn.Module):
    """ego-rnn RGB classifier; attributes as `LSTAClassifier` (no C_o, no variants; `scan_unroll` as there).

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
        cell = scan_cell(mem_size=self.mem_size, dtype=self.dtype, name="lstm_cell")
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


def _example_clip(config: dict[str, Any]) -> np.ndarray:
    return np.zeros((1, 2, 64, 64, 3), np.float32)


@register("convlstm_rgb", _example_clip, "ego-rnn RGB baseline: ResNet-34 + CAM softmax attention + ConvLSTM")
def build_convlstm_rgb(**config: Any) -> EgoRNNClassifier:
    """Registry builder of kind `convlstm_rgb`; config keys are EgoRNNClassifier attributes."""
    return EgoRNNClassifier(**config_to_attributes(config, EgoRNNClassifier))
