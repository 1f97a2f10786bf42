"""predict is safe by default: the checkpoint's geometry and class names, one-line refusals otherwise.

Each refusal is checked through the command (`main`, exit status 2, one line on stderr) or the Python API
(`GeometryError`); runs that pass the gate use missing inputs where only the gate matters (no forward), and
one real clip where the answer matters (compared with an explicit call given the stored geometry and names).
"""

import json

import pytest
from inference_fixtures import CLASS_NAMES, SMALL, moving_square_frames, small_model, write_frame_folder

import lsta_jax
from lsta_jax.checkpoint import MODEL_JSON, save_model
from lsta_jax.predict import GeometryError, main, resolve_geometry
from lsta_jax.predict.cli import build_parser

TRAINED = {"num_frames": 3, "size": 32, "resize_shorter": 40}  # what the checkpoint says it was trained with


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    _, variables = small_model()
    path = save_model(root / "model", "lsta_rgb", SMALL, variables, class_names=CLASS_NAMES)
    meta = json.loads((path / MODEL_JSON).read_text())
    meta["input"] = TRAINED
    (path / MODEL_JSON).write_text(json.dumps(meta))
    return path


def test_geometry_rules():
    meta = {"input": TRAINED}
    assert resolve_geometry(meta, {}) == TRAINED
    assert resolve_geometry(meta, {"size": 32, "num_frames": None}) == TRAINED  # the same value is no change
    with pytest.raises(GeometryError, match=r"trained with --size 32, not --size 224: .*--force"):
        resolve_geometry(meta, {"size": 224})
    assert resolve_geometry(meta, {"size": 224}, force=True) == TRAINED | {"size": 224}
    # a converted model stores no geometry: the reference's 25 / 224 / 256, and flags are choices, not errors
    assert resolve_geometry({}, {}) == {"num_frames": 25, "size": 224, "resize_shorter": 256}
    assert resolve_geometry({}, {"num_frames": 16})["num_frames"] == 16


def _run(capsys, *argv):
    status = main([*argv, "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    return status, err


def test_command_refuses_a_geometry_the_model_was_not_trained_with(model_dir, tmp_path, capsys):
    missing = str(tmp_path / "missing.mp4")
    status, err = _run(capsys, "--checkpoint", str(model_dir), missing, "--size", "224")
    assert status == 2 and len(err) == 1
    assert "trained with --size 32, not --size 224" in err[0] and "--force" in err[0]
    status, err = _run(capsys, "--checkpoint", str(model_dir), missing, "--num-frames", "25")
    assert status == 2 and "trained with --num-frames 3, not --num-frames 25" in err[0]
    # --force passes the gate: the run goes on to the (missing) input
    status, err = _run(capsys, "--checkpoint", str(model_dir), missing, "--size", "224", "--force")
    assert status == 1 and "missing.mp4" in "\n".join(err)


def test_command_refuses_a_torch_file_with_the_convert_command(tmp_path, capsys):
    torch_file = tmp_path / "best_model_state_dict.pth"
    torch_file.write_bytes(b"PK\x03\x04 not really a zip")
    status, err = _run(capsys, "--checkpoint", str(torch_file), "clip.mp4")
    assert status == 2 and len(err) == 1
    assert f"python -m lsta_jax.convert --kind KIND --torch-checkpoint {torch_file} --output" in err[0]


def test_a_clip_shorter_than_the_model_samples_fails_in_one_line(model_dir, tmp_path, capsys):
    short = write_frame_folder(tmp_path / "short", moving_square_frames(2, 48, 48, seed=1))
    status, err = _run(capsys, "--checkpoint", str(model_dir), str(short))
    assert status == 1
    assert any(f"{short}: has 2 frames, fewer than 3" in line for line in err)


def test_help_prints_each_default_once_and_true():
    text = " ".join(build_parser().format_help().split())
    assert "clips per forward (default: 8)" in text and "(default 8)" not in text
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "shorter side before cropping (default: the checkpoint's, else the reference's 256" in text


def test_python_predict_takes_geometry_and_class_names_from_the_checkpoint(model_dir, tmp_path):
    clip = write_frame_folder(tmp_path / "clip", moving_square_frames(5, 48, 48, seed=2))
    (result,) = lsta_jax.predict(model_dir, [clip], top_k=2, workers=0)
    model, variables = lsta_jax.load_model(model_dir)
    (explicit,) = lsta_jax.predict(
        model, variables, clip, class_names=CLASS_NAMES, top_k=2, workers=0, **TRAINED
    )
    assert result.ok and result.label in CLASS_NAMES
    assert result.top_k == explicit.top_k
    (with_checkpoint,) = lsta_jax.predict(model, variables, clip, checkpoint=model_dir, top_k=2, workers=0)
    assert with_checkpoint.top_k == explicit.top_k
    # the unsafe forms are refused in one line
    with pytest.raises(GeometryError, match="geometry is unknown .*checkpoint=PATH"):
        lsta_jax.predict(model, variables, clip)
    with pytest.raises(GeometryError, match="trained with --size 32, not --size 224"):
        lsta_jax.predict(model_dir, [clip], size=224)
    (forced,) = lsta_jax.predict(model_dir, [tmp_path / "missing"], size=224, force=True)
    assert not forced.ok and "missing" in forced.error
