"""The LSTA RGB classifier (docs/differences.md §2.1): composition, shapes, modes, variants; torch parity.

Parity with the torch reference at full size (ResNet-34, 224x224, small T) is at the end of this file;
everything else uses a small backbone to stay fast.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsta_jax.models import create_model, selector
from lsta_jax.models.cells import LSTACell
from lsta_jax.models.lsta import VARIANTS, LSTAClassifier, scan_unroll_steps
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
    """Backbone per frame -> ς -> cell step by step in a Python loop -> mean(c_T) -> fc (docs/differences.md
    §2.1)."""
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
    # No `mutable=['batch_stats']` needed: BatchNorm stays in inference mode with train=True
    # (docs/differences.md §5).
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
    with pytest.raises(ValueError, match="unknown LSTAClassifier config keys"):
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


# ------------------------------------------------------------------------------------------------------------
# Parity with the PyTorch reference (docs/differences.md §2.1-2.5) at full size: ResNet-34, 224x224, T=2,
# float32.

torch = pytest.importorskip("torch")


def calibrated_torch_model(seed: int = 0, num_classes: int = 61):
    """Random weights; BN affine random and running stats calibrated on random images, then perturbed."""
    from lsta_jax.reference.torch_lsta import TorchLSTAModel
    from lsta_jax.reference.torch_resnet import randomize_batch_norm

    torch.manual_seed(seed)
    model = TorchLSTAModel(num_classes=num_classes, c_cam_classes=100)
    randomize_batch_norm(model.resNet, seed, calibration_input=torch.randn(4, 3, 224, 224))
    return model.eval()


def relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


LABELS = np.array([3, 17])
STAGE1 = ("lsta_cell", "fc")


def torch_forward_backward(model, clip):
    """Reference outputs (batch-major) and d CE / d parameter of every parameter (dropout off: eval mode)."""
    model.zero_grad()
    time_major = torch.from_numpy(np.ascontiguousarray(np.transpose(clip, (1, 0, 4, 2, 3))))
    out = model.eval()(time_major.to(next(model.parameters()).dtype), details=True)
    torch.nn.functional.cross_entropy(out["logits"], torch.from_numpy(LABELS)).backward()
    outputs = {k: v.detach().double().numpy() for k, v in out.items()}
    for key in ("attention", "attention_class", "pooling_class", "frame_features"):
        outputs[key] = np.swapaxes(outputs[key], 0, 1)
    grads = {k: None if p.grad is None else p.grad.double().numpy() for k, p in model.named_parameters()}
    return outputs, grads


@pytest.fixture(scope="module")
def parity():
    """One run of everything (ResNet-34, 224x224, B=2, T=3): JAX forward + jax.grad in one compile; torch
    float32 and float64 forward + backward."""
    import copy

    from lsta_jax.convert.lsta import convert_state_dict

    torch_model = calibrated_torch_model()
    torch_model.resNet.requires_grad_(False)  # stage 1: the backbone is frozen; skip its weight gradients
    state_dict = {k: v.numpy() for k, v in torch_model.state_dict().items() if "num_batches" not in k}
    converted = convert_state_dict(state_dict)
    clip = np.random.default_rng(1).normal(size=(2, 3, 224, 224, 3)).astype(np.float32)
    ref32 = torch_forward_backward(torch_model, clip)
    ref64 = torch_forward_backward(copy.deepcopy(torch_model).double(), clip.astype(np.float64))

    model, variables = create_model(converted.kind, **converted.config), converted.variables

    def loss(trainable, frozen, clip):  # everything an argument: closed-over arrays get constant-folded
        params = {**frozen["params"], **trainable}
        out = model.apply(
            {"params": params, "batch_stats": frozen["batch_stats"]},
            clip,
            return_selections=True,
            return_frame_features=True,
        )
        log_probs = jax.nn.log_softmax(out["logits"])
        return -jnp.mean(jnp.take_along_axis(log_probs, LABELS[:, None], axis=1)), out

    trainable = {k: variables["params"][k] for k in STAGE1}
    frozen = {"params": {k: v for k, v in variables["params"].items() if k not in STAGE1}}
    frozen["batch_stats"] = variables["batch_stats"]
    with jax.default_matmul_precision("highest"):
        (_, outputs), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(trainable, frozen, clip)
    return converted, (jax.tree_util.tree_map(np.asarray, outputs), grads), ref32, ref64


def test_forward_parity_with_the_torch_reference_at_full_size(parity):
    _, (ours, _), (ref, _), _ = parity
    # Selections first: after a differing argmax the values are not comparable.
    assert ours["attention_class"].tolist() == ref["attention_class"].tolist()
    assert ours["pooling_class"].tolist() == ref["pooling_class"].tolist()
    assert len(np.unique(ref["pooling_class"])) > 1 or len(np.unique(ref["attention_class"])) > 1
    for key in ("logits", "features", "attention", "frame_features"):
        rel = relative(ours[key], ref[key])
        print(f"forward parity {key}: max abs {np.max(np.abs(ours[key] - ref[key])):.3e}, max rel {rel:.3e}")
        assert rel <= 1e-4, f"{key}: max relative difference {rel:.2e}"


def test_gradient_parity_for_the_stage1_parameters(parity):
    """d CE / d (lsta_cell, fc), dropout off: jax.grad vs torch autograd (float32), both vs torch float64.

    The attention convs' gradients pass through the spatial softmax and are tiny (1e-7..1e-4), so float32
    round-off alone moves them by ~1e-4 relative: torch float32 itself is that far from float64. The test
    therefore bounds JAX's distance to torch float32 and to the float64 truth at 2e-4 and prints all three.
    """
    from lsta_jax.convert.lsta import lsta_rgb_name_map
    from lsta_jax.convert.mapping import TRANSFORMS

    converted, (_, grads), (_, g32), (_, g64) = parity
    names = lsta_rgb_name_map(converted.config)
    worst = {"jax-torch32": 0.0, "jax-torch64": 0.0, "torch32-torch64": 0.0}
    checked = 0
    for key, target in names.items():
        if target.path[0] not in STAGE1:
            continue
        ours = grads
        for name in target.path:
            ours = ours[name]
        ours = np.asarray(ours)
        # coupling_fc: no gradient in the reference, zero in JAX (docs/differences.md §2.4)
        if g32[key] is None:
            assert key == "lsta_cell.coupling_fc.weight"
            np.testing.assert_array_equal(ours, 0.0)
            continue
        to_flax = TRANSFORMS[target.transform][0]
        r32, r64 = to_flax(g32[key]), to_flax(g64[key])
        assert np.max(np.abs(r64)) > 0, f"{key}: zero gradient, the test would be vacuous"
        errors = {"jax-torch32": relative(ours, r32), "jax-torch64": relative(ours, r64)}
        errors["torch32-torch64"] = relative(r32, r64)
        for name, value in errors.items():
            worst[name] = max(worst[name], value)
        assert errors["jax-torch32"] <= 2e-4 and errors["jax-torch64"] <= 2e-4, f"gradient of {key}: {errors}"
        checked += 1
    assert checked == 27  # 26 cell tensors minus coupling_fc, plus fc weight and bias
    print(
        "gradient parity, worst max rel over the stage-1 tensors: "
        + ", ".join(f"{k} {v:.2e}" for k, v in worst.items())
    )


@pytest.mark.parametrize("kind", ["lsta_rgb", "convlstm_rgb"])
def test_scan_unroll_changes_speed_not_numbers(kind):
    """Rolled loop (1), partial (2) and full unroll give the same outputs and the same parameter tree."""
    config = {k: v for k, v in SMALL.items() if kind == "lsta_rgb" or k != "c_cam_classes"}
    clip = jnp.asarray(np.random.default_rng(1).normal(size=(1, 3, 32, 32, 3)), jnp.float32)
    rolled = create_model(kind, **config, scan_unroll=1)
    variables = random_variables(rolled, clip)
    ref = jit_apply(rolled)(variables, clip)
    assert scan_unroll_steps("auto", 3) == 1
    assert scan_unroll_steps("full", 3) == 3
    assert scan_unroll_steps(5, 3) == 3
    for unroll in (2, "full"):
        model = create_model(kind, **config, scan_unroll=unroll)
        assert jax.tree_util.tree_structure(
            jax.eval_shape(model.init, jax.random.key(0), clip)
        ) == jax.tree_util.tree_structure(variables)
        out = jit_apply(model)(variables, clip)
        np.testing.assert_allclose(out["logits"], ref["logits"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["attention"], ref["attention"], rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="scan_unroll"):
        jax.eval_shape(create_model(kind, **config, scan_unroll=0).init, jax.random.key(0), clip)


@pytest.mark.parametrize("frames,max_frames", [(7, 3), (4, 2), (5, 1)])
def test_backbone_chunks_change_memory_not_numbers(frames, max_frames):
    """Inference with the backbone mapped over chunks of frames (`backbone_chunk`, incl. a padded last chunk)
    gives the outputs of one call over all frames, with the same parameter tree; its compiled temporary
    memory does not grow with the frames as the one-call version's does."""
    clip = jnp.asarray(np.random.default_rng(2).normal(size=(2, frames, 32, 32, 3)), jnp.float32)
    whole = create_model("lsta_rgb", **SMALL, backbone_chunk=0)
    chunked = create_model("lsta_rgb", **SMALL, backbone_chunk=max_frames)
    variables = random_variables(whole, clip)
    assert jax.tree_util.tree_structure(
        jax.eval_shape(chunked.init, jax.random.key(0), clip)
    ) == jax.tree_util.tree_structure(variables)
    ref = jit_apply(whole)(variables, clip, return_selections=True, return_frame_features=True)
    out = jit_apply(chunked)(variables, clip, return_selections=True, return_frame_features=True)
    for key in ("logits", "attention", "frame_features"):
        np.testing.assert_allclose(out[key], ref[key], rtol=1e-5, atol=1e-6, err_msg=key)
    np.testing.assert_array_equal(out["attention_class"], ref["attention_class"])


def test_backbone_chunks_keep_inference_memory_flat():
    """Compiled temporaries at 4 and 16 frames: they grow ~4x with one backbone call, far less with chunks."""

    def temp_bytes(model, frames):
        clip = jax.ShapeDtypeStruct((1, frames, 64, 64, 3), jnp.float32)
        shapes = jax.eval_shape(
            model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 1, 64, 64, 3), jnp.float32)
        )
        compiled = jax.jit(lambda v, c: model.apply(v, c)["logits"]).lower(shapes, clip).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    whole = create_model("lsta_rgb", **SMALL, backbone_chunk=0)
    chunked = create_model("lsta_rgb", **SMALL, backbone_chunk=2)
    assert temp_bytes(whole, 16) > 3 * temp_bytes(whole, 4)
    assert temp_bytes(chunked, 16) < 1.5 * temp_bytes(chunked, 4)
