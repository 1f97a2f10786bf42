"""`python -m lsta_jax.predict` and `lsta_jax.predict(...)` on mp4s and frame folders written by the tests.

Expected predictions: a separately jitted `model.apply` on `lsta_jax.data.load_clip` output (the evaluation
preprocessing), softmax and sort written out here. Bad inputs: a clear message per input, the rest processed,
exit status 1 and a summary; a checkpoint of another kind: exit status 2 naming the kind.
"""

import json
import subprocess
import sys

import jax
import matplotlib
import numpy as np
import pytest
from inference_fixtures import (
    BATCH_SIZE,
    CLASS_NAMES,
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
from PIL import Image

import lsta_jax
from lsta_jax import viz
from lsta_jax.checkpoint import MODEL_JSON, load_class_names, save_model, write_model_json
from lsta_jax.data import load_clip
from lsta_jax.predict import Prediction, checkpoint_geometry, main

TOP_K = 3
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    model, variables = small_model()
    model_dir = save_model(root / "model", "lsta_rgb", SMALL, variables, class_names=CLASS_NAMES)
    # the input geometry travels with the checkpoint (read by the command when no flag overrides it)
    meta = json.loads((model_dir / MODEL_JSON).read_text())
    meta["input"] = {"num_frames": NUM_FRAMES, "size": SIZE, "resize_shorter": RESIZE_SHORTER}
    (model_dir / MODEL_JSON).write_text(json.dumps(meta))

    good = [
        write_mp4(root / "a.mp4", moving_square_frames(9, 72, 88, seed=1)),
        write_frame_folder(root / "frames_b", moving_square_frames(6, 80, 72, seed=2)),
        write_mp4(root / "c.mp4", moving_square_frames(12, 96, 72, seed=3)),
        write_frame_folder(root / "frames_d", moving_square_frames(NUM_FRAMES, 72, 72, seed=4)),
        write_mp4(root / "e.mp4", moving_square_frames(7, 72, 80, seed=5)),
    ]
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    empty = root / "no_frames"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a frame")
    short = write_frame_folder(root / "short", moving_square_frames(NUM_FRAMES - 2, 72, 72, seed=6))
    bad = {"corrupt": corrupt, "empty": empty, "short": short, "missing": root / "missing.mp4"}
    return root, model_dir, good, bad


def expected_top_k(source):
    """Top-k (name, probability) of an independent model.apply on the evaluation preprocessing."""
    clip = load_clip(source, NUM_FRAMES, SIZE, RESIZE_SHORTER, min_frames=NUM_FRAMES)
    out = reference_apply()(small_model()[1], clip[None])
    logits = np.asarray(out["logits"][0], np.float64)
    probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    order = np.argsort(-probabilities)[:TOP_K]
    return [(CLASS_NAMES[i], probabilities[i]) for i in order], np.asarray(out["attention"][0]), clip


def test_command_predicts_every_input_and_reports_bad_ones(workspace, capsys):
    root, model_dir, good, bad = workspace
    inputs = [good[0], bad["corrupt"], good[1], bad["empty"], good[2], bad["short"], good[3], bad["missing"]]
    inputs.append(good[4])
    output = root / "preds.jsonl"
    status = main(
        [*map(str, inputs), "--checkpoint", str(model_dir), "--top-k", str(TOP_K), "--output", str(output)]
        + ["--batch-size", str(BATCH_SIZE), "--attention-dir", str(root / "overlays")]
    )
    assert status == 1  # some inputs failed
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["source"] for line in lines] == [str(path) for path in inputs]
    for path, line in zip(inputs, lines, strict=True):
        if path in good:
            assert line["ok"], line
            expected, _, _ = expected_top_k(path)
            assert [entry["label"] for entry in line["top_k"]] == [name for name, _ in expected]
            assert [CLASS_NAMES[entry["index"]] for entry in line["top_k"]] == [n for n, _ in expected]
            np.testing.assert_allclose(
                [e["score"] for e in line["top_k"]], [p for _, p in expected], rtol=1e-4
            )
            assert line["label"] == expected[0][0]
            png, gif = map(lambda p: Image.open(p), line["overlay"])
            n, gap, tile = NUM_FRAMES, viz.STRIP_GAP, 2 * SIZE  # all T = 4 frames; 64 px tiles shown at 128
            assert png.format == "PNG"
            assert png.size == (n * tile + (n - 1) * gap, viz.TITLE_HEIGHT + 2 * tile + gap)
            assert gif.format == "GIF" and gif.n_frames == NUM_FRAMES and gif.size == (tile, tile)
        else:
            assert not line["ok"] and str(path) in line["error"], line
    stderr = capsys.readouterr().err
    assert "5 of 9 inputs done, 4 failed" in stderr
    for path in bad.values():
        assert f"FAILED {path}" in stderr
    assert "frames" in lines[3]["error"].lower()  # the folder without frames says so
    assert f"has {NUM_FRAMES - 2} frames" in lines[5]["error"]  # the short clip says how many it has


