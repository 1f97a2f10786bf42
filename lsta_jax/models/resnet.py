"""ResNet-34 in Flax linen, numerically identical to torchvision's (and to the authors' `resNetNew.py`).

Reference: `docs/differences.md` §3. What matters for parity:
- explicit symmetric padding everywhere (never 'SAME', which pads stride-2 convs asymmetrically);
- max-pool 3x3/2 with padding 1 filled with -inf;
- BatchNorm eps 1e-5; torch momentum 0.1 is flax momentum 0.9;
- module names mirror torchvision's (`layer4_2/conv2` is `layer4.2.conv2`), so conversion is a rename plus a
  transpose.

Arrays are NHWC. No input size is hard-wired: the reference's `AvgPool2d(7)` is a global spatial mean at
224x224, and that is what we compute for every size.

Besides the ImageNet logits the network returns both outputs of the last block that LSTA needs: `layer4`
(bn2, + shortcut, ReLU: used by the attention selector) and `layer4_prebn` (conv2 + shortcut, before bn2 and
before the ReLU: the input of the LSTA cell, the authors' `noBN` trick).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lsta_jax.models.registry import register

RESNET34_STAGES = (3, 4, 6, 3)
RESNET34_WIDTHS = (64, 128, 256, 512)


def torch_conv(features: int, kernel: int, stride: int, padding: int, name: str, dtype: Any) -> nn.Conv:
    """A bias-free conv with PyTorch's explicit, symmetric zero padding."""
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        use_bias=False,
        dtype=dtype,
        name=name,
    )


