"""ego-rnn's flow network (kind `egornn_flow`, docs/differences.md §4.2) vs our torch transcription; strict
conversion; BatchNorm in training mode (ego-rnn's protocol); the flow flip sign of the data pipeline."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch_fixtures import images, numpy_state_dict, rel_diff, to_nhwc  # noqa: E402

import lsta_jax  # noqa: E402
from lsta_jax.checkpoint import MODEL_JSON  # noqa: E402
from lsta_jax.convert import ConversionError  # noqa: E402
from lsta_jax.convert.__main__ import main as convert_main  # noqa: E402
from lsta_jax.convert.ego_rnn_flow import convert_state_dict, export_state_dict  # noqa: E402
from lsta_jax.models import create_model  # noqa: E402
from lsta_jax.reference.torch_ego_rnn import TorchFlowResNet  # noqa: E402
from lsta_jax.reference.torch_resnet import randomize_batch_norm  # noqa: E402

SMALL = dict(stage_sizes=(1, 1, 1, 1), widths=(8, 16, 16, 32))
TOL = 1e-4


def _torch_flow(seed: int = 0, num_classes: int = 7, **layout) -> TorchFlowResNet:
    torch.manual_seed(seed)
    model = TorchFlowResNet(num_classes=num_classes, **layout)
    calibration = torch.randn(4, 10, 64, 64, generator=torch.Generator().manual_seed(seed + 1))
    return randomize_batch_norm(model, seed=seed, calibration_input=calibration)


def test_flow_state_dict_layout_is_flow_resnet34s():
    keys = [k for k in TorchFlowResNet().state_dict() if "num_batches" not in k]
    # torchvision ResNet-34 minus fc (180 keys) plus fc_action, no prefix
    assert (
        len(keys) == 182 and keys[0] == "conv1.weight" and keys[-2:] == ["fc_action.weight", "fc_action.bias"]
    )
    assert not any(k.startswith("fc.") for k in keys)
    assert tuple(TorchFlowResNet().state_dict()["conv1.weight"].shape) == (64, 10, 7, 7)


def test_cli_converts_flow_resnet34_and_load_model_matches_torch(tmp_path, capsys):
    torch_model = _torch_flow(num_classes=61)
    source = tmp_path / "model_flow_state_dict.pth"
    torch.save(torch_model.state_dict(), source)  # ego-rnn saves the bare state dict
    out = tmp_path / "flow"
    assert (
        convert_main(["--kind", "egornn_flow", "--torch-checkpoint", str(source), "--output", str(out)]) == 0
    )
    assert "torch keys consumed: 182/182" in capsys.readouterr().out
    meta = json.loads((out / MODEL_JSON).read_text())
    assert meta["kind"] == "egornn_flow" and meta["config"]["num_classes"] == 61
    assert meta["config"]["in_channels"] == 10 and meta["config"]["batchnorm"] == "train"

    model, variables = lsta_jax.load_model(out)
    x = images((2, 10, 64, 64), seed=3)
    with jax.default_matmul_precision("highest"):
        ours = jax.jit(model.apply)(variables, jnp.asarray(to_nhwc(x)))  # inference: no rngs, no mutable
    with torch.no_grad():
        ref = torch_model(torch.from_numpy(x), details=True)
    assert set(ours) == {"logits", "features", "layer4"}
    for key in ("logits", "features"):
        assert rel_diff(ours[key], ref[key].numpy()) <= TOL, key
    assert rel_diff(ours["layer4"], to_nhwc(ref["layer4"])) <= TOL


def test_conversion_is_strict_and_round_trips():
    state = numpy_state_dict(_torch_flow(**SMALL))
    converted = convert_state_dict(state)
    assert converted.config["backbone_stage_sizes"] == [1, 1, 1, 1] and converted.config["num_classes"] == 7
    exported = export_state_dict(converted.config, converted.variables)
    assert list(exported) == list(state)
    assert all(np.array_equal(exported[k], state[k]) for k in state)

    with pytest.raises(ConversionError) as err:
        convert_state_dict({**state, "fc.weight": np.zeros((5, 32), np.float32)})
    assert err.value.unexpected == ["fc.weight"]
    broken = dict(state)
    del broken["layer2.0.downsample.1.running_var"]
    with pytest.raises(ConversionError) as err:
        convert_state_dict(broken)
    assert err.value.missing == ["layer2.0.downsample.1.running_var"]
    rgb_like = {k: v for k, v in state.items() if not k.startswith("fc_action")}
    with pytest.raises(ConversionError, match="not an ego-rnn flow_resnet34 state dict: no fc_action.weight"):
        convert_state_dict(rgb_like)


def test_batchnorm_train_mode_matches_torch_and_frozen_keeps_statistics():
    torch_model = _torch_flow(**SMALL)
    before = numpy_state_dict(torch_model)
    converted = convert_state_dict(before)
    x = images((4, 10, 48, 48), seed=9)
    torch_model.train()  # ego-rnn: model.train(True) while training the flow network
    torch_model.dp.p = 0.0  # compare the deterministic part; the dropout mask is each framework's own
    with torch.no_grad():
        ref = torch_model(torch.from_numpy(x), details=True)
    after = numpy_state_dict(torch_model)
    model = create_model("egornn_flow", **{**converted.config, "dropout_rate": 0.0})
    with jax.default_matmul_precision("highest"):
        ours, updated = model.apply(
            converted.variables,
            to_nhwc(x),
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": jax.random.key(0)},
        )
    assert rel_diff(ours["features"], ref["features"].numpy()) <= TOL
    assert rel_diff(ours["logits"], ref["logits"].numpy()) <= TOL
    # Running statistics: torch momentum 0.1 == flax momentum 0.9. torch's running_var uses the unbiased batch
    # variance, Flax's the biased one (the known difference of tests/test_resnet.py): unbias to compare.
    stats = updated["batch_stats"]
    for torch_key, flax_stats, n in (
        ("bn1", stats["bn1"], 4 * 24 * 24),
        ("layer4.0.bn2", stats["layer4_0"]["bn2"], 4 * 2 * 2),
    ):
        old, new = before[f"{torch_key}.running_var"], after[f"{torch_key}.running_var"]
        expected_var = 0.9 * old + (new - 0.9 * old) * (n - 1) / n
        np.testing.assert_allclose(
            flax_stats["mean"], after[f"{torch_key}.running_mean"], rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(flax_stats["var"], expected_var, rtol=1e-4, atol=1e-6)

    frozen = create_model("egornn_flow", **{**converted.config, "batchnorm": "frozen"})
    out, kept = frozen.apply(
        converted.variables,
        to_nhwc(x),
        train=True,
        mutable=["batch_stats"],
        rngs={"dropout": jax.random.key(0)},
    )
    assert jax.tree_util.tree_all(
        jax.tree_util.tree_map(np.array_equal, kept["batch_stats"], converted.variables["batch_stats"])
    )
    with jax.default_matmul_precision("highest"):
        inference = frozen.apply(converted.variables, to_nhwc(x))
    np.testing.assert_allclose(out["features"], inference["features"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="batchnorm must be one of"):
        create_model("egornn_flow", **{**converted.config, "batchnorm": "eval"}).apply(
            converted.variables, to_nhwc(x)
        )


def _png(array: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_horizontal_flip_negates_the_x_flow_of_a_training_stack():
    """ego-rnn's RandomHorizontalFlip mirrors every flow image and inverts the x flow (v -> 255 - v), i.e.
    negates horizontal motion about 127.5; the y flow is only mirrored (docs/differences.md §4.2)."""
    from lsta_jax.data import pipeline as P
    from lsta_jax.data import transforms as T

    size, stack = 32, 5
    rng = np.random.default_rng(0)
    # 6 flow frames: a patch moving right by 10 units (x = 138) and down by 5 (y = 133) on a still background
    x = np.full((stack + 1, size, size), 128, np.uint8)
    y = np.full((stack + 1, size, size), 128, np.uint8)
    x[:, 4:12, 2:10] += 10
    y[:, 4:12, 2:10] += 5
    x += rng.integers(0, 3, x.shape, dtype=np.uint8)  # asymmetric texture so a missing mirror would show
    element = {
        "name": b"clip",
        "label": np.int32(3),
        "flow_x": [_png(f) for f in x],
        "flow_y": [_png(f) for f in y],
    }
    # a draw that flips, at scale 1 in the exact top-left corner: no crop and no resize
    seed = next(
        s
        for s in range(1000)
        if T.draw_train_params(np.random.default_rng(s)) == T.TrainDraw(True, 1.0, "tl")
    )
    geometry = P.ClipGeometry(crop_size=size, resize_shorter=size, modality="flow", flow_stack=stack)
    out = P.train_example(element, np.random.default_rng(seed), geometry)
    assert out["flow"].shape == (size, size, 2 * stack) and out["label"] == 3
    # only one stack fits 6 frames: frames 1..5, channels [x_1, y_1, ..., x_5, y_5]
    units = out["flow"] * T.FLOW_STD + T.FLOW_MEAN  # back to v / 255
    units = units * 255.0 - 127.5
    expected_x = 127.5 - x[:stack, :, ::-1].astype(np.float32)  # -(v - 127.5) of the mirrored image
    expected_y = y[:stack, :, ::-1].astype(np.float32) - 127.5
    np.testing.assert_allclose(np.moveaxis(units[..., 0::2], -1, 0), expected_x, atol=1e-3)
    np.testing.assert_allclose(np.moveaxis(units[..., 1::2], -1, 0), expected_y, atol=1e-3)
    # the moving patch is now on the right and moves LEFT (negative x flow), still down (positive y flow)
    patch = (slice(4, 12), slice(size - 10, size - 2))
    assert units[patch][..., 0::2].mean() < -9 and units[patch][..., 1::2].mean() > 4


def test_compare_command_checks_a_flow_checkpoint(tmp_path, capsys):
    from lsta_jax.compare import main as compare_main

    path = tmp_path / "model_flow_state_dict.pth"
    torch.save(_torch_flow(**SMALL).state_dict(), path)
    stacks = tmp_path / "stacks.npy"
    np.save(stacks, images((2, 10, 40, 40), seed=5).transpose(0, 2, 3, 1))
    assert (
        compare_main(["--kind", "egornn_flow", "--torch-checkpoint", str(path), "--clip", str(stacks)]) == 0
    )
    out = capsys.readouterr().out
    assert "OK" in out and all(f"\n{key} " in out for key in ("logits", "features", "layer4"))
    rgb = tmp_path / "rgb.pth"
    torch.save(
        {k: v for k, v in _torch_flow(**SMALL).state_dict().items() if not k.startswith("fc_action")}, rgb
    )
    assert compare_main(["--kind", "egornn_flow", "--torch-checkpoint", str(rgb)]) == 2
    assert "is not an ego-rnn flow checkpoint" in capsys.readouterr().err