def test_api_returns_structured_results_equal_to_model_apply(workspace):
    root, model_dir, good, bad = workspace
    model, variables = lsta_jax.load_model(model_dir)
    geometry = checkpoint_geometry(model_dir)  # the sizes stored with the checkpoint
    assert geometry == {"num_frames": NUM_FRAMES, "size": SIZE, "resize_shorter": RESIZE_SHORTER}
    inputs = [good[1], bad["missing"], good[0], good[2]]
    results = lsta_jax.predict(
        model,
        variables,
        inputs,
        class_names=load_class_names(model_dir),
        top_k=TOP_K,
        batch_size=BATCH_SIZE,
        attention_dir=root / "api_overlays",
        **geometry,
    )
    assert all(isinstance(r, Prediction) for r in results)
    assert [r.source for r in results] == [str(p) for p in inputs]
    assert [r.ok for r in results] == [True, False, True, True]
    assert str(bad["missing"]) in results[1].error and results[1].label is None
    for result in (results[0], results[2], results[3]):
        expected, attention, clip = expected_top_k(result.source)
        assert result.top_k[0][0] == result.label == expected[0][0]
        assert [name for name, _ in result.top_k] == [name for name, _ in expected]
        np.testing.assert_allclose(result.attention, attention, rtol=1e-5, atol=1e-7)
        # the overlay is the documented blend of the frames as the model saw them and of this attention,
        # min-max normalised and coloured with inferno. With a 2x2 grid the frame corners lie beyond the outer
        # cell centres, where bilinear upsampling is exactly the cell's value: check the colour there.
        assert attention.shape[1:] == (2, 2)
        strip = np.asarray(Image.open(result.overlay[0]).convert("RGB")).astype(float)
        frames = ((clip * IMAGENET_STD + IMAGENET_MEAN) * 255).round().clip(0, 255)
        frames = frames.repeat(2, axis=1).repeat(2, axis=2)  # 64 px tiles are shown enlarged to 128
        tile = 2 * SIZE
        top = viz.TITLE_HEIGHT + tile + viz.STRIP_GAP
        for t in range(NUM_FRAMES):
            x = t * (tile + viz.STRIP_GAP)
            blended = strip[top : top + tile, x : x + tile]
            colour = (blended - (1 - viz.DEFAULT_ALPHA) * frames[t]) / viz.DEFAULT_ALPHA / 255
            low, high = attention[t].min(), attention[t].max()
            for i, j in [(0, 0), (0, 1), (1, 0), (1, 1)]:
                value = (attention[t, i, j] - low) / (high - low)
                expected_colour = np.array(matplotlib.colormaps["inferno"](value)[:3])
                np.testing.assert_allclose(colour[-i, -j], expected_colour, atol=0.02)
    single = lsta_jax.predict(
        model, variables, good[0], top_k=1, num_frames=NUM_FRAMES, size=SIZE, resize_shorter=RESIZE_SHORTER
    )
    assert len(single) == 1 and single[0].label == str(results[2].class_index)  # no class names: indices
    assert single[0].to_json()["top_k"][0]["score"] == pytest.approx(results[2].score, rel=1e-5)


def test_checkpoint_of_another_kind_is_refused_with_its_kind(workspace, capsys):
    root, _, good, _ = workspace
    # the description of a ResNet-34 image classifier (no 21M weights needed: the kind is checked first)
    config = {"num_classes": 3}
    model = lsta_jax.create_model("resnet34", **config)
    shapes = jax.eval_shape(model.init, jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32))
    other = root / "resnet"
    write_model_json(other, "resnet34", config, shapes)
    assert main([str(good[0]), "--checkpoint", str(other), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "resnet34" in error and "lsta_rgb" in error and str(other) in error
    assert main([str(good[0]), "--checkpoint", str(root / "nowhere"), "--no-progress"]) == 2
    assert MODEL_JSON in capsys.readouterr().err


@pytest.mark.parametrize("command", ["lsta_jax.predict", "lsta_jax.extract"])
def test_commands_run_as_modules_with_help(command):
    result = subprocess.run(
        [sys.executable, "-m", command, "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and "--checkpoint" in result.stdout
    assert "Warning" not in result.stderr  # e.g. runpy's double import of a module named like a function
