"""The motion (optical-flow) stream: ego-rnn's flow network, kind `egornn_flow` (docs/differences.md §4.2).

ego-rnn's `flow_resnet34(channels=10, num_classes=M)` (`docs/differences.md` §4.2): a torchvision
ResNet-34 whose conv1 takes a stack of L = 5 consecutive flow frames with interleaved channels
[x_1, y_1, ..., x_5, y_5] (NHWC here: (B, H, W, 10)), `avgpool` (a global spatial mean; `AvgPool2d(7)` at
224x224), `dp` = Dropout(0.5) and the action head `fc_action` = Linear(512, M). Its forward returns
`(fc_action(dp(x1)), x1)` with x1 the pooled 512-vector; here `logits` and `features`, plus the `layer4` maps
(B, h, w, 512) so an attention motion stream can reuse the same trunk.

Parameter names mirror ego-rnn's state dict, which has NO backbone prefix: `conv1`, `bn1`, `layer{i}_{j}/...`
(torch `layer{i}.{j}.*`) and `fc_action` at the top of the tree (`lsta_jax.convert.flow`).

BatchNorm (attribute `batchnorm`): ego-rnn trains the flow network with `model.train(True)`, i.e. BatchNorm
in training mode (batch statistics, running statistics updated with torch momentum 0.1): `batchnorm='train'`;
the training step then applies the model with `mutable=['batch_stats']`. `'frozen'` keeps the running
statistics (as LSTA's RGB stream does). Evaluation (`train=False`) always uses the running statistics.
`batch_stats_from` restricts the training-mode BatchNorm to the later stages (ego-rnn's two-stream training
puts only the flow `layer4` in training mode: 4).

The building blocks for other flow models are `flow_trunk` (the ResNet on a stack, creating its layers in the
calling module) and `layers.classifier_head(..., name='fc_action')`.

`FlowAttentionClassifier`, kind `lsta_flow`: the LSTA motion stream with attention (paper 5.2), built on a
whole `FlowResNet` (its submodule `resNet`, the verb-pretrained network of stage (a)).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lsta_jax.models import selector
from lsta_jax.models.layers import (
    classifier_head,
    config_to_attributes,
    torch_linear_bias_init,
    torch_linear_kernel_init,
)
from lsta_jax.models.registry import FLOW_CHANNELS, register
from lsta_jax.models.resnet import (
    RESNET34_STAGES,
    RESNET34_WIDTHS,
    check_batchnorm,
    resnet_trunk,
)


def flow_trunk(
    flow: jax.Array,
    stage_sizes: Sequence[int],
    widths: Sequence[int],
    in_channels: int,
    dtype: Any,
    batch_stats: bool = False,
    batch_stats_from: int = 0,
    stage_strides: Sequence[int] | None = None,
    max_pool: bool = True,
) -> dict[str, jax.Array]:
    """The flow ResNet on (N, H, W, in_channels) stacks; call inside a compact method.

    Creates `conv1`, `bn1`, `layer{i}_{j}` in the calling module (ego-rnn's top-level names). `batch_stats`
    puts BatchNorm in training mode from stage `batch_stats_from` on; `stage_strides` and `max_pool` set the
    downsampling (see `resnet.resnet_trunk`; the defaults are torchvision's). Returns
    float32 `layer4` (N, h, w, widths[-1]) and `features` (N, widths[-1]), its spatial mean.
    """
    if flow.ndim != 4 or flow.shape[-1] != in_channels:
        raise ValueError(
            f"expected (N, H, W, {in_channels}) flow stacks (channels x_1, y_1, ..., x_L, y_L), "
            f"got shape {tuple(flow.shape)}"
        )
    layer4, _ = resnet_trunk(
        flow, stage_sizes, widths, dtype, batch_stats, batch_stats_from, stage_strides, max_pool
    )
    layer4 = layer4.astype(jnp.float32)
    return {"layer4": layer4, "features": selector.spatial_mean(layer4)}


class FlowResNet(nn.Module):
    """ego-rnn's flow network (kind `egornn_flow`); see the module docstring.

    Attributes:
      num_classes: M, outputs of `fc_action`.
      in_channels: 2 * stack size (10).
      backbone_stage_sizes, backbone_widths: the ResNet layout (ResNet-34 by default).
      backbone_stage_strides, backbone_max_pool: its downsampling (torchvision's by default; the synthetic
        configs use strides (1, 2, 2, 1) without the max-pool, as their RGB stream does).
      dropout_rate: `dp` before `fc_action` (0.5), active only with `train=True`.
      batchnorm: 'train' (ego-rnn's protocol: batch statistics while training; apply with
        mutable=['batch_stats']) or 'frozen' (running statistics always).
      batch_stats_from: with batchnorm='train', only stages >= this use batch statistics (0: all).
      dtype: compute dtype; parameters and outputs are float32.

    `__call__(flow, train=False)` with flow (B, H, W, in_channels) returns `logits` (B, M), `features`
    (B, K) the pooled vector (before the dropout) and `layer4` (B, h, w, K).
    """

    num_classes: int = 61
    in_channels: int = FLOW_CHANNELS
    backbone_stage_sizes: Sequence[int] = RESNET34_STAGES
    backbone_widths: Sequence[int] = RESNET34_WIDTHS
    backbone_stage_strides: Sequence[int] | None = None
    backbone_max_pool: bool = True
    dropout_rate: float = 0.5
    batchnorm: str = "train"
    batch_stats_from: int = 0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, flow: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        check_batchnorm(self.batchnorm)
        out = flow_trunk(
            flow,
            self.backbone_stage_sizes,
            self.backbone_widths,
            self.in_channels,
            self.dtype,
            batch_stats=train and self.batchnorm == "train",
            batch_stats_from=self.batch_stats_from,
            stage_strides=self.backbone_stage_strides,
            max_pool=self.backbone_max_pool,
        )
        logits = classifier_head(out["features"], self.num_classes, self.dropout_rate, train, "fc_action")
        return {"logits": logits, **out}


@register(
    "egornn_flow",
    "ego-rnn flow network: ResNet-34 on 5-frame x/y flow stacks",
    inputs=("flow",),
    attention=(),
    init_role="backbone_of_other_kinds",  # stage (a) of the motion stream initialises `lsta_flow`'s resNet
)
def build_egornn_flow(**config: Any) -> FlowResNet:
    """Registry builder of kind `egornn_flow`; config keys are FlowResNet attributes."""
    return FlowResNet(**config_to_attributes(config, FlowResNet))


class FlowAttentionClassifier(nn.Module):
    """The LSTA motion stream with attention (paper 5.2; docs/differences.md §4.3), kind `lsta_flow`.

    Stage (a) of the paper trains ego-rnn's flow network (`FlowResNet`, kind `egornn_flow`) on VERBS. Stage
    (b), this module, keeps that whole network as its submodule `resNet` (the same tree, so a stage-(a)
    workdir grafts in with `config.init_from`) and adds attention pooling and an activity classifier:
      f = layer4 of the flow ResNet on the stack, (B, h, w, K) (BN'd, ReLU'd conv5_3);
      ν = ς(f, w_a) (paper eqs. 3, 12-13; `selector.attention_pooling`) with the selector w_a = the
          verb-trained `resNet/fc_action` (scores with its bias, map without: the class-activation map of the
          argmax verb), "the action-pretrained FC weights as the initialisation of attention pooling";
      u = softmax of ν over the h*w positions (eq. 6 without the recurrence: one stack, one map);
      features = Σ_i u_i f_i (the map weights the features), logits = `fc`(Dropout(features)).
    Choices where the paper is silent (docs/differences.md §4.4):
      - the weighted features are the attention-weighted SUM Σ_i u_i f_i, i.e. an average with weights u
        instead of the uniform 1/(h*w) of the baseline's average pool: the same scale as the features the
        verb network was trained on (the RGB model's ε(u ⊙ x) would be h*w times smaller);
      - the selector (`resNet/fc_action`) keeps training in stage (b) ("initialisation"); its bias only
        shifts the argmax, so it gets no gradient and is never updated (registered as `never_trained`);
      - Dropout before `fc` = 0.5, ego-rnn's flow dropout;
      - the input is ONE 5-frame stack: at the temporal centre for evaluation, ego-rnn's random start in
        training (paper 5.2 says centre; the data pipeline's 'flow' modality).
    Attributes: as `FlowResNet`, plus `verb_classes` (rows of the selector = classes of stage (a)).

    `__call__(flow, train=False, return_selections=False)` with flow (B, H, W, in_channels) returns `logits`
    (B, M), `features` (B, K), `attention` (B, 1, h, w) (one map per stack, like the RGB model's per-frame
    maps (B, T, h, w) with T = 1) and with `return_selections` `attention_class` (B, 1) the selected verb.
    `trunk` and `head` are the two halves, for the cross-modal two-stream model (`two_stream.py`).
    """

    num_classes: int = 61
    verb_classes: int = 61
    in_channels: int = FLOW_CHANNELS
    backbone_stage_sizes: Sequence[int] = RESNET34_STAGES
    backbone_widths: Sequence[int] = RESNET34_WIDTHS
    backbone_stage_strides: Sequence[int] | None = None
    backbone_max_pool: bool = True
    dropout_rate: float = 0.5
    batchnorm: str = "train"
    batch_stats_from: int = 0
    dtype: Any = jnp.float32

    def setup(self) -> None:
        self.resNet = FlowResNet(
            num_classes=self.verb_classes,
            in_channels=self.in_channels,
            backbone_stage_sizes=self.backbone_stage_sizes,
            backbone_widths=self.backbone_widths,
            backbone_stage_strides=self.backbone_stage_strides,
            backbone_max_pool=self.backbone_max_pool,
            batchnorm=self.batchnorm,
            batch_stats_from=self.batch_stats_from,
            dtype=self.dtype,
        )
        self.dropout = nn.Dropout(self.dropout_rate)
        self.fc = nn.Dense(
            self.num_classes,
            kernel_init=torch_linear_kernel_init,
            bias_init=torch_linear_bias_init(self.backbone_widths[-1]),
        )

    def trunk(self, flow: jax.Array, train: bool = False) -> jax.Array:
        """The flow ResNet's `layer4` (B, h, w, K) of (B, H, W, in_channels) stacks."""
        return self.resNet(flow, train)["layer4"]

    def head(self, feature_map: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        """Attention pooling with the verb selector, weighted features, classifier (class docstring).

        `feature_map` (B, h, w, K): the trunk's `layer4` (or, in the two-stream model, its embedding).
        Returns `logits`, `features`, `attention` (B, 1, h, w) and `attention_class` (B, 1).
        """
        selector_params = self.resNet.variables["params"]["fc_action"]
        cam, verb = selector.attention_pooling(
            feature_map, selector_params["kernel"].astype(jnp.float32), selector_params["bias"]
        )  # eqs. 3, 12-13
        attention = selector.spatial_softmax(cam)
        features = jnp.einsum("bhwk,bhw->bk", feature_map, attention)
        logits = self.fc(self.dropout(features, deterministic=not train))
        return {
            "logits": logits,
            "features": features,
            "attention": attention[:, None],
            "attention_class": verb[:, None],
        }

    def __call__(
        self, flow: jax.Array, train: bool = False, return_selections: bool = False
    ) -> dict[str, jax.Array]:
        out = self.head(self.trunk(flow, train), train)
        if not return_selections:
            out.pop("attention_class")
        return out


@register(
    "lsta_flow",
    "LSTA motion stream: flow ResNet-34 + verb-initialised attention pooling",
    inputs=("flow",),
    attention=("flow",),
    selector_from_init=True,
    never_trained=(r"resNet/fc_action/bias",),  # the verb selector's bias only shifts the selection scores
)
def build_lsta_flow(**config: Any) -> FlowAttentionClassifier:
    """Registry builder of kind `lsta_flow`; config keys are FlowAttentionClassifier attributes."""
    return FlowAttentionClassifier(**config_to_attributes(config, FlowAttentionClassifier))
