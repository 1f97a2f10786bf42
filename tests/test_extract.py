"""`python -m lsta_jax.extract`: .npy features equal to the model outputs, an index mapping rows to inputs."""

import json

import numpy as np
import pytest
from inference_fixtures import (
    BATCH_SIZE,
    NUM_FRAMES,
    RESIZE_SHORTER,
    SIZE,
    SMALL,
    moving_square_frames,
    reference_apply,
    small_model,
    write_frame_folder,
    write_mp4,
)

from lsta_jax.checkpoint import save_model
from lsta_jax.data import load_clip
from lsta_jax.extract import NpyAppender, main


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("extract")
    model_dir = save_model(root / "model", "lsta_rgb", SMALL, small_model()[1])
    inputs = [
        write_mp4(root / "a.mp4", moving_square_frames(8, 72, 96, seed=11)),
        root / "broken.mp4",
        write_frame_folder(root / "frames_b", moving_square_frames(5, 80, 80, seed=12)),
        *(write_mp4(root / f"v{i}.mp4", moving_square_frames(6, 72, 72, seed=20 + i)) for i in range(4)),
    ]
    inputs[1].write_bytes(b"\x00" * 100)
    return root, model_dir, inputs


def test_extract_writes_model_features_with_an_index(workspace, capsys):
    root, model_dir, inputs = workspace
    out = root / "features"
    flags = ["--num-frames", str(NUM_FRAMES), "--size", str(SIZE), "--resize-shorter", str(RESIZE_SHORTER)]
    listed = root / "inputs.txt"  # the last inputs come from a list file (streamed line by line)
    listed.write_text("# clips\n" + "".join(f"{p}\n\n" for p in inputs[3:]))
    status = main(
        [*map(str, inputs[:3]), "--input-list", str(listed), "--checkpoint", str(model_dir)]
        + ["--output-dir", str(out), "--frame-features"]
        + flags
        + ["--batch-size", str(BATCH_SIZE), "--no-progress"]
    )
    assert status == 1  # broken.mp4 failed, the rest went on
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert [entry["source"] for entry in index] == [str(p) for p in inputs]
    assert index[1]["row"] is None and str(inputs[1]) in index[1]["error"]
    good = [p for p, entry in zip(inputs, index, strict=True) if entry["row"] is not None]
    assert [entry["row"] for entry in index if entry["row"] is not None] == list(range(len(good)))

    features = np.load(out / "features.npy")
    frame_features = np.load(out / "frame_features.npy")
    clips = np.stack([load_clip(p, NUM_FRAMES, SIZE, RESIZE_SHORTER, min_frames=NUM_FRAMES) for p in good])
    expected = reference_apply()(small_model()[1], clips)
    assert features.shape == (len(good), SMALL["mem_size"]) and features.dtype == np.float32
    assert frame_features.shape == (len(good), NUM_FRAMES, SMALL["mem_size"])
    np.testing.assert_allclose(features, expected["features"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(frame_features, expected["frame_features"], rtol=1e-5, atol=1e-6)

    meta = json.loads((out / "meta.json").read_text())
    assert meta["shapes"]["features"] == [len(good), SMALL["mem_size"]] and meta["failed"] == 1
    assert "6 of 7 inputs done, 1 failed" in capsys.readouterr().err
    assert not list(out.glob("*.rows"))  # the temporary row files are gone


def test_npy_appender_streams_rows_into_a_valid_npy(tmp_path):
    rows = np.random.default_rng(0).normal(size=(5, 3, 2)).astype(np.float32)
    appender = NpyAppender(tmp_path / "x.npy")
    for row in rows:
        appender.append(row)
    appender.close()
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), rows)
    with pytest.raises(ValueError, match="y.npy"):
        appender = NpyAppender(tmp_path / "y.npy")
        appender.append(rows[0])
        appender.append(rows[0, :1])
