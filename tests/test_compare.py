"""`python -m lsta_jax.compare` end to end on a small authors'-format checkpoint; failure reporting."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lsta_jax.compare import compare_outputs, load_clip_argument, main  # noqa: E402
from lsta_jax.reference.torch_lsta import TorchLSTAModel  # noqa: E402
from lsta_jax.reference.torch_resnet import randomize_batch_norm  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small model saved like the authors' training script (wrapped dict, legacy serialisation)."""
    torch.manual_seed(0)
    model = TorchLSTAModel(
        num_classes=5,
        mem_size=32,
        c_cam_classes=7,
        attention_classes=11,
        stage_sizes=(1, 1, 1, 1),
        widths=(8, 16, 16, 32),
    )
    randomize_batch_norm(model.resNet, 0, calibration_input=torch.randn(4, 3, 64, 64))
    state = {k: v for k, v in model.state_dict().items() if "num_batches" not in k}
    path = tmp_path_factory.mktemp("ckpt") / "best_checkpoint_stage1.pth.tar"
    obj = {"epoch": 3, "model_state_dict": state, "optimizer_state_dict": {"state": {}}, "best_acc": 50.0}
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    return path


def test_compare_random_clip_reports_agreement(checkpoint, capsys):
    assert main(["--torch-checkpoint", str(checkpoint), "--frames", "3", "--size", "64"]) == 0
    out = capsys.readouterr().out
    assert "selection k_t (attention pooling): 3/3 agree" in out
    assert "selection j_t (output pooling): 3/3 agree" in out
    for key in ("logits", "features", "attention", "frame_features"):
        assert key in out
    assert "OK" in out


def test_compare_npy_clip(checkpoint, tmp_path, capsys):
    clip = np.random.default_rng(3).normal(size=(2, 48, 56, 3)).astype(np.float32)  # (T, H, W, 3)
    np.save(tmp_path / "clip.npy", clip)
    assert main(["--torch-checkpoint", str(checkpoint), "--clip", str(tmp_path / "clip.npy")]) == 0
    assert "2/2 agree" in capsys.readouterr().out


def test_compare_errors(checkpoint, tmp_path, capsys):
    assert main(["--torch-checkpoint", str(tmp_path / "missing.pth")]) == 2
    assert "missing.pth" in capsys.readouterr().err
    backbone_only = {
        k[7:]: v for k, v in torch.load(checkpoint)["model_state_dict"].items() if k.startswith("resNet.")
    }
    torch.save(backbone_only, tmp_path / "resnet.pth")
    assert main(["--torch-checkpoint", str(tmp_path / "resnet.pth")]) == 2
    assert "not an LSTA RGB" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.zeros((4, 4), np.float32))
    assert main(["--torch-checkpoint", str(checkpoint), "--clip", str(tmp_path / "bad.npy")]) == 2
    assert "bad.npy" in capsys.readouterr().err


def test_compare_outputs_flags_a_differing_selection_and_values():
    ref = {
        "logits": np.ones((1, 3)),
        "features": np.ones((1, 4)),
        "attention": np.full((1, 2, 2, 2), 0.25),
        "frame_features": np.ones((1, 2, 4)),
        "attention_class": np.array([[1, 2]]),
        "pooling_class": np.array([[0, 0]]),
    }
    ok, report = compare_outputs(dict(ref), ref, 1e-4)
    assert ok and "2/2 agree" in report
    ours = dict(ref, pooling_class=np.array([[0, 5]]), logits=ref["logits"] * (1 + 1e-3))
    ok, report = compare_outputs(ours, ref, 1e-4)
    assert not ok
    assert "1/2 agree" in report and "sample 0 step 1: jax 5 torch 0" in report
    assert "> tolerance" in report


def test_frames_directory_uses_the_data_loader(checkpoint, tmp_path, capsys):
    try:
        from lsta_jax.data import load_clip  # noqa: F401
    except ImportError:
        pytest.skip("lsta_jax.data.load_clip is not available in this tree")
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(1, 6):
        Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(
            tmp_path / f"image_{i:05d}.jpg"
        )
    clip = load_clip_argument(str(tmp_path), frames=3, size=64, seed=0)
    assert clip.shape == (1, 3, 64, 64, 3) and clip.dtype == np.float32
    assert (
        main(
            ["--torch-checkpoint", str(checkpoint), "--clip", str(tmp_path), "--frames", "3", "--size", "64"]
        )
        == 0
    )
    assert "3/3 agree" in capsys.readouterr().out
