"""Offline conversion: reading PyTorch files, the strict name-map filler, round trips, the CLI, flow init."""

from __future__ import annotations

import contextlib
import copy
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch_fixtures import (  # noqa: E402
    images,
    make_torch_resnet,
    numpy_state_dict,
    random_resnet34,
    rel_diff,
    to_nhwc,
)

import lsta_jax  # noqa: E402
from lsta_jax.checkpoint import MODEL_JSON, load_class_names  # noqa: E402
from lsta_jax.convert import ConversionError, convert_checkpoint  # noqa: E402
from lsta_jax.convert import resnet as resnet_convert  # noqa: E402
from lsta_jax.convert.__main__ import main  # noqa: E402
from lsta_jax.convert.mapping import conv_to_flax, export_state_dict  # noqa: E402
from lsta_jax.convert.resnet import (  # noqa: E402
    convert_state_dict,
    flow_conv1_from_rgb,
    flow_state_dict_from_rgb,
    resnet_name_map,
    resnet_variables,
)
from lsta_jax.convert.torch_io import (  # noqa: E402
    INSTALL_HINT,
    CheckpointReadError,
    read_torch_checkpoint,
    require_torch,
)
from lsta_jax.models.resnet import ResNet  # noqa: E402
from lsta_jax.reference.torch_resnet import TorchResNet  # noqa: E402

SMALL = dict(stage_sizes=(1, 1, 1, 1), widths=(8, 16, 32, 64), num_classes=5)


@pytest.fixture(scope="module")
def small_torch():
    return make_torch_resnet(seed=11, **SMALL)


# --- the strict filler --------------------------------------------------------------------------------------


def test_filler_lists_every_missing_unexpected_and_mismatched_name(small_torch):
    state = numpy_state_dict(small_torch)
    del state["layer3.0.bn2.running_var"]
    del state["fc.bias"]
    state["layer9.0.conv1.weight"] = np.zeros((3, 3, 3, 3), np.float32)
    state["layer2.0.conv1.weight"] = np.zeros((16, 8, 5, 5), np.float32)
    with pytest.raises(ConversionError) as info:
        resnet_variables(state, ResNet(**SMALL))
    err = info.value
    assert err.missing == ["layer3.0.bn2.running_var", "fc.bias"]
    assert err.unexpected == ["layer9.0.conv1.weight"]
    assert len(err.mismatched) == 1 and err.mismatched[0].startswith("layer2.0.conv1.weight (16, 8, 5, 5)")
    message = str(err)
    for name in (
        "layer3.0.bn2.running_var",
        "fc.bias",
        "layer9.0.conv1.weight",
        "(3, 3, 8, 16)",
        "(5, 5, 8, 16)",
    ):
        assert name in message, message


def test_filler_reports_unfilled_leaves_and_model_mismatch(small_torch):
    state = numpy_state_dict(small_torch)
    name_map = resnet_name_map(SMALL["stage_sizes"], SMALL["widths"], include_fc=True)
    del name_map["bn1.running_mean"]  # a broken name map: one Flax leaf stays empty
    from lsta_jax.convert.mapping import fill_variables
    from lsta_jax.convert.resnet import abstract_resnet_variables

    with pytest.raises(ConversionError) as info:
        fill_variables(state, name_map, abstract_resnet_variables(ResNet(**SMALL)))
    assert info.value.unfilled == ["batch_stats/bn1/mean"]
    assert info.value.unexpected == ["bn1.running_mean"]
    # A backbone-only model does not take the fc: both fc keys are unexpected.
    with pytest.raises(ConversionError) as info:
        resnet_variables(state, ResNet(**SMALL, include_fc=False))
    assert info.value.unexpected == ["fc.weight", "fc.bias"] and not info.value.missing


