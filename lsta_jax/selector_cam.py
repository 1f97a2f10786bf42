"""The frozen selector's map: the softmaxed class-activation map of a checkpoint's own backbone.

LSTA's attention starts from ν_a = ς(x_t, w_a) (paper eq. 3): the CAM of the backbone's top class, computed
by `lsta.frame_features_and_cam` from the backbone `resNet` and its ImageNet `fc`. Its softmax over the h x w
positions, softmax(ν_a), is the map u_t = softmax(s_t + ν_a) (eq. 6) would be with s_t = 0, i.e. without the
attention memory: the baseline that says what LSTA's recurrence adds. In stage 1 the backbone and the fc are
frozen, so a stage-1 checkpoint's selector is the pre-trained one; stage 2 fine-tunes `layer4` conv1/conv2 and
the fc, and its selector is then the fine-tuned one.

`selector_cam_fn(model, variables)` works for the models built on `frame_features_and_cam` (a `resNet`
submodule with `fc`: LSTA and its variants, ego-rnn) and for the pre-training `resnet` kind (its whole tree
is the backbone); other models (two-stream, flow) return None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lsta_jax.models import selector
from lsta_jax.models.lsta import frame_features_and_cam


class SelectorCam(nn.Module):
    """softmax(ν_a) (B, T, h, w) of clips (B, T, H, W, 3): the backbone `resNet` (inference BatchNorm) and the
    CAM of its top class (eq. 3), softmaxed over positions (eq. 6 with s_t = 0)."""

    stage_sizes: Sequence[int]
    widths: Sequence[int]
    attention_classes: int
    stage_strides: Sequence[int] | None = None
    max_pool: bool = True
    dtype: Any = jnp.float32
    backbone_chunk: int = 0
    softmax: bool = True  # False: the raw CAM ν_a (logits), for its range

    @nn.compact
    def __call__(self, clip: jax.Array) -> jax.Array:
        b, t = clip.shape[:2]
        out = frame_features_and_cam(
            clip,
            self.stage_sizes,
            self.widths,
            self.attention_classes,
            self.dtype,
            remat=False,
            attention=True,
            stage_strides=self.stage_strides,
            max_pool=self.max_pool,
            backbone_chunk=self.backbone_chunk,
        )
        cam = selector.spatial_softmax(out["cam"]) if self.softmax else out["cam"]
        return cam.reshape(b, t, *cam.shape[1:])


def selector_cam_fn(
    model: Any, variables: Any, softmax: bool = True
) -> tuple[Callable[[jax.Array], jax.Array], Any] | None:
    """(jitted clip -> softmax(ν_a) (B, T, h, w), the backbone's variables) of `model`'s frozen selector, or
    None when the model has no `resNet` backbone with an `fc` (module docstring); `softmax=False` gives the
    raw CAM ν_a."""
    params = variables.get("params", {})
    stats = variables.get("batch_stats", {})
    if hasattr(model, "backbone_stage_sizes") and "fc" in params.get("resNet", {}):
        cam_model = SelectorCam(
            stage_sizes=tuple(model.backbone_stage_sizes),
            widths=tuple(model.backbone_widths),
            attention_classes=model.attention_classes,
            stage_strides=getattr(model, "backbone_stage_strides", None),
            max_pool=getattr(model, "backbone_max_pool", True),
            dtype=model.dtype,
            backbone_chunk=getattr(model, "backbone_chunk", 0),
            softmax=softmax,
        )
        backbone = {
            "params": {"resNet": params["resNet"]},
            "batch_stats": {"resNet": stats.get("resNet", {})},
        }
    elif hasattr(model, "stage_sizes") and "fc" in params:  # the pre-training `resnet` kind
        cam_model = SelectorCam(
            stage_sizes=tuple(model.stage_sizes),
            widths=tuple(model.widths),
            attention_classes=model.num_classes,
            stage_strides=model.stage_strides,
            max_pool=model.max_pool,
            dtype=model.dtype,
            softmax=softmax,
        )
        backbone = {"params": {"resNet": params}, "batch_stats": {"resNet": stats}}
    else:
        return None
    apply = jax.jit(lambda v, clip: cam_model.apply(v, clip))
    return (lambda clip: apply(backbone, clip)), backbone
