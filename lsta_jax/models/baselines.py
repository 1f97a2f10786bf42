"""Baselines the paper compares against that are not LSTA switches: eleGAtt (kind `elegatt_rgb`).

eleGAtt (Zhang, Lan, Xing, Zeng, Xue, Zheng, "Adding Attentiveness to the Neurons in Recurrent Neural
Networks", ECCV 2018) puts an element-wise attention gate on the INPUT of any RNN: from the current input and
the previous hidden state it computes one weight per input dimension and the RNN sees the re-weighted input.
The LSTA paper reports it with ResNet-34 features (Table 3: 59.48 GTEA61*, 66.77 GTEA61, 60.83 GTEA71,
57.01 EGTEA); no code of that run exists (docs/differences.md §8 only lists the numbers), so the setting here
is:

    x_t  = ε(f_BN_t)                                   pooled (spatial mean) BN'd layer4 feature of frame t,
                                                        (B, K): the backbone's own pooled feature, K = 512
    a_t  = σ(W_xa x_t + W_ha h_{t-1} + b_a)            eleGAtt's attention gate, a_t ∈ (0, 1)^K
    x̃_t  = a_t ⊙ x_t                                   the attended input
    i, f, o = σ(W_{xi,xf,xo} x̃_t + W_{hi,hf,ho} h_{t-1} + b_{i,f,o}),  g = tanh(W_xg x̃_t + W_hg h_{t-1} + b_g)
    c_t  = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)   a standard LSTM of `hidden_size` = 512 units on x̃_t
    logits = fc(Dropout(0.7)(h_T))                     as the LSTA classifier head (`layers.classifier_head`)

The backbone is `lsta.frame_features_and_cam` without attention (one call over the B*T folded frames,
BatchNorm in inference mode, as for the RGB models); its ImageNet `fc` is kept (unused) so a converted
`resnet34` grafts in unchanged through `init_from`. States start at zero; the cell is scanned with `nn.scan`.

Parameter tree: `resNet/...`, `elegatt_cell/{attention_x (kernel, bias) = W_xa, b_a; attention_h (kernel)
= W_ha; lstm/{ii,if,ig,io} (input kernels), lstm/{hi,hf,hg,ho} (hidden kernels with the biases)}`, `fc`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lsta_jax.models.layers import classifier_head, config_to_attributes
from lsta_jax.models.lsta import frame_features_and_cam, scan_unroll_steps
from lsta_jax.models.registry import register
from lsta_jax.models.resnet import RESNET34_STAGES, RESNET34_WIDTHS

LSTMCarry = tuple[jax.Array, jax.Array]  # (c, h), each (B, hidden)


class EleGAttLSTMCell(nn.Module):
    """One step of an LSTM with eleGAtt's element-wise attention gate on its input (module docstring).

    `__call__((c, h), x)` with x (B, D) returns ((c_t, h_t), {'gate': a_t (B, D), 'hidden': h_t}).
    """

    hidden_size: int = 512
    dtype: Any = jnp.float32

    @staticmethod
    def initial_carry(batch: int, hidden_size: int) -> LSTMCarry:
        zeros = jnp.zeros((batch, hidden_size), jnp.float32)
        return zeros, zeros

    @nn.compact
    def __call__(self, carry: LSTMCarry, x: jax.Array) -> tuple[LSTMCarry, dict[str, jax.Array]]:
        c, h = carry
        x = x.astype(jnp.float32)
        features = x.shape[-1]
        # a_t = σ(W_xa x_t + W_ha h_{t-1} + b_a)   (eleGAtt's attention gate)
        gate = jax.nn.sigmoid(
            nn.Dense(features, dtype=self.dtype, name="attention_x")(x)
            + nn.Dense(features, use_bias=False, dtype=self.dtype, name="attention_h")(h)
        ).astype(jnp.float32)
        # x̃_t = a_t ⊙ x_t into a standard LSTM (flax's LSTMCell: the i, f, g, o equations of the docstring)
        (c_t, h_t), _ = nn.LSTMCell(self.hidden_size, dtype=self.dtype, name="lstm")((c, h), gate * x)
        c_t, h_t = c_t.astype(jnp.float32), h_t.astype(jnp.float32)
        return (c_t, h_t), {"gate": gate, "hidden": h_t}


class EleGAttClassifier(nn.Module):
    """eleGAtt-LSTM RGB classifier (kind `elegatt_rgb`); attributes as `LSTAClassifier` where shared.

    `__call__(clip, train=False, return_selections=False, return_frame_features=False)` with clip
    (B, T, H, W, 3) returns `logits` (B, M), `features` (B, hidden) = h_T, `gate` (B, T, K) the attention
    gates a_t, and `attention` (B, T, h, w): uniform maps (eleGAtt attends to feature channels, not to
    positions; the uniform map keeps the clip-classifier interface of `predict`/`extract`).
    `frame_features` (B, T, K) with `return_frame_features`; `return_selections` adds nothing (no argmax).
    `train=True` only makes the dropout stochastic (rngs={'dropout': key}); BatchNorm stays in inference.
    `scan_unroll`, `backbone_stage_strides` and `backbone_max_pool` (the backbone's layout, e.g. the small
    output-stride-8 ResNet of the embedded data) as `LSTAClassifier`.
    """

    num_classes: int = 61
    hidden_size: int = 512
    attention_classes: int = 1000
    backbone_stage_sizes: Sequence[int] = RESNET34_STAGES
    backbone_widths: Sequence[int] = RESNET34_WIDTHS
    backbone_stage_strides: Sequence[int] | None = None
    backbone_max_pool: bool = True
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
        del return_selections
        b, t = clip.shape[:2]
        out = frame_features_and_cam(
            clip,
            self.backbone_stage_sizes,
            self.backbone_widths,
            self.attention_classes,
            self.dtype,
            self.remat,
            attention=False,
            stage_strides=self.backbone_stage_strides,
            max_pool=self.backbone_max_pool,
        )
        _, h, w, k = out["layer4"].shape
        pooled = out["pooled"].astype(jnp.float32).reshape(b, t, k)
        scan_cell = nn.scan(
            EleGAttLSTMCell,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=1,
            out_axes=1,
            unroll=scan_unroll_steps(self.scan_unroll, t),
        )
        cell = scan_cell(hidden_size=self.hidden_size, dtype=self.dtype, name="elegatt_cell")
        (_, h_last), steps = cell(EleGAttLSTMCell.initial_carry(b, self.hidden_size), pooled)
        result = {
            "logits": classifier_head(h_last, self.num_classes, self.dropout_rate, train),
            "features": h_last,
            "gate": steps["gate"],
            "attention": jnp.full((b, t, h, w), 1.0 / (h * w), jnp.float32),
        }
        if return_frame_features:
            result["frame_features"] = pooled
        return result


@register(
    "elegatt_rgb", "eleGAtt baseline: ResNet-34 pooled features + attention-gated LSTM", clip_classifier=True
)
def build_elegatt_rgb(**config: Any) -> EleGAttClassifier:
    """Registry builder of kind `elegatt_rgb`; config keys are EleGAttClassifier attributes."""
    return EleGAttClassifier(**config_to_attributes(config, EleGAttClassifier))