def test_convert_state_dict_infers_config_and_refuses_other_layouts():
    flow = TorchResNet(in_channels=10, num_classes=61)
    converted = convert_state_dict(numpy_state_dict(flow))
    assert converted.kind == "resnet34"
    assert converted.config == {"num_classes": 61, "include_fc": True, "in_channels": 10, "dtype": "float32"}
    assert converted.variables["params"]["conv1"]["kernel"].shape == (7, 7, 10, 64)
    backbone = convert_state_dict(numpy_state_dict(TorchResNet(include_fc=False)))
    assert backbone.config["include_fc"] is False and "fc" not in backbone.variables["params"]
    resnet18 = numpy_state_dict(TorchResNet(stage_sizes=(2, 2, 2, 2)))
    with pytest.raises(ConversionError, match=r"not a ResNet-34.*\(2, 2, 2, 2\)") as info:
        convert_state_dict(resnet18)
    assert "layer3.5.conv1.weight" in info.value.missing
    # An LSTA-style file (backbone under 'resNet.') fed as a plain ResNet: the message says why nothing fits.
    nested = {f"resNet.{k}": v for k, v in numpy_state_dict(TorchResNet(stage_sizes=(1, 1, 1, 1))).items()}
    with pytest.raises(ConversionError, match=r"NONE of its keys.*'resNet.conv1.weight'.*prefix"):
        convert_state_dict(nested)


def test_round_trip_torch_flax_torch_is_exact():
    torch_model = random_resnet34()
    state = numpy_state_dict(torch_model)
    converted = convert_state_dict(state)
    back = resnet_convert.export_state_dict(converted.config, converted.variables)
    assert list(back) == list(state)  # torchvision's order, every key
    for key, value in state.items():
        assert back[key].dtype == value.dtype and np.array_equal(back[key], value), key
    # The transforms themselves, against a hand-built index: torch w[o, i, y, x] == flax k[y, x, i, o].
    w = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    assert conv_to_flax(w)[3, 1, 2, 0] == w[0, 2, 3, 1]
    dense = converted.variables["params"]["fc"]["kernel"]
    assert dense.shape == (512, 1000) and dense[7, 3] == state["fc.weight"][3, 7]
    bn = converted.variables
    assert np.array_equal(
        bn["params"]["layer2_0"]["downsample_1"]["scale"], state["layer2.0.downsample.1.weight"]
    )
    assert np.array_equal(bn["batch_stats"]["layer4_2"]["bn2"]["var"], state["layer4.2.bn2.running_var"])
    with pytest.raises(ConversionError, match="fc/kernel"):
        export_state_dict(converted.variables, resnet_name_map(include_fc=False))


# --- reading PyTorch files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("wrapper", [None, "state_dict", "model_state_dict"])
@pytest.mark.parametrize("prefixed", [False, True], ids=["plain", "module."])
def test_checkpoint_variants_all_read_the_same(tmp_path, small_torch, legacy, wrapper, prefixed):
    state = small_torch.state_dict()  # includes num_batches_tracked
    if prefixed:
        state = {f"module.{k}": v for k, v in state.items()}
    obj = state
    if wrapper == "model_state_dict":  # the authors' training-file layout (docs/differences.md §7)
        trained = copy.deepcopy(small_torch)  # a real optimizer state beside the weights
        optimizer = torch.optim.Adam(trained.parameters())
        trained(torch.randn(1, 3, 32, 32))[0].sum().backward()
        optimizer.step()
        obj = {"epoch": 7, "model_state_dict": state, "optimizer_state_dict": optimizer.state_dict()}
        obj["best_acc"] = np.float64(0.61)  # a NumPy scalar, as old scripts saved it
    elif wrapper == "state_dict":
        obj = {"state_dict": state, "arch": "resnet34"}
    path = tmp_path / "ckpt.pth.tar"
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    checkpoint = read_torch_checkpoint(path)
    expected = {k.removeprefix("module."): v.numpy() for k, v in state.items() if "num_batches" not in k}
    assert list(checkpoint.state_dict) == list(expected)
    for key, value in expected.items():
        assert np.array_equal(checkpoint.state_dict[key], value), key
    assert len(checkpoint.dropped) == 12 and all(
        k.endswith("num_batches_tracked") for k in checkpoint.dropped
    )
    assert checkpoint.legacy_format == legacy and checkpoint.wrapper == wrapper
    assert checkpoint.stripped_prefix == (len(state) if prefixed else 0)


