"""The LSTA RGB classifier (reference 2.1): composition, shapes, modes, variants; torch parity.

Parity with the torch reference at full size (ResNet-34, 224x224, small T) is at the end of this file;
everything else uses a small backbone to stay fast.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsta_jax.models import create_model, selector
from lsta_jax.models.cells import LSTACell
from lsta_jax.models.lsta import VARIANTS, LSTAClassifier
from lsta_jax.models.resnet import ResNet

SMALL = dict(
    num_classes=5,
    mem_size=32,
    c_cam_classes=7,
    attention_classes=11,
    backbone_stage_sizes=(1, 1, 1, 1),
    backbone_widths=(8, 16, 16, 32),
)


def random_variables(model, clip, seed=0):
    """Random weights and non-trivial BN statistics, without `model.init`.

    Flax init compiles a threefry normal per kernel shape, which takes many seconds on a CPU; the structure
    from `jax.eval_shape` filled by numpy is instant and just as random.
    """
    shapes = jax.eval_shape(model.init, jax.random.key(0), clip)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name, shape = path[-1].key, leaf.shape
        if name == "kernel":
            value = rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:-1])), shape)
        elif name in ("scale", "var"):
            value = rng.uniform(0.5, 1.5, shape)
        else:  # bias, mean
            value = rng.normal(0.0, 0.2, shape)
        return jnp.asarray(value, jnp.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


STATIC = ("train", "return_selections", "return_frame_features")


def jit_apply(model):
    """Jitted `model.apply` (one compile instead of an op-by-op dispatch that compiles every op)."""
    return jax.jit(model.apply, static_argnames=STATIC)


@pytest.fixture(scope="module")
def small():
    model = LSTAClassifier(**SMALL)
    clip = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 48, 40, 3)), jnp.float32)
    return jit_apply(model), random_variables(model, clip), clip


def test_outputs_shapes_and_attention_is_a_distribution(small):
    model, variables, clip = small
    out = model(variables, clip, return_selections=True, return_frame_features=True)
    # 48x40 input -> stride 32 -> 2x2 grid (ceil), any size works.
    assert out["logits"].shape == (2, 5)
    assert out["features"].shape == (2, 32)
    assert out["attention"].shape == (2, 3, 2, 2)
    assert out["attention_class"].shape == (2, 3) and out["pooling_class"].shape == (2, 3)
    assert out["frame_features"].shape == (2, 3, 32)
    np.testing.assert_allclose(np.sum(out["attention"], axis=(2, 3)), 1.0, rtol=1e-5)
    assert np.all((out["attention_class"] >= 0) & (out["attention_class"] < 11))
    assert np.all((out["pooling_class"] >= 0) & (out["pooling_class"] < 7))
    one = model(variables, clip[:, :1])  # T = 1 works
    assert one["logits"].shape == (2, 5)


def test_scanned_model_equals_an_explicit_per_frame_composition(small):
    """Backbone per frame -> ς -> cell step by step in a Python loop -> mean(c_T) -> fc (reference 2.1)."""
    model, variables, clip = small
    with jax.default_matmul_precision("highest"):
        out = model(variables, clip, return_selections=True, return_frame_features=True)
        resnet = ResNet(SMALL["backbone_stage_sizes"], SMALL["backbone_widths"], num_classes=11)
        res_vars = {
            "params": variables["params"]["resNet"],
            "batch_stats": variables["batch_stats"]["resNet"],
        }
        cell = LSTACell(mem_size=32, c_cam_classes=7)
        cell_vars = {"params": variables["params"]["lsta_cell"]}
        resnet_apply, cell_apply = jax.jit(resnet.apply), jax.jit(cell.apply)
        carry = None
        for t in range(clip.shape[1]):
            r = resnet_apply(res_vars, clip[:, t])
            if carry is None:
                carry = LSTACell.initial_carry(2, *r["layer4"].shape[1:3], 32)
            w_fc, b_fc = (
                variables["params"]["resNet"]["fc"]["kernel"],
                variables["params"]["resNet"]["fc"]["bias"],
            )
            cam, k = selector.attention_pooling(r["layer4"], w_fc, b_fc)  # scores recomputed with the bias
            assert out["attention_class"][:, t].tolist() == k.tolist()
            np.testing.assert_allclose(out["frame_features"][:, t], r["pooled"], rtol=1e-5, atol=1e-6)
            carry, step = cell_apply(cell_vars, carry, r["layer4_prebn"], cam)
            assert out["pooling_class"][:, t].tolist() == step["pooling_class"].tolist()
            np.testing.assert_allclose(out["attention"][:, t], step["attention"], rtol=1e-5, atol=1e-7)
        features = np.mean(np.asarray(carry[1][0]), axis=(1, 2))
        fc = variables["params"]["fc"]
        logits = features @ np.asarray(fc["kernel"]) + np.asarray(fc["bias"])
    np.testing.assert_allclose(out["features"], features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-5, atol=1e-6)


def test_train_mode_only_makes_dropout_stochastic(small):
    model, variables, clip = small
    eval_out = model(variables, clip)
    # No `mutable=['batch_stats']` needed: BatchNorm stays in inference mode with train=True (reference 5).
    a = model(variables, clip, train=True, rngs={"dropout": jax.random.key(1)})
    b = model(variables, clip, train=True, rngs={"dropout": jax.random.key(2)})
    np.testing.assert_allclose(a["features"], eval_out["features"], rtol=1e-6)
    np.testing.assert_allclose(a["attention"], eval_out["attention"], rtol=1e-6)
    assert not np.allclose(a["logits"], b["logits"])
    with pytest.raises(Exception, match="dropout"):
        model(variables, clip, train=True)


def test_remat_bfloat16_and_registry(small):
    model, variables, clip = small
    ref = model(variables, clip)
    remat = create_model("lsta_rgb", **SMALL, remat=True)
    np.testing.assert_allclose(
        jit_apply(remat)(variables, clip)["logits"], ref["logits"], rtol=1e-5, atol=1e-6
    )
    bf16 = create_model("lsta_rgb", **SMALL, dtype="bfloat16")
    out = jit_apply(bf16)(variables, clip)
    assert out["logits"].dtype == jnp.float32 and np.all(np.isfinite(out["logits"]))
    with pytest.raises(ValueError, match="mem_size"):
        jax.eval_shape(create_model("lsta_rgb", **{**SMALL, "mem_size": 64}).init, jax.random.key(0), clip)
    with pytest.raises(ValueError, match="unknown lsta_rgb config keys"):
        create_model("lsta_rgb", bogus=1)
    with pytest.raises(ValueError, match="unknown LSTA variant"):
        jax.eval_shape(create_model("lsta_rgb", **SMALL, variant="nope").init, jax.random.key(0), clip)


def test_gate_biases_reach_the_cell(small):
    model, variables, clip = small
    ref = model(variables, clip)
    zero = {g: jnp.zeros((2, 3, 1, 1, 32)) for g in ("x_flow_i", "x_flow_f", "x_flow_c")}
    np.testing.assert_allclose(model(variables, clip, gate_biases=zero)["logits"], ref["logits"], rtol=1e-6)
    ones = dict(zero, x_flow_c=jnp.ones((2, 3, 1, 1, 32)))
    assert not np.allclose(model(variables, clip, gate_biases=ones)["features"], ref["features"])
    only_o = {"x_flow_o": jnp.ones((2, 3, 1, 1, 32))}  # accepted and ignored, as in the authors' cell
    np.testing.assert_allclose(model(variables, clip, gate_biases=only_o)["logits"], ref["logits"], rtol=1e-6)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variants_build_with_the_documented_parameters(small, variant):
    _, _, clip = small
    attention_on, output_on, bias_on = VARIANTS[variant]
    model = create_model("lsta_rgb", **SMALL, variant=variant)
    variables = random_variables(model, clip)
    model = jit_apply(model)
    cell = set(variables["params"]["lsta_cell"])
    assert set(variables["params"]) == {"resNet", "lsta_cell", "fc"}
    assert "fc" in variables["params"]["resNet"]
    assert ("conv_i_s" in cell) == attention_on and ("conv_o_cam" in cell) == attention_on
    assert ("c_classifier" in cell) == output_on
    assert ("coupling_fc" in cell) == bias_on
    out = model(variables, clip, return_selections=True)
    assert (np.asarray(out["attention_class"]) >= 0).all() == attention_on
    assert (np.asarray(out["pooling_class"]) >= 0).all() == output_on
    if not attention_on:
        np.testing.assert_allclose(out["attention"], 0.25)  # uniform over the 2x2 grid


def test_no_bias_control_equals_lsta_with_a_zero_coupling(small):
    model, variables, clip = small
    params = dict(variables["params"])
    cell = dict(params["lsta_cell"])
    zero_coupling = dict(cell, coupling_fc={"kernel": jnp.zeros_like(cell["coupling_fc"]["kernel"])})
    without = {k: v for k, v in cell.items() if k != "coupling_fc"}
    full = model({**variables, "params": {**params, "lsta_cell": zero_coupling}}, clip)
    ablated = create_model("lsta_rgb", **SMALL, variant="no_bias_control")
    out = jit_apply(ablated)({**variables, "params": {**params, "lsta_cell": without}}, clip)
    np.testing.assert_allclose(out["logits"], full["logits"], rtol=1e-6)
