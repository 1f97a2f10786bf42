"""The LSTA motion stream (`lsta_flow`, paper 5.2) and the cross-modal two-stream model (`lsta_two_stream`,
paper 5.3) against our plain-torch transcriptions; a zero cross-modal bias reproduces the RGB model; the fused
output is the mean of the two streams'."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch_fixtures import images, numpy_state_dict, rel_diff, to_nhwc  # noqa: E402

from lsta_jax.checkpoint import abstract_variables  # noqa: E402
from lsta_jax.convert.lsta import merge_duplicates  # noqa: E402
from lsta_jax.convert.mapping import fill_variables  # noqa: E402
from lsta_jax.convert.two_stream import lsta_flow_name_map, lsta_two_stream_name_map  # noqa: E402
from lsta_jax.models import create_model  # noqa: E402
from lsta_jax.reference.torch_resnet import randomize_batch_norm  # noqa: E402
from lsta_jax.reference.torch_two_stream import TorchCrossModalTwoStream, TorchLSTAFlow  # noqa: E402

LAYOUT = dict(backbone_stage_sizes=[1, 1, 1, 1], backbone_widths=[8, 16, 16, 32])
FLOW = dict(num_classes=5, verb_classes=4, **LAYOUT)
TWO = dict(
    num_classes=5,
    mem_size=32,
    c_cam_classes=6,
    attention_classes=9,
    verb_classes=4,
    summary_features=12,
    flow_mem_size=32,
    **LAYOUT,
)
TOL = 1e-4


def torch_layout(config):
    return dict(stage_sizes=config["backbone_stage_sizes"], widths=config["backbone_widths"])


def calibrated(model, inputs, seed):
    """Non-trivial BN statistics (measured on `inputs`, then perturbed); eval mode."""
    return randomize_batch_norm(model, seed=seed, calibration_input=inputs)


def to_flax(kind, config, state, name_map):
    model = create_model(kind, **config)
    return model, fill_variables(state, name_map, abstract_variables(model, kind, config))


@pytest.fixture(scope="module")
def flow_stream():
    torch.manual_seed(0)
    ref = TorchLSTAFlow(5, 4, 10, **torch_layout(FLOW))
    ref.resNet = calibrated(
        ref.resNet, torch.randn(4, 10, 64, 64, generator=torch.Generator().manual_seed(1)), 0
    )
    ref.eval()
    model, variables = to_flax("lsta_flow", FLOW, numpy_state_dict(ref), lsta_flow_name_map(FLOW))
    return ref, model, variables


def test_motion_stream_matches_torch(flow_stream):
    ref, model, variables = flow_stream
    x = images((3, 10, 48, 40), seed=2)
    with jax.default_matmul_precision("highest"):
        ours = jax.jit(model.apply, static_argnames="return_selections")(
            variables, jnp.asarray(to_nhwc(x)), return_selections=True
        )
    with torch.no_grad():
        want = ref(torch.from_numpy(x))
    assert ours["attention_class"][:, 0].tolist() == want["attention_class"].tolist()
    assert ours["attention"].shape == (3, 1, 2, 2)  # like the RGB maps (B, T, h, w), one map per stack
    np.testing.assert_allclose(np.sum(ours["attention"], axis=(2, 3)), 1.0, rtol=1e-5)
    assert rel_diff(ours["attention"][:, 0], want["attention"].numpy()) <= TOL
    assert rel_diff(ours["features"], want["features"].numpy()) <= TOL
    assert rel_diff(ours["logits"], want["logits"].numpy()) <= TOL
    # the selector is the verb network's fc_action: its argmax over the pooled trunk feature
    trunk = ref.resNet(torch.from_numpy(x), details=True)
    assert want["attention_class"].tolist() == trunk["logits"].argmax(1).tolist()


def test_stage_a_network_is_the_motion_streams_resNet_subtree(flow_stream):
    """A trained `egornn_flow` (stage (a), verbs) has exactly the tree of `lsta_flow`'s `resNet`."""
    _, model, variables = flow_stream
    verb_net = create_model("egornn_flow", num_classes=4, **LAYOUT)
    stage_a = abstract_variables(verb_net, "egornn_flow", {"num_classes": 4, **LAYOUT})
    for collection in ("params", "batch_stats"):
        want = jax.tree_util.tree_map(lambda a: a.shape, stage_a[collection])
        have = jax.tree_util.tree_map(np.shape, variables[collection]["resNet"])
        assert want == have, collection
    assert set(variables["params"]) == {"resNet", "fc"}


@pytest.fixture(scope="module")
def two_stream():
    torch.manual_seed(0)
    ref = TorchCrossModalTwoStream(
        5, 32, 6, 9, 4, 10, **torch_layout(TWO), summary_features=12, flow_mem_size=32
    )
    gen = torch.Generator().manual_seed(3)
    ref.frameModel.resNet = calibrated(ref.frameModel.resNet, torch.randn(4, 3, 64, 64, generator=gen), 1)
    ref.flowModel.resNet = calibrated(ref.flowModel.resNet, torch.randn(4, 10, 64, 64, generator=gen), 2)
    with torch.no_grad():  # non-zero fusion biases and larger fusion weights, so every path matters
        for name, p in ref.named_parameters():
            if name.startswith(("conv_x_", "rgb_summary", "flow_lstm_cell")) and name.endswith("bias"):
                p.normal_(0.0, 0.3, generator=gen)
    ref.eval()
    state = merge_duplicates(
        {
            k.removeprefix("frameModel."): v
            for k, v in numpy_state_dict(ref).items()
            if k.startswith("frameModel.")
        }
    )
    state = {f"frameModel.{k}": v for k, v in state.items()} | {
        k: v for k, v in numpy_state_dict(ref).items() if not k.startswith("frameModel.")
    }
    model, variables = to_flax("lsta_two_stream", TWO, state, lsta_two_stream_name_map(TWO))
    return ref, jax.jit(model.apply, static_argnames="return_selections"), variables


