"""ego-rnn's joint two-stream model (kind `egornn_two_stream`, docs/differences.md §4.4) vs our torch
transcription; strict conversion; ego-rnn's BatchNorm protocol (only the flow layer4 in training mode); late
fusion."""

from __future__ import annotations

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch_fixtures import numpy_state_dict, rel_diff  # noqa: E402

from lsta_jax.convert import ConversionError  # noqa: E402
from lsta_jax.convert.ego_rnn_two_stream import convert_state_dict, export_state_dict  # noqa: E402
from lsta_jax.models import create_model  # noqa: E402
from lsta_jax.reference.torch_ego_rnn import TorchEgoRNNTwoStream  # noqa: E402
from lsta_jax.reference.torch_resnet import randomize_batch_norm  # noqa: E402

SMALL = dict(
    num_classes=5, mem_size=16, attention_classes=11, stage_sizes=(1, 1, 1, 1), widths=(8, 8, 16, 16)
)
TOL = 1e-4


def _torch_two_stream(seed: int = 0) -> TorchEgoRNNTwoStream:
    torch.manual_seed(seed)
    model = TorchEgoRNNTwoStream(**SMALL)
    generator = torch.Generator().manual_seed(seed + 1)
    randomize_batch_norm(
        model.flowModel, seed, calibration_input=torch.randn(4, 10, 48, 48, generator=generator)
    )
    randomize_batch_norm(
        model.frameModel.resNet, seed + 2, calibration_input=torch.randn(4, 3, 48, 48, generator=generator)
    )
    return model.eval()


def _inputs(seed: int = 0, batch: int = 2, steps: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clip = rng.standard_normal((batch, steps, 48, 48, 3), dtype=np.float32)
    flow = rng.standard_normal((batch, 48, 48, 10), dtype=np.float32)
    return clip, flow


def _torch_clip(clip: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.transpose(clip, (1, 0, 4, 2, 3))))  # (T, B, 3, H, W)


def _torch_flow(flow: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.transpose(flow, (0, 3, 1, 2))))


def test_two_stream_state_dict_layout():
    keys = [k for k in TorchEgoRNNTwoStream().state_dict() if "num_batches" not in k]
    # flow_resnet34 (182) + ego-rnn RGB (199, with weight_softmax, classifier.1.*) + fc2 + classifier.1
    assert len(keys) == 182 + 199 + 4
    assert sum(k.startswith("flowModel.") for k in keys) == 182
    assert sum(k.startswith("frameModel.") for k in keys) == 199
    assert keys[-4:] == ["fc2.weight", "fc2.bias", "classifier.1.weight", "classifier.1.bias"]
    assert tuple(TorchEgoRNNTwoStream().state_dict()["fc2.weight"].shape) == (61, 1024)


def test_egornn_two_stream_matches_the_torch_reference_and_round_trips():
    torch_model = _torch_two_stream()
    state = numpy_state_dict(torch_model)
    converted = convert_state_dict(state)
    assert converted.kind == "egornn_two_stream" and converted.config["num_classes"] == 5
    assert set(converted.variables["params"]) == {"flowModel", "frameModel", "fc2"}
    exported = export_state_dict(converted.config, converted.variables)
    assert sorted(exported) == sorted(state) and all(np.array_equal(exported[k], state[k]) for k in state)

    clip, flow = _inputs()
    with torch.no_grad():
        ref = torch_model(_torch_flow(flow), _torch_clip(clip))
        ref_flow = torch_model.flowModel(_torch_flow(flow), details=True)
        ref_rgb = torch_model.frameModel(_torch_clip(clip), details=True)
    model = create_model(converted.kind, **converted.config)
    with jax.default_matmul_precision("highest"):
        ours = jax.jit(model.apply)(converted.variables, clip, flow)
    assert rel_diff(ours["logits"], ref.numpy()) <= TOL
    features = np.concatenate([ref_flow["features"].numpy(), ref_rgb["features"].numpy()], axis=1)
    assert rel_diff(ours["features"], features) <= TOL
    assert rel_diff(ours["flow_logits"], ref_flow["logits"].numpy()) <= TOL
    assert rel_diff(ours["rgb_logits"], ref_rgb["logits"].numpy()) <= TOL
    assert rel_diff(ours["attention"], np.swapaxes(ref_rgb["attention"].numpy(), 0, 1)) <= TOL

    with pytest.raises(ConversionError, match="classifier.1.weight differs from fc2.weight"):
        convert_state_dict(dict(state, **{"classifier.1.weight": state["fc2.weight"] + 1}))
    with pytest.raises(ConversionError, match="frameModel.weight_softmax differs"):
        convert_state_dict(
            dict(state, **{"frameModel.weight_softmax": state["frameModel.weight_softmax"] * 2})
        )
    with pytest.raises(ConversionError) as err:
        convert_state_dict(dict(state, **{"flowModel.fc.weight": np.zeros((5, 16), np.float32)}))
    assert err.value.unexpected == ["flowModel.fc.weight"]
    rgb_only = {k[len("frameModel.") :]: v for k, v in state.items() if k.startswith("frameModel.")}
    with pytest.raises(ConversionError, match="not an ego-rnn two-stream state dict"):
        convert_state_dict(rgb_only)


