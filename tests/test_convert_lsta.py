"""Conversion of the authors' LSTA RGB checkpoints (docs/differences.md §2.5, §7): layout, file variants,
errors."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lsta_jax.convert import ConversionError  # noqa: E402
from lsta_jax.convert.__main__ import main as convert_main  # noqa: E402
from lsta_jax.convert.lsta import (  # noqa: E402
    convert_state_dict,
    export_state_dict,
    torch_model_from_state_dict,
)
from lsta_jax.reference.torch_lsta import TorchLSTAModel  # noqa: E402
from lsta_jax.reference.torch_resnet import randomize_batch_norm  # noqa: E402

SMALL = dict(num_classes=5, mem_size=32, c_cam_classes=7, attention_classes=11)
SMALL_BACKBONE = dict(stage_sizes=(1, 1, 1, 1), widths=(8, 16, 16, 32))
# The authors' cell registration order (docs/differences.md §2.5).
CELL_ORDER = [
    "c_classifier.weight",
    "coupling_fc.weight",
    *[f"conv_{g}_{p}" for g in "ifao" for p in ("s.weight", "s.bias", "cam.weight")],
    *[f"conv_{g}_{p}" for g in "ifco" for p in ("x.weight", "x.bias", "c.weight")],
]


def small_torch_model(seed=0):
    torch.manual_seed(seed)
    model = TorchLSTAModel(**SMALL, **SMALL_BACKBONE)
    randomize_batch_norm(model.resNet, seed, calibration_input=torch.randn(4, 3, 64, 64))
    return model.eval()


def numpy_state_dict(model, keep_num_batches=False):
    return {
        k: v.numpy().copy()
        for k, v in model.state_dict().items()
        if keep_num_batches or "num_batches" not in k
    }


def authors_file(path, model, legacy=True, wrapped=True, num_batches=False):
    """Save like the authors' main_rgb.py: wrapped training dict, legacy (PyTorch 0.3-era) serialisation."""
    state = {k: v for k, v in model.state_dict().items() if num_batches or "num_batches" not in k}
    obj = state
    if wrapped:
        obj = {
            "epoch": 200,
            "model_state_dict": state,
            "optimizer_state_dict": {"state": {}},
            "best_acc": 74.1,
        }
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def test_the_reference_has_the_authors_212_keys_in_their_order():
    state = TorchLSTAModel().state_dict()
    keys = [k for k in state if "num_batches" not in k]
    assert len(keys) == 212 and len(state) == 248  # docs/differences.md §2.5 (248 with num_batches_tracked)
    assert sum(k.startswith("resNet.") for k in keys) == 182
    assert [k[len("lsta_cell.") :] for k in keys if k.startswith("lsta_cell.")] == CELL_ORDER
    assert keys[-4:] == ["fc.weight", "fc.bias", "classifier.1.weight", "classifier.1.bias"]
    assert tuple(state["lsta_cell.c_classifier.weight"].shape) == (100, 512)
    assert tuple(state["lsta_cell.conv_o_s.weight"].shape) == (1, 1, 3, 3)


def test_full_size_conversion_reads_the_config_from_the_shapes():
    torch.manual_seed(0)
    model = TorchLSTAModel(num_classes=61, c_cam_classes=100)
    state = numpy_state_dict(model)
    converted = convert_state_dict(state)
    config = converted.config
    assert config["num_classes"] == 61 and config["c_cam_classes"] == 100 and config["mem_size"] == 512
    assert config["attention_classes"] == 1000
    assert config["backbone_stage_sizes"] == [3, 4, 6, 3] and config["backbone_widths"] == [64, 128, 256, 512]
    params = converted.variables["params"]
    # Layout: conv OIHW -> HWIO, Linear (out, in) -> (in, out); the o-gate swap is a plain rename.
    np.testing.assert_array_equal(
        params["lsta_cell"]["conv_o_x"]["kernel"], state["lsta_cell.conv_o_x.weight"].transpose(2, 3, 1, 0)
    )
    np.testing.assert_array_equal(params["lsta_cell"]["conv_o_x"]["bias"], state["lsta_cell.conv_o_x.bias"])
    np.testing.assert_array_equal(
        params["lsta_cell"]["coupling_fc"]["kernel"], state["lsta_cell.coupling_fc.weight"].T
    )
    np.testing.assert_array_equal(params["fc"]["kernel"], state["fc.weight"].T)
    np.testing.assert_array_equal(params["resNet"]["fc"]["bias"], state["resNet.fc.bias"])
    np.testing.assert_array_equal(
        converted.variables["batch_stats"]["resNet"]["layer4_2"]["bn2"]["var"],
        state["resNet.layer4.2.bn2.running_var"],
    )
    # The inverse map gives back every one of the 212 tensors exactly.
    exported = export_state_dict(config, converted.variables)
    assert list(exported) == list(state)  # same 212 keys in the same order
    for key, value in state.items():
        np.testing.assert_array_equal(exported[key], value, err_msg=key)