def run(apply, variables, clip, flow):
    with jax.default_matmul_precision("highest"):
        return apply(variables, jnp.asarray(clip), jnp.asarray(flow), return_selections=True)


def test_cross_modal_two_stream_matches_torch(two_stream):
    ref, model, variables = two_stream
    clip = images((3 * 2, 3, 48, 40), seed=4).reshape(3, 2, 3, 48, 40)  # (T, B, 3, H, W)
    flow = images((2, 10, 48, 40), seed=5)
    ours = run(model, variables, np.stack([to_nhwc(c) for c in clip], axis=1), to_nhwc(flow))
    with torch.no_grad():
        want = ref(torch.from_numpy(clip), torch.from_numpy(flow))
    assert ours["attention_class"].T.tolist() == want["attention_class"].tolist()
    assert ours["pooling_class"].T.tolist() == want["pooling_class"].tolist()
    assert ours["flow_attention_class"][:, 0].tolist() == want["flow_attention_class"].tolist()
    assert rel_diff(np.swapaxes(ours["attention"], 0, 1), want["attention"].numpy()) <= TOL
    assert rel_diff(ours["flow_attention"][:, 0], want["flow_attention"].numpy()) <= TOL
    for key in ("rgb_logits", "flow_logits", "logits"):
        assert rel_diff(ours[key], want[key].numpy()) <= TOL, key
    # the fused output is the late average of the two streams' outputs
    np.testing.assert_allclose(ours["logits"], (ours["rgb_logits"] + ours["flow_logits"]) / 2, rtol=1e-6)
    assert ours["features"].shape == (2, 32 + 32)


def test_zero_cross_modal_bias_reproduces_the_rgb_model_exactly(two_stream):
    _, model, variables = two_stream
    params = dict(variables["params"])
    for g in "ifc":  # the flow -> LSTA gate-bias convs at zero (their 'zeros' initialisation)
        params[f"conv_x_flow_{g}"] = jax.tree_util.tree_map(np.zeros_like, params[f"conv_x_flow_{g}"])
    zeroed = {**variables, "params": params}
    rgb_config = {k: TWO[k] for k in ("num_classes", "mem_size", "c_cam_classes", "attention_classes")}
    rgb_model = create_model("lsta_rgb", **rgb_config, **LAYOUT)
    rgb_variables = {c: variables[c]["frameModel"] for c in ("params", "batch_stats")}
    clip = np.asarray(images((2 * 3, 48, 40, 3), seed=6)).reshape(2, 3, 48, 40, 3)  # the parity test's shapes
    flow = np.asarray(images((2, 48, 40, 10), seed=7))
    with jax.default_matmul_precision("highest"):
        alone = jax.jit(rgb_model.apply)(rgb_variables, jnp.asarray(clip))
    fused = run(model, zeroed, clip, flow)
    np.testing.assert_array_equal(fused["rgb_logits"], alone["logits"])
    np.testing.assert_array_equal(fused["attention"], alone["attention"])
    # and the biases matter when they are not zero
    assert np.abs(run(model, variables, clip, flow)["rgb_logits"] - alone["logits"]).max() > 1e-3


def test_two_stream_trees_are_the_streams_trees():
    """`frameModel` is exactly an `lsta_rgb` tree and `flowModel` an `lsta_flow` tree (trained workdirs of
    the two streams graft in unchanged)."""
    model = create_model("lsta_two_stream", **TWO)
    clip, flow = jnp.zeros((1, 2, 48, 40, 3)), jnp.zeros((1, 48, 40, 10))
    shapes = jax.eval_shape(model.init, jax.random.key(0), clip, flow)
    rgb_config = {k: TWO[k] for k in ("num_classes", "mem_size", "c_cam_classes", "attention_classes")}
    rgb_shapes = jax.eval_shape(
        create_model("lsta_rgb", **rgb_config, **LAYOUT).init, jax.random.key(0), clip
    )
    flow_shapes = jax.eval_shape(create_model("lsta_flow", **FLOW).init, jax.random.key(0), flow)

    def shape(tree):
        return jax.tree_util.tree_map(lambda a: a.shape, tree)

    for collection in ("params", "batch_stats"):
        assert shape(shapes[collection]["frameModel"]) == shape(rgb_shapes[collection])
        assert shape(shapes[collection]["flowModel"]) == shape(flow_shapes[collection])
    fusion = set(shapes["params"]) - {"frameModel", "flowModel"}
    assert fusion == {
        *(f"conv_x_flow_{g}" for g in "ifc"),
        *(f"conv_x_rgb_{g}" for g in "ifco"),
        "rgb_summary",
        "flow_lstm_cell",
    }
    assert shapes["params"]["rgb_summary"]["kernel"].shape == (3, 3, 3, 32, 12)  # (t, h, w, K, C_s)
