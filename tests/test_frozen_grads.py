"""The train step differentiates only the trainable parameters (`optimizer.partition_params`)."""

import jax
import jax.numpy as jnp
import numpy as np
from test_lsta import SMALL, random_variables

from lsta_jax.models import create_model
from lsta_jax.models.resnet import ResNet
from lsta_jax.train import optimizer as opt


def primitive_count(jaxpr, name: str = "conv_general_dilated") -> int:
    """Equations of primitive `name` in a jaxpr, sub-jaxprs (scan bodies, pjit, checkpoint) included."""
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == name
        for sub in jax.core.jaxprs_in_params(eqn.params):
            count += primitive_count(sub, name)
    return count


def test_partitioned_gradient_equals_the_full_one_without_the_frozen_backward():
    stage = "stage1"  # the frozen backbone: the largest saving (stage 2 only adds layer4's backward)
    model = create_model("lsta_rgb", **SMALL, dropout_rate=0.0)
    clip = jnp.asarray(np.random.default_rng(0).normal(size=(2, 2, 32, 32, 3)), jnp.float32)
    variables = random_variables(model, clip)
    params = variables["params"]
    mask = opt.trainable_mask(params, stage)
    trainable, frozen = opt.partition_params(params, mask)
    # a leaf on exactly one side, and the round trip is the very same arrays
    assert len(jax.tree_util.tree_leaves(trainable)) + len(jax.tree_util.tree_leaves(frozen)) == len(
        jax.tree_util.tree_leaves(params)
    )
    back = opt.combine_params(trainable, frozen, mask)
    assert all(
        a is b
        for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(params), strict=True)
    )

    def loss(p):
        return jnp.sum(model.apply({**variables, "params": p}, clip)["logits"] ** 2)

    def split_loss(t):
        return loss(opt.combine_params(t, frozen, mask))

    full = jax.jit(jax.grad(loss))(params)
    split = opt.full_gradient(jax.jit(jax.grad(split_loss))(trainable), params, mask)
    for g_full, g_split, m in zip(*map(jax.tree_util.tree_leaves, (full, split, mask)), strict=True):
        if m:
            np.testing.assert_allclose(g_split, g_full, rtol=1e-5, atol=1e-7)
        else:
            assert not np.any(g_split)
    # the backward of frozen layers is not even traced. The convolutions are the backbone's (the cell's gate
    # convolutions are matmuls of patches, `cells.im2col_conv`): the split gradient has no convolution beyond
    # the forward's, the full one the backbone's backward; the cell's backward (matmuls) is in both
    convs = {
        name: primitive_count(jax.make_jaxpr(fn)(arg).jaxpr)
        for name, fn, arg in (
            ("forward", loss, params),
            ("full", jax.grad(loss), params),
            ("split", jax.grad(split_loss), trainable),
        )
    }
    assert convs["forward"] == convs["split"] < convs["full"]
    dots_forward = primitive_count(jax.make_jaxpr(loss)(params).jaxpr, "dot_general")
    assert (
        primitive_count(jax.make_jaxpr(jax.grad(split_loss))(trainable).jaxpr, "dot_general") > dots_forward
    )
    # none of the backbone's backward: at least one conv saved per backbone conv
    backbone = ResNet(SMALL["backbone_stage_sizes"], SMALL["backbone_widths"], num_classes=11)
    frames = clip.reshape(-1, *clip.shape[2:])
    res_vars = {"params": params["resNet"], "batch_stats": variables["batch_stats"]["resNet"]}
    n_backbone = primitive_count(jax.make_jaxpr(backbone.apply)(res_vars, frames).jaxpr)
    assert convs["full"] - convs["split"] >= n_backbone