def test_training_mode_updates_only_the_flow_layer4_statistics_as_ego_rnn():
    """main-run-twoStream.py: model.train(False), then flowModel.layer4.train(True) (and the classifier)."""
    torch_model = _torch_two_stream(seed=3)
    state = numpy_state_dict(torch_model)
    converted = convert_state_dict(state)
    clip, flow = _inputs(seed=4, batch=4, steps=2)
    torch_model.flowModel.layer4.train(True)
    with torch.no_grad():
        ref_flow = torch_model.flowModel(_torch_flow(flow), details=True)
    after = numpy_state_dict(torch_model)

    def train_apply(model):  # one jitted forward in training mode, the batch statistics mutable
        return jax.jit(
            lambda v, c, f: model.apply(
                v, c, f, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(0)}
            )
        )

    model = create_model(converted.kind, **{**converted.config, "dropout_rate": 0.0})
    with jax.default_matmul_precision("highest"):
        ours, updated = train_apply(model)(converted.variables, clip, flow)
    assert rel_diff(ours["features"][:, :16], ref_flow["features"].numpy()) <= TOL
    old, new = converted.variables["batch_stats"], updated["batch_stats"]
    changed = {
        jax.tree_util.keystr(path)
        for path, same in jax.tree_util.tree_leaves_with_path(
            jax.tree_util.tree_map(np.array_equal, old, new)
        )
        if not same
    }
    assert changed and all(name.startswith("['flowModel']['layer4_0']") for name in changed), sorted(changed)
    # the running mean of layer4's first BN moves as torch's (momentum 0.1)
    np.testing.assert_allclose(
        new["flowModel"]["layer4_0"]["bn1"]["mean"],
        after["flowModel.layer4.0.bn1.running_mean"],
        rtol=1e-4,
        atol=1e-5,
    )
    frozen = create_model(converted.kind, **{**converted.config, "batchnorm": "frozen"})
    _, kept = train_apply(frozen)(converted.variables, clip, flow)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, kept["batch_stats"], old))


def test_late_fusion_is_the_hand_computed_average():
    from lsta_jax.data.transforms import flow_segment_starts
    from lsta_jax.models.two_stream import late_fusion

    rgb = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 4.0]], np.float32)
    flow = np.array(
        [[[0.0, 3.0, 0.0], [0.0, 1.0, 2.0]], [[1.0, 1.0, 1.0], [3.0, -1.0, 1.0]]], np.float32
    )  # (B=2, S=2 stacks, M=3)
    # by hand: 0.5 * mean over stacks of the raw flow logits + 0.5 * the raw RGB logits
    expected = np.array([[1.0, 1.0, 0.0], [1.25, 0.25, 2.5]], np.float32)
    np.testing.assert_allclose(late_fusion(rgb, flow), expected, rtol=1e-6)
    np.testing.assert_allclose(late_fusion(rgb, flow[:, 0]), 0.5 * rgb + 0.5 * flow[:, 0], rtol=1e-6)
    np.testing.assert_allclose(late_fusion(rgb, flow, flow_weight=1.0), flow.mean(axis=1), rtol=1e-6)
    with pytest.raises(ValueError, match="late fusion needs"):
        late_fusion(rgb, flow[:, :, :2])
    # ego-rnn's stack starts: int(linspace(1, N - 5, numSegs)), endpoint included
    assert flow_segment_starts(30, 10).tolist() == [1, 3, 6, 9, 11, 14, 17, 19, 22, 25]
    assert flow_segment_starts(6, 3).tolist() == [1, 1, 1] and flow_segment_starts(5, 2).tolist() == [1, 1]