def torch_batch_norm(name: str, train: bool, dtype: Any) -> nn.BatchNorm:
    """BatchNorm with PyTorch's defaults (eps 1e-5, momentum 0.1 == flax momentum 0.9)."""
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype, name=name)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock. Returns `(out, prebn)`.

    out   = ReLU(bn2(conv2(r)) + shortcut)        the usual block output
    prebn = conv2(r) + shortcut                   before bn2 and the final ReLU (docs/differences.md §3)
    with r = ReLU(bn1(conv1(x))) and shortcut = x, or downsample(x) when the shape changes.
    """

    features: int
    stride: int = 1
    downsample: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        r = torch_conv(self.features, 3, self.stride, 1, "conv1", self.dtype)(x)
        r = nn.relu(torch_batch_norm("bn1", train, self.dtype)(r))
        y = torch_conv(self.features, 3, 1, 1, "conv2", self.dtype)(r)
        shortcut = x
        if self.downsample:
            shortcut = torch_conv(self.features, 1, self.stride, 0, "downsample_0", self.dtype)(x)
            shortcut = torch_batch_norm("downsample_1", train, self.dtype)(shortcut)
        prebn = y + shortcut
        out = nn.relu(torch_batch_norm("bn2", train, self.dtype)(y) + shortcut)
        return out, prebn


def resnet_trunk(
    x: jax.Array,
    stage_sizes: Sequence[int],
    widths: Sequence[int],
    dtype: Any,
    train: bool = False,
    batch_stats_from: int = 0,
    stage_strides: Sequence[int] | None = None,
    max_pool: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """conv1, bn1, ReLU, max-pool and the residual stages: `(out, prebn)` of the last block.

    Call inside a compact method: the submodules `conv1`, `bn1`, `layer{i}_{j}` are created in the CALLING
    module (so a flow network can mirror ego-rnn's top-level `conv1.weight`, `layer4.2.conv2.weight` names).
    `train` switches BatchNorm to batch statistics, only in stage `batch_stats_from` and later (0: the stem
    `bn1` and every stage; 4: only `layer4`, as ego-rnn's two-stream training does for the flow network).
    `stage_strides` (None: torchvision's 1 then 2s) and `max_pool` set the downsampling (`ResNet`).
    """
    strides = tuple(stage_strides or (1,) + (2,) * (len(stage_sizes) - 1))
    x = x.astype(dtype)
    x = torch_conv(widths[0], 7, 2, 3, "conv1", dtype)(x)
    x = nn.relu(torch_batch_norm("bn1", train and batch_stats_from <= 0, dtype)(x))
    if max_pool:
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))  # pads with -inf
    in_width = widths[0]
    prebn = x
    for stage, (num_blocks, width) in enumerate(zip(stage_sizes, widths, strict=True)):
        stage_train = train and stage + 1 >= batch_stats_from
        for block in range(num_blocks):
            stride = strides[stage] if block == 0 else 1
            downsample = block == 0 and (stride != 1 or in_width != width)
            x, prebn = BasicBlock(width, stride, downsample, dtype, name=f"layer{stage + 1}_{block}")(
                x, stage_train
            )
            in_width = width
    return x, prebn


class ResNet(nn.Module):
    """A torchvision-layout ResNet of BasicBlocks (ResNet-34 by default).

    Attributes:
      stage_sizes: blocks per stage; (3, 4, 6, 3) is ResNet-34. Smaller values give the small backbones used
        for CPU demos (e.g. (1, 1, 1, 1)).
      widths: channels per stage; (64, 128, 256, 512) for ResNet-34.
      num_classes: outputs of the `fc` head (1000: ImageNet, used by LSTA's attention selector).
      include_fc: False builds the backbone only (no `fc`, no `logits`).
      in_channels: input channels, checked at call time (3 for RGB, 10 for 5 stacked x/y flow frames).
      stage_strides: stride of the first block of each stage; None (default) is torchvision's 1 then 2s
        ((1, 2, 2, 2): output stride 32 with the max-pool). The small demo backbone uses (1, 2, 2, 1) without
        the max-pool, output stride 8, so a 56 px crop gives a 7x7 `layer4` map as ResNet-34 does at 224 px.
      max_pool: the stem's 3x3/2 max-pool (torchvision: True).
      dtype: compute dtype (float32 default; bfloat16 for speed). Parameters stay float32 and every output is
        returned as float32.

    `__call__(x, train=False)` takes (N, H, W, in_channels) and returns a dict:
      `layer4` (N, h, w, widths[-1]), `layer4_prebn` (same shape), `pooled` (N, widths[-1]) = spatial mean of
      `layer4`, and `logits` (N, num_classes) when `include_fc`. `train` only switches BatchNorm to batch
      statistics; LSTA always runs it in inference mode (docs/differences.md §5).
    """

    stage_sizes: Sequence[int] = RESNET34_STAGES
    widths: Sequence[int] = RESNET34_WIDTHS
    num_classes: int = 1000
    include_fc: bool = True
    in_channels: int = 3
    stage_strides: Sequence[int] | None = None
    max_pool: bool = True
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        if x.ndim != 4 or x.shape[-1] != self.in_channels:
            raise ValueError(
                f"ResNet expects (N, H, W, {self.in_channels}) NHWC input, got shape {tuple(x.shape)}"
            )
        strides = tuple(self.stage_strides or (1,) + (2,) * (len(self.stage_sizes) - 1))
        if not len(self.stage_sizes) == len(self.widths) == len(strides):
            raise ValueError(
                f"stage_sizes {self.stage_sizes}, widths {self.widths} and stage_strides {strides} differ in "
                "length"
            )
        x, prebn = resnet_trunk(
            x, self.stage_sizes, self.widths, self.dtype, train, stage_strides=strides, max_pool=self.max_pool
        )
        outputs = {
            "layer4": x.astype(jnp.float32),
            "layer4_prebn": prebn.astype(jnp.float32),
            "pooled": jnp.mean(x.astype(jnp.float32), axis=(1, 2)),
        }
        if self.include_fc:
            logits = nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(outputs["pooled"])
            outputs["logits"] = logits.astype(jnp.float32)
        return outputs


def resnet34(**kwargs: Any) -> ResNet:
    """torchvision's ResNet-34 layout; keyword arguments override the ResNet attributes."""
    return ResNet(stage_sizes=RESNET34_STAGES, widths=RESNET34_WIDTHS, **kwargs)


def _resnet_example_input(config: dict[str, Any]) -> jax.Array:
    return jnp.zeros((1, 64, 64, config.get("in_channels", 3)), jnp.float32)


@register(
    "resnet34",
    "torchvision ResNet-34 (ImageNet fc optional)",
    inputs=("x",),
    attention=(),
    init_role="backbone",
    example_input=_resnet_example_input,
)
def build_resnet34(**config: Any) -> ResNet:
    """Registry builder; config keys are ResNet attributes (`dtype` as a string such as 'bfloat16')."""
    config = dict(config)
    if isinstance(config.get("dtype"), str):
        config["dtype"] = jnp.dtype(config["dtype"])
    return resnet34(**config)


BATCHNORM_MODES = ("frozen", "train")


def check_batchnorm(mode: str) -> None:
    """Check a model's `batchnorm`: 'frozen' (running statistics, the reference's `model.train(False)` for
    LSTA) or 'train' (batch statistics in training, running ones updated: torchvision's ImageNet recipe)."""
    if mode not in BATCHNORM_MODES:
        raise ValueError(f"batchnorm must be one of {BATCHNORM_MODES}, got {mode!r}")


class ResNetClassifier(ResNet):
    """A `ResNet` image classifier that takes `clip` as the other models do (registered as kind `resnet`).

    The ImageNet-like pre-training model (`configs/synthetic_pretrain.py`): its parameter tree is exactly a
    `ResNet`'s, so its workdir is an `init_from` for LSTA like a converted torchvision ResNet-34 (grafted into
    `resNet`: its registered `init_role` is 'backbone').

    `__call__(clip, train=False)`: clip (B, H, W, 3) images or (B, T, H, W, 3) clips (logits averaged over
    T). Returns the ResNet outputs for the (B*T) frames plus `logits` (B, num_classes). BatchNorm uses batch
    statistics only when `train` and `batchnorm == 'train'`.
    """

    batchnorm: str = "frozen"

    def __call__(self, clip: jax.Array, train: bool = False) -> dict[str, jax.Array]:  # type: ignore[override]
        check_batchnorm(self.batchnorm)
        frames = clip.reshape(-1, *clip.shape[-3:]) if clip.ndim == 5 else clip
        out = dict(super().__call__(frames, train=train and self.batchnorm == "train"))
        if clip.ndim == 5 and "logits" in out:
            out["logits"] = out["logits"].reshape(clip.shape[0], clip.shape[1], -1).mean(axis=1)
        return out


def _clip_example_input(config: dict[str, Any]) -> jax.Array:
    return jnp.zeros((1, 64, 64, config.get("in_channels", 3)), jnp.float32)


@register(
    "resnet",
    "ResNet image classifier of any layout, input `clip` (pre-training)",
    attention=(),
    init_role="backbone",
    example_input=_clip_example_input,
)
def build_resnet(**config: Any) -> ResNetClassifier:
    """Registry builder of kind `resnet`; config keys are ResNetClassifier attributes (lists -> tuples)."""
    config = dict(config)
    if isinstance(config.get("dtype"), str):
        config["dtype"] = jnp.dtype(config["dtype"])
    for key in ("stage_sizes", "widths", "stage_strides"):
        if config.get(key) is not None:
            config[key] = tuple(int(v) for v in config[key])
    return ResNetClassifier(**config)