@pytest.mark.parametrize(
    "legacy, wrapped, num_batches", [(True, True, False), (False, False, True), (True, False, True)]
)
def test_cli_converts_authors_files_and_load_model_matches_the_reference(
    tmp_path, legacy, wrapped, num_batches
):
    from lsta_jax import load_model
    from lsta_jax.compare import compare_outputs, run_jax, run_torch

    model = small_torch_model()
    path = authors_file(tmp_path / "ckpt.pth.tar", model, legacy, wrapped, num_batches)
    out_dir = tmp_path / "converted"
    assert (
        convert_main(["--kind", "lsta_rgb", "--torch-checkpoint", str(path), "--output", str(out_dir)]) == 0
    )
    flax_model, variables = load_model(out_dir)
    clip = np.random.default_rng(0).normal(size=(2, 3, 64, 64, 3)).astype(np.float32)
    ok, report = compare_outputs(run_jax(flax_model, variables, clip), run_torch(model, clip), 1e-4)
    assert ok, report


def test_only_classifier_duplicate_present_is_read_as_fc():
    state = numpy_state_dict(small_torch_model())
    fc_weight = state.pop("fc.weight")
    state.pop("fc.bias")
    converted = convert_state_dict(state)
    np.testing.assert_array_equal(converted.variables["params"]["fc"]["kernel"], fc_weight.T)


def test_error_paths_name_what_is_wrong():
    state = numpy_state_dict(small_torch_model())
    # A missing and an unexpected key: both listed in one error.
    broken = dict(state)
    del broken["lsta_cell.conv_i_x.bias"]
    broken["lsta_cell.conv_z_x.weight"] = broken["lsta_cell.conv_i_x.weight"]
    with pytest.raises(ConversionError) as info:
        convert_state_dict(broken)
    assert info.value.missing == ["lsta_cell.conv_i_x.bias"]
    assert info.value.unexpected == ["lsta_cell.conv_z_x.weight"]
    assert "lsta_cell.conv_i_x.bias" in str(info.value)
    # A wrong shape.
    broken = dict(state, **{"lsta_cell.conv_o_c.weight": np.zeros((32, 32, 1, 1), np.float32)})
    with pytest.raises(ConversionError, match="lsta_cell.conv_o_c.weight"):
        convert_state_dict(broken)
    # The duplicate classifier.1.* must equal fc.*.
    broken = dict(state, **{"classifier.1.bias": state["fc.bias"] + 1})
    with pytest.raises(ConversionError, match="classifier.1.bias differs from fc.bias"):
        convert_state_dict(broken)
    # A plain ResNet is not an LSTA model.
    backbone = {k[len("resNet.") :]: v for k, v in state.items() if k.startswith("resNet.")}
    with pytest.raises(ConversionError, match="not an LSTA RGB"):
        convert_state_dict(backbone)
    # The torch side refuses what does not fit as well.
    with pytest.raises(ConversionError, match="unexpected"):
        torch_model_from_state_dict(convert_state_dict(state).config, dict(state, extra=np.zeros(1)))


def test_cli_errors(tmp_path, capsys):
    missing = tmp_path / "nope.pth"
    assert (
        convert_main(
            ["--kind", "lsta_rgb", "--torch-checkpoint", str(missing), "--output", str(tmp_path / "o")]
        )
        == 2
    )
    assert "nope.pth" in capsys.readouterr().err
    state = {
        k: v for k, v in small_torch_model().state_dict().items() if not k.startswith("lsta_cell.conv_f")
    }
    path = tmp_path / "partial.pth"
    torch.save({"model_state_dict": state}, path)
    assert (
        convert_main(["--kind", "lsta_rgb", "--torch-checkpoint", str(path), "--output", str(tmp_path / "o")])
        == 2
    )
    err = capsys.readouterr().err
    assert "lsta_cell.conv_f_x.weight" in err and "missing" in err
