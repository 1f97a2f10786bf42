"""The LSTA RGB (appearance) classifier: ResNet-34 on every frame, attention pooling, the LSTA cell over time.

What it computes is the authors' `attentionModel` (`docs/differences.md` §2.1), batched:
1. all B*T frames go through ONE backbone call (frames folded into the batch; BatchNorm always in inference
   mode, docs/differences.md §5), giving per frame the BN'd `layer4` f_BN, the pre-BN `layer4_prebn` f_NBN and
   the ImageNet logits z_t;
2. attention pooling (eq. 3): k_t = argmax z_t, ν_a = Σ_k W_fc[k_t, k] f_BN[k] (no bias), `selector.py`;
3. the `LSTACell` (`cells.py`) scanned over T with `nn.scan` (params broadcast, no param RNG split), zero
   initial states, inputs (f_NBN_t, ν_a_t);
4. features = spatial mean of the raw memory c_T (not tanh, not a hidden state), Dropout(0.7) (only with
   `train=True`), `fc` = Dense(M).
Paper vs code differences reproduced here (docs/differences.md §2.4): the selector w_a is the backbone's
ImageNet fc; the selection uses the BN'd features while the cell gets the pre-BN ones; the bias control is
`coupling_fc` acting on the output-pooling scores only; the classifier has dropout 0.7. Nothing is tied to
224x224.

Ablation variants (paper Table 1, GTEA61 fixed split), config key `variant`:
- `convlstm`, row "Baseline" (51.72): removes the attention pooling (eqs. 3-6: no CAM, no a/s recurrence, no
  conv_*_s / conv_*_cam; the cell sees x_t instead of s ⊙ x_t; `attention` is uniform) AND the output pooling
  (eq. 9: no c_classifier / coupling_fc; conv_o_c sees x_t: a standard ConvLSTM output gate).
- `output_pooling`, "Baseline + output pooling" (62.07): removes the attention pooling as above and the bias
  control (coupling_fc; the output-pooling scores are ε(c_t) W_c).
- `attention_pooling`, "Baseline + attention pooling" (66.38): removes the output pooling as above (conv_o_c
  sees s ⊙ x_t), hence also the bias control.
- `no_bias_control`, "Baseline + pooling" (68.1): removes only the bias control (coupling_fc).
- `lsta` (default), "LSTA" (74.14): removes nothing.
All variants keep the backbone (with its ImageNet `fc`, unused without attention pooling), the cell's memory
convs conv_{i,f,c,o}_{x,c} and the classifier, so their parameter trees differ only by the removed leaves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lsta_jax.models import heads, selector
from lsta_jax.models.cells import LSTACell
from lsta_jax.models.layers import classifier_head, config_to_attributes
from lsta_jax.models.registry import register
from lsta_jax.models.resnet import RESNET34_STAGES, RESNET34_WIDTHS, ResNet, check_batchnorm

# variant -> (attention_pooling, output_pooling, bias_control)
VARIANTS: dict[str, tuple[bool, bool, bool]] = {
    "convlstm": (False, False, False),
    "output_pooling": (False, True, False),
    "attention_pooling": (True, False, False),
    "no_bias_control": (True, True, False),
    "lsta": (True, True, True),
}


def frame_features_and_cam(
    clip: jax.Array,
    stage_sizes: Sequence[int],
    widths: Sequence[int],
    attention_classes: int,
    dtype: Any,
    remat: bool,
    attention: bool = True,
    stage_strides: Sequence[int] | None = None,
    max_pool: bool = True,
    batchnorm_train: bool = False,
    backbone_chunk: int = 0,
) -> dict[str, jax.Array]:
    """Steps 1-2 of docs/differences.md §2.1 for all B*T frames; call inside a compact method.

    Creates the backbone submodule `resNet` (ImageNet `fc` of `attention_classes` outputs, BatchNorm in
    inference mode unless `batchnorm_train`: batch statistics, for a from-scratch backbone) in the calling
    module. `backbone_chunk` > 0 maps the backbone over chunks of at most that many frames of every clip
    (`_backbone_over_chunks`; ignored with `batchnorm_train`); 0 folds all B*T frames into one call.
    Returns the backbone's outputs for the folded (B*T, ...) frames (`layer4`, `layer4_prebn`, `pooled`,
    `logits`) plus `cam` (B*T, h, w) ν_a = ς(layer4, fc) and `attention_class` (B*T,) k_t; without
    `attention` the map is zeros and the class -1.
    """
    if clip.ndim != 5 or clip.shape[-1] != 3:
        raise ValueError(f"expected a (B, T, H, W, 3) clip, got shape {tuple(clip.shape)}")
    b, t, height, width, channels = clip.shape
    backbone_cls = nn.remat(ResNet, static_argnums=(2,)) if remat else ResNet  # (self, x, train)
    backbone = backbone_cls(
        stage_sizes=tuple(stage_sizes),
        widths=tuple(widths),
        num_classes=attention_classes,
        include_fc=True,
        stage_strides=tuple(stage_strides) if stage_strides else None,
        max_pool=max_pool,
        dtype=dtype,
        name="resNet",
    )
    if 0 < backbone_chunk < t and not batchnorm_train:
        out = _backbone_over_chunks(backbone, clip, backbone_chunk)
    else:
        out = dict(backbone(clip.reshape(b * t, height, width, channels), batchnorm_train))
    n, h, w, _ = out["layer4"].shape
    if attention:
        fc_kernel = backbone.variables["params"]["fc"]["kernel"]
        out["cam"], out["attention_class"] = selector.attention_pooling(
            out["layer4"], fc_kernel.astype(jnp.float32), scores=out["logits"]
        )
    else:
        out["cam"] = jnp.zeros((n, h, w), jnp.float32)
        out["attention_class"] = jnp.full((n,), -1, jnp.int32)
    return out


def _backbone_over_chunks(backbone: nn.Module, clip: jax.Array, max_frames: int) -> dict[str, jax.Array]:
    """The backbone (inference BatchNorm) over the frames of `clip` (B, T, H, W, C) in a rolled loop
    (`nn.scan`, parameters broadcast: the same `resNet/...` tree), at most `max_frames` frames of every clip
    per call, so the activation memory does not grow with T. Returns the outputs with the frames folded as
    one call gives them, (B*T, ...). Chunks are balanced (T=16, at most 5: 4 chunks of 4); a short last
    chunk is padded by repeating the last frame and the padding dropped."""
    b, t = clip.shape[:2]
    chunks = -(-t // max_frames)
    chunk = -(-t // chunks)
    padded = jnp.concatenate([clip, jnp.repeat(clip[:, -1:], chunks * chunk - t, axis=1)], axis=1)
    # (chunks, B*chunk, H, W, C): call i gets frames [i*chunk, (i+1)*chunk) of every clip
    frames = padded.reshape(b, chunks, chunk, *clip.shape[2:]).swapaxes(0, 1)
    frames = frames.reshape(chunks, b * chunk, *clip.shape[2:])

    def body(module: nn.Module, carry: None, x: jax.Array) -> tuple[None, dict[str, jax.Array]]:
        return carry, module(x, False)

    scanned = nn.scan(
        body,
        variable_broadcast=["params", "batch_stats"],
        split_rngs={"params": False},
        in_axes=0,
        out_axes=0,
    )
    _, out = scanned(backbone, None, frames)
    # (chunks, B*chunk, ...) -> (B, chunks*chunk, ...) -> drop the padding -> (B*T, ...)
    return {
        key: value.reshape(chunks, b, chunk, *value.shape[2:])
        .swapaxes(0, 1)
        .reshape(b, chunks * chunk, *value.shape[2:])[:, :t]
        .reshape(b * t, *value.shape[2:])
        for key, value in out.items()
    }


def scan_unroll_steps(scan_unroll: int | str, num_steps: int) -> int:
    """How many time steps `nn.scan` unrolls per loop iteration, for the `scan_unroll` config field.

    `"auto"` (the default): 1, a rolled while loop, on every backend; `"full"`: all `num_steps` (the loop
    disappears, every step is straight-line code); an int n >= 1: n steps per iteration. Measured on a 2-core
    CPU (`lsta_jax.benchmarks.versus_torch`, docs/performance.md): with the gate convolutions computed as
    matmuls (`cells.im2col_conv`) the rolled loop is the fastest choice (stage-1 step at 25 frames 5.7 s
    against 6.9 s for XLA convolutions fully unrolled) and compiles in seconds instead of ~30 s, whatever
    T; XLA's own convolutions inside a rolled loop ran their gradients ~10x slower, which is why an earlier
    default unrolled fully on CPU. Numerics are the same either way.
    """
    if scan_unroll == "auto":
        return 1
    if scan_unroll == "full":
        return num_steps
    if isinstance(scan_unroll, bool) or not isinstance(scan_unroll, int) or scan_unroll < 1:
        raise ValueError(f"scan_unroll must be 'auto', 'full' or an int >= 1, got {scan_unroll!r}")
    return min(scan_unroll, num_steps)


class LSTAClassifier(nn.Module):
    """LSTA RGB classifier (registered as kind `lsta_rgb`).

    Attributes:
      num_classes: M, activity classes (61 GTEA61, 71 GTEA71, 106 EGTEA).
      mem_size: K, LSTA memory channels; must equal the backbone's last width (512 for ResNet-34).
      c_cam_classes: C_o, output-pooling classes (100 GTEA, 150 EGTEA, 300 EPIC).
      attention_classes: C_a, classes of the backbone fc used by the attention selector (1000, ImageNet).
      backbone_stage_sizes, backbone_widths: the ResNet layout (ResNet-34 by default).
      backbone_stage_strides, backbone_max_pool: the ResNet's downsampling (`ResNet.stage_strides`,
        `ResNet.max_pool`; torchvision's by default).
      batchnorm: 'frozen' (default: BatchNorm always on its running statistics, as the reference in both
        stages) or 'train' (batch statistics when `train=True`, for a backbone trained from scratch; apply
        with `mutable=['batch_stats']`).
      dropout_rate: dropout before `fc` (0.7 in the authors' code), active only with `train=True`.
      dtype: compute dtype (float32 or bfloat16); parameters and outputs are float32.
      remat: rematerialise the backbone (`nn.remat`) to save activation memory in training.
      scan_unroll: time steps unrolled per iteration of the `nn.scan` over T: "auto" (rolled, 1 step),
        "full" or an int >= 1; speed only, the numbers and parameters do not change
        (`scan_unroll_steps`).
      backbone_chunk: at inference (`train=False`) the backbone runs over at most this many frames of every
        clip per call, in a rolled loop, so memory stays flat as T grows (compiled, batch 1, full size: 161 /
        194 / 214 MiB at 1 / 25 / 50 frames, against 266 and 376 MiB at 25 and 50 frames in one call) at the
        same speed (2.15 s against 2.16 s at 25 frames); 0 = all B*T frames in one call. Training always
        makes one call: XLA's CPU backend runs convolution gradients inside a loop ~8x slower, so to
        differentiate the model with `train=False` (e.g. saliency) on CPU, set 0.
      gate_conv: how the cell's gate convolutions are computed: "auto" (the backend's default), "im2col" or
        "xla" (`cells.resolve_gate_conv`); parameters and, up to summation order, numbers are the same.
      variant: ablation variant, see the module docstring.
      verb_classes, noun_classes: > 0 adds the multi-task verb and noun heads (`heads.py`; EPIC-55: 125 and
        352, paper 6.5); 0 (default) = no heads, the parameter tree is unchanged.
      head_bias_control: how the activity logits control the verb/noun biases: 'logits' (default),
        'probabilities' or 'none' (`heads.py`).
      selector_map: how the cell receives the selector's map ν_a (`selector.rescale_selector_map`):
        'logits' (default, the authors' code) or 'standardized' (per frame zero mean, unit std over the
        positions, in the attention gates and in u_t = softmax(s_t + ν_a); an opt-in departure,
        docs/differences.md §10). `attention_class` and the parameters do not change.

    Parameter tree: `resNet/...` (incl. `resNet/fc`), `lsta_cell/{conv_i_s, ..., conv_o_c, c_classifier,
    coupling_fc}`, `fc` (+ `fc_verb`, `fc_noun`, `action_to_verb`, `action_to_noun` with the heads);
    BatchNorm statistics in `batch_stats/resNet/...`.

    `__call__(clip, train=False, return_selections=False, return_frame_features=False, gate_biases=None,
    return_frame_maps=False)`:
      clip: (B, T, H, W, 3) float32, normalised frames; any T >= 1 and any spatial size.
      train: makes the dropout stochastic (needs `rngs={'dropout': key}`); BatchNorm stays in inference
        unless `batchnorm == 'train'`.
      gate_biases: optional cross-modal biases for the cell, keys `x_flow_i/f/c`, each (B, T, ...) with the
        rest broadcastable to (B, h, w, K) (see `LSTACell`).
    Returns a dict:
      `logits` (B, M); with the heads `verb_logits` (B, V) and `noun_logits` (B, N);
      `features` (B, K) = spatial mean of c_T; `attention` (B, T, h, w) the softmax maps u_t
      (each sums to 1 over positions; uniform without attention pooling);
      with `return_selections`: `attention_class` (B, T) k_t (ImageNet class of the CAM, -1 without attention
      pooling) and `pooling_class` (B, T) j_t (output-pooling class, -1 without output pooling);
      with `return_frame_features`: `frame_features` (B, T, K) = spatial mean of each frame's BN'd `layer4`
      (the backbone's pooled feature, the input of its ImageNet fc);
      with `return_frame_maps`: `frame_maps` (B, T, h, w, K), each frame's BN'd `layer4` (conv5_3; the
      cross-modal two-stream model summarises them).
    """

    num_classes: int = 61
    mem_size: int = 512
    c_cam_classes: int = 100
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
    backbone_chunk: int = 5
    gate_conv: str = "auto"
    variant: str = "lsta"
    verb_classes: int = 0
    noun_classes: int = 0
    head_bias_control: str = "logits"
    selector_map: str = "logits"

    @nn.compact
    def __call__(
        self,
        clip: jax.Array,
        train: bool = False,
        return_selections: bool = False,
        return_frame_features: bool = False,
        gate_biases: Mapping[str, jax.Array] | None = None,
        return_frame_maps: bool = False,
    ) -> dict[str, jax.Array]:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown LSTA variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if self.mem_size != self.backbone_widths[-1]:
            raise ValueError(
                f"mem_size {self.mem_size} must equal the backbone's last width {self.backbone_widths[-1]}"
            )
        check_batchnorm(self.batchnorm)
        if (self.verb_classes > 0) != (self.noun_classes > 0):
            raise ValueError(
                f"verb_classes ({self.verb_classes}) and noun_classes ({self.noun_classes}): set both > 0 "
                "(multi-task heads) or both 0"
            )
        attention_on, output_on, bias_on = VARIANTS[self.variant]
        b, t = clip.shape[:2]
        out = frame_features_and_cam(
            clip,
            self.backbone_stage_sizes,
            self.backbone_widths,
            self.attention_classes,
            self.dtype,
            self.remat,
            attention_on,
            self.backbone_stage_strides,
            self.backbone_max_pool,
            train and self.batchnorm == "train",
            0 if train else self.backbone_chunk,
        )
        h, w, k = out["layer4"].shape[1:]
        cam, attention_class = out["cam"], out["attention_class"]
        cam = selector.rescale_selector_map(cam, self.selector_map)

        scan_cell = nn.scan(
            LSTACell,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=1,
            out_axes=1,
            unroll=scan_unroll_steps(self.scan_unroll, t),
        )
        cell = scan_cell(
            mem_size=self.mem_size,
            c_cam_classes=self.c_cam_classes,
            attention_pooling=attention_on,
            output_pooling=output_on,
            bias_control=bias_on,
            dtype=self.dtype,
            gate_conv=self.gate_conv,
            name="lsta_cell",
        )
        carry = LSTACell.initial_carry(b, h, w, self.mem_size)
        (_, (c_last, _)), steps = cell(
            carry,
            out["layer4_prebn"].reshape(b, t, h, w, k),
            cam.reshape(b, t, h, w),
            dict(gate_biases or {}),
        )

        features = selector.spatial_mean(c_last)
        logits = classifier_head(features, self.num_classes, self.dropout_rate, train)

        result = {"logits": logits, "features": features, "attention": steps["attention"]}
        if self.verb_classes > 0 or self.noun_classes > 0:
            result.update(
                heads.multitask_heads(
                    features,
                    logits,
                    self.verb_classes,
                    self.noun_classes,
                    self.head_bias_control,
                    self.dropout_rate,
                    train,
                )
            )
        if return_selections:
            result["attention_class"] = attention_class.reshape(b, t)
            result["pooling_class"] = steps["pooling_class"]
        if return_frame_features:
            result["frame_features"] = out["pooled"].reshape(b, t, k)
        if return_frame_maps:
            result["frame_maps"] = out["layer4"].reshape(b, t, h, w, k)
        return result


@register(
    "lsta_rgb",
    "LSTA RGB classifier: ResNet-34 + attention pooling + LSTA cell (CVPR 2019)",
    clip_classifier=True,
    # the coupling fc (eq. 3's W_c) and the CAM classifier's bias only shift an argmax: never a gradient
    never_trained=(r"lsta_cell/coupling_fc/.*", r"resNet/fc/bias"),
)
def build_lsta_rgb(**config: Any) -> LSTAClassifier:
    """Registry builder of kind `lsta_rgb`; config keys are LSTAClassifier attributes (dtype as a string)."""
    return LSTAClassifier(**config_to_attributes(config, LSTAClassifier))