@contextlib.contextmanager
def _saved_as_if_on_gpu():
    """torch.save tags every storage 'cuda:0', exactly as a save from a GPU does (no GPU needed)."""

    def tag(storage):
        return "cuda:0"

    registry = torch.serialization._package_registry
    torch.serialization.register_package(1, tag, lambda obj, location: None)
    try:
        yield
    finally:
        registry[:] = [entry for entry in registry if entry[1] is not tag]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_gpu_saved_and_numpy1_files_load(tmp_path, legacy):
    path = tmp_path / "gpu.pth"
    weights = {
        "module.conv1.weight": torch.randn(4, 3, 7, 7),
        "module.bn1.num_batches_tracked": torch.tensor(5),
    }
    with _saved_as_if_on_gpu():
        torch.save({"model_state_dict": weights, "epoch": 1}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(RuntimeError, match="CUDA"):  # what a plain torch.load does on this CPU machine
        torch.load(path, weights_only=True)
    state = read_torch_checkpoint(path).state_dict
    assert list(state) == ["conv1.weight"]
    assert np.array_equal(state["conv1.weight"], weights["module.conv1.weight"].numpy())
    if legacy:  # NumPy 1.x pickles name numpy.core.multiarray (NumPy 2: numpy._core.multiarray)
        old = tmp_path / "numpy1.pth"
        torch.save(
            {"model_state_dict": weights, "best_acc": np.float64(0.7)},
            old,
            _use_new_zipfile_serialization=False,
        )
        data = old.read_bytes()
        assert data.count(b"numpy._core.multiarray") == 1
        old.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
        assert list(read_torch_checkpoint(old).state_dict) == ["conv1.weight"]


def test_not_a_checkpoint_errors_name_the_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, not weights\n")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    for path in (text, junk):
        with pytest.raises(CheckpointReadError, match="not a PyTorch checkpoint") as info:
            read_torch_checkpoint(path)
        assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_torch_checkpoint(tmp_path / "missing.pth")
    no_weights = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "best_acc": 0.5}, no_weights)
    with pytest.raises(CheckpointReadError, match="no state dict found"):
        read_torch_checkpoint(no_weights)
    a_list = tmp_path / "list.pth"
    torch.save([torch.ones(2)], a_list)
    with pytest.raises(CheckpointReadError, match="holds a list"):
        read_torch_checkpoint(a_list)


def test_pickled_module_needs_trust(tmp_path, small_torch):
    path = tmp_path / "whole_model.pth"
    torch.save(small_torch, path)
    with pytest.raises(CheckpointReadError, match="--trust-pickle"):
        read_torch_checkpoint(path)
    state = read_torch_checkpoint(path, trust_pickle=True).state_dict
    assert np.array_equal(state["fc.weight"], small_torch.fc.weight.detach().numpy())


def test_missing_torch_is_one_line_with_the_install_command(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(ImportError) as info:
        require_torch()
    assert "pip install -e '.[torch]'" in str(info.value) and "\n" not in str(info.value)
    path = tmp_path / "x.pth"
    path.write_bytes(b"PK\x03\x04")
    assert main(["--kind", "resnet34", "--torch-checkpoint", str(path), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and INSTALL_HINT in err


# --- the command line, end to end ---------------------------------------------------------------------------


def test_cli_converts_and_load_model_runs_in_inference_mode(tmp_path, capsys):
    torch_model = random_resnet34()
    # The authors' layout: wrapped, legacy serialisation, DataParallel prefixes, num_batches_tracked.
    state = {f"module.{k}": v for k, v in torch_model.state_dict().items()}
    source = tmp_path / "best_checkpoint_stage1.pth.tar"
    torch.save(
        {"epoch": 3, "model_state_dict": state, "optimizer_state_dict": {}, "best_acc": 12.5},
        source,
        _use_new_zipfile_serialization=False,
    )
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(f"class_{i}" for i in range(1000)) + "\n")
    out = tmp_path / "r34"
    argv = ["--kind", "resnet34", "--torch-checkpoint", str(source), "--output", str(out)]

    assert main([*argv, "--class-names", str(names)]) == 0
    printed = capsys.readouterr().out
    assert "torch keys consumed: 182/182 (+36 num_batches_tracked dropped)" in printed
    assert "params: 21,797,672 values" in printed  # torchvision's ResNet-34 has 21,797,672 parameters
    meta = json.loads((out / MODEL_JSON).read_text())
    assert meta["kind"] == "resnet34" and meta["config"]["num_classes"] == 1000
    assert load_class_names(out)[:2] == ["class_0", "class_1"]

    model, variables = lsta_jax.load_model(out)
    x = images((2, 3, 64, 64), seed=21)
    with jax.default_matmul_precision("highest"):
        outputs = jax.jit(model.apply)(variables, jnp.asarray(to_nhwc(x)))  # no rngs, no mutable
    with torch.no_grad():
        t_logits, t_layer4, t_prebn = torch_model(torch.from_numpy(x))
    assert set(outputs) == {"logits", "layer4", "layer4_prebn", "pooled"}
    assert rel_diff(outputs["logits"], t_logits.numpy()) <= 1e-4
    assert rel_diff(outputs["layer4_prebn"], to_nhwc(t_prebn)) <= 1e-4

    # Refusals: an existing model without --overwrite, a wrong class count, a file of the wrong kind.
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    names.write_text("a\nb\n")
    assert main([*argv, "--overwrite", "--class-names", str(names)]) == 2
    assert "2 class names given but the resnet34 checkpoint has 1000" in capsys.readouterr().err
    small = tmp_path / "small.pth"
    torch.save(make_torch_resnet(**SMALL).state_dict(), small)
    assert (
        main(["--kind", "resnet34", "--torch-checkpoint", str(small), "--output", str(tmp_path / "s")]) == 2
    )
    err = capsys.readouterr().err
    assert str(small) in err and "not a ResNet-34" in err and "layer1.1.conv1.weight" in err


def test_cli_help_lists_kinds(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "resnet34" in capsys.readouterr().out


def test_convert_checkpoint_api(tmp_path):
    path = tmp_path / "flow.pth"
    torch.save(TorchResNet(in_channels=10, include_fc=False).state_dict(), path)
    converted, checkpoint = convert_checkpoint("resnet34", path)
    assert converted.config["in_channels"] == 10 and not converted.config["include_fc"]
    assert len(checkpoint.state_dict) == 180 and len(checkpoint.dropped) == 36
    with pytest.raises(ValueError, match="unknown checkpoint kind 'resnet50'"):
        convert_checkpoint("resnet50", path)


# --- cross-modality flow initialisation (docs/differences.md §4.2)
# -----------------------------------------------------


def test_flow_conv1_from_rgb_by_hand():
    rng = np.random.default_rng(5)
    rgb = rng.standard_normal((4, 3, 7, 7)).astype(np.float32)
    flow = flow_conv1_from_rgb(rgb, in_channels=10)
    assert flow.shape == (4, 10, 7, 7) and flow.dtype == np.float32
    for o in range(4):
        for c in range(10):
            for y, x in ((0, 0), (3, 5), (6, 6)):
                hand = (float(rgb[o, 0, y, x]) + float(rgb[o, 1, y, x]) + float(rgb[o, 2, y, x])) / 3.0
                assert abs(flow[o, c, y, x] - hand) < 1e-6
    # The Flax layout gives the same numbers.
    hwio = flow_conv1_from_rgb(conv_to_flax(rgb), in_channels=10, layout="HWIO")
    np.testing.assert_array_equal(hwio, conv_to_flax(flow))
    # No rescaling: on inputs constant across channels the flow conv gives 10/3 of the RGB conv.
    g = torch.randn(1, 1, 16, 16, dtype=torch.float64)
    rgb_out = torch.nn.functional.conv2d(g.expand(1, 3, 16, 16), torch.from_numpy(rgb).double(), padding=3)
    flow_out = torch.nn.functional.conv2d(g.expand(1, 10, 16, 16), torch.from_numpy(flow).double(), padding=3)
    assert rel_diff(flow_out.numpy(), rgb_out.numpy() * 10 / 3) <= 1e-6
    with pytest.raises(ValueError, match="3 input channels"):
        flow_conv1_from_rgb(np.zeros((4, 10, 7, 7)))


def test_flow_network_initialised_from_an_rgb_checkpoint():
    rgb = numpy_state_dict(random_resnet34())
    flow = flow_state_dict_from_rgb(rgb, in_channels=10)
    assert "fc.weight" not in flow and len(flow) == len(rgb) - 2
    np.testing.assert_array_equal(flow["conv1.weight"], flow_conv1_from_rgb(rgb["conv1.weight"], 10))
    np.testing.assert_array_equal(flow["layer4.2.bn2.running_var"], rgb["layer4.2.bn2.running_var"])
    converted = convert_state_dict(flow)
    assert converted.config["in_channels"] == 10 and converted.config["include_fc"] is False
    assert converted.variables["params"]["conv1"]["kernel"].shape == (7, 7, 10, 64)
