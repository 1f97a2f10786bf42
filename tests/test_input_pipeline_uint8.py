"""The fast training input: JPEG builder configs, uint8 batches normalised on the device, the benchmark."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from data_fixtures import write_gtea
from PIL import Image

import lsta_jax.data as D
from lsta_jax.benchmarks import pipeline as bench
from lsta_jax.data.clip_io import decode_image
from lsta_jax.data.device_normalize import normalize_inputs
from lsta_jax.train.trainer import model_inputs

GEOMETRY = dict(num_frames=4, crop_size=40, resize_shorter=48)


@pytest.fixture(scope="module")
def gtea(tmp_path_factory):
    root = tmp_path_factory.mktemp("gtea_fast")
    raw = write_gtea(root / "raw")
    png = D.build("gtea61", root / "tfds", manual_dir=raw, config="split2")
    jpeg = D.build("gtea61", root / "tfds", manual_dir=raw, config="split2_jpeg")
    return raw, png, jpeg


def test_jpeg_config_stores_the_same_clips_as_jpeg_at_scale_256(gtea):
    raw, png, jpeg = gtea
    for split in ("train", "test"):
        a, b = png.as_data_source(split), jpeg.as_data_source(split)
        assert [r["name"] for r in a] == [r["name"] for r in b]  # same split (test = S2), same order
        assert [r["label"] for r in a] == [r["label"] for r in b]
    record = jpeg.as_data_source("test")[2]
    assert record["frames"][2][:2] == b"\xff\xd8" and record["flow_x"][0][:2] == b"\xff\xd8"  # JPEG SOI
    original = raw / "frames" / record["name"].decode() / "image_00003.jpg"
    exact = np.asarray(Image.open(original).convert("RGB").resize((341, 256), Image.BILINEAR), np.float32)
    stored = np.asarray(decode_image(record["frames"][2]), np.float32)
    assert stored.shape == exact.shape
    assert 0 < np.abs(stored - exact).mean() < 4  # lossy (quality 95), close to the Scale(256) pixels
    with pytest.raises(ValueError, match="unknown frame_encoding 'webp'"):
        D.builder_base.FrameClipConfig(name="x", frame_encoding="webp")


@pytest.mark.parametrize("modality", ["rgb", "rgb+flow"])
def test_uint8_batches_normalised_on_the_device_equal_the_host_batches(gtea, modality):
    _, png, _ = gtea
    train = png.as_data_source("test")  # S2's clips have 7 frames: 6 flow frames, a random stack start
    kwargs = dict(
        global_batch_size=2, seed=4, **GEOMETRY, modality=modality, process_index=0, process_count=1
    )
    host = iter(D.make_train_loader(train, worker_count=0, **kwargs))
    raw = iter(D.make_train_loader(train, worker_count=0, normalize_on_host=False, **kwargs))
    for _ in range(2):
        a, b = next(host), next(raw)
        inputs = [k for k in ("clip", "flow") if k in a]
        assert inputs == (["clip", "flow"] if modality == "rgb+flow" else ["clip"])
        for k in inputs:
            assert a[k].dtype == np.float32 and b[k].dtype == np.uint8 and a[k].shape == b[k].shape
            assert b[k].nbytes * 4 == a[k].nbytes
        # the same draws: the uint8 pixels are the host batch before its normalisation (transforms.py)
        np.testing.assert_array_equal(D.transforms.normalize_rgb(b["clip"]), a["clip"])
        if "flow" in a:
            np.testing.assert_array_equal(D.transforms.normalize_flow(b["flow"]), a["flow"])
        on_device = jax.jit(normalize_inputs)({k: b[k] for k in inputs})
        for k in inputs:
            np.testing.assert_allclose(np.asarray(on_device[k]), a[k], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(a["label"], b["label"])


def test_eval_loader_uint8_is_the_centre_crop(gtea):
    _, png, _ = gtea
    test = png.as_data_source("test")
    kwargs = dict(global_batch_size=2, **GEOMETRY, process_index=0, process_count=1, worker_count=0)
    a = next(iter(D.make_eval_loader(test, **kwargs)))
    b = next(iter(D.make_eval_loader(test, normalize_on_host=False, **kwargs)))
    frames = [decode_image(test[0]["frames"][k - 1]) for k in (1, 3, 5, 7)]  # floor(linspace(1, 7, 4))
    width = int(48 * frames[0].size[0] / frames[0].size[1])  # stored 341x256 -> Scale(48) -> 63x48
    x1 = round((width - 40) / 2)  # CenterCrop(40)
    scaled = [f.resize((width, 48), Image.BILINEAR) for f in frames]
    expected = np.stack([np.asarray(f.crop((x1, 4, x1 + 40, 44))) for f in scaled])
    np.testing.assert_array_equal(b["clip"][0], expected)
    np.testing.assert_allclose(
        np.asarray(normalize_inputs({"clip": b["clip"]})["clip"]), a["clip"], atol=1e-6
    )


def test_model_inputs_normalise_uint8_inside_jit_and_pass_floats():
    pixels = np.arange(2 * 3 * 4 * 4 * 3, dtype=np.int64).reshape(2, 3, 4, 4, 3).astype(np.uint8)
    flow = np.full((2, 4, 4, 10), 128, np.uint8)
    out = jax.jit(model_inputs)({"clip": pixels, "flow": flow, "label": np.zeros(2, np.int32)})
    assert sorted(out) == ["clip", "flow"] and out["clip"].dtype == jnp.float32
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(np.asarray(out["clip"]), (pixels / 255.0 - mean) / std, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out["flow"]), (128 / 255.0 - 0.449) / 0.226, atol=1e-6)
    floats = np.random.default_rng(0).normal(size=(2, 3, 4, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(jax.jit(model_inputs)({"clip": floats})["clip"]), floats)


def test_benchmark_help_and_a_tiny_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--help"])
    assert exit_info.value.code == 0 and "authors" in capsys.readouterr().out
    out = tmp_path / "bench.json"
    args = ["--work-dir", str(tmp_path / "w"), "--clips", "4", "--frames-per-clip", "6", "--num-frames", "4"]
    args += ["--crop-size", "32", "--batch-size", "2", "--batches", "1", "--repeats", "1", "--workers", "0"]
    assert bench.main([*args, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {(r["pipeline"], r["workers"]): r for r in report["table"]}
    assert len(rows) == 5 and report["clips"] == 3
    assert rows[("project jpeg, normalise on device", 0)]["bytes"] == 4 * 32 * 32 * 3  # uint8
    assert rows[("project png, normalise on host", 0)]["bytes"] == 4 * 32 * 32 * 3 * 4  # float32
    assert all(r["clips_per_s"] > 0 and r["ratio"] > 0 for r in report["table"])
    assert "x authors" in capsys.readouterr().out


def test_authors_chain_is_the_reference_train_transform(tmp_path):
    """The benchmark's authors' chain gives, for its draw, the project's transforms (float, CHW)."""
    raw = bench.write_gtea_frames(tmp_path, 2, 6)
    files = sorted((raw / "frames" / "S1").glob("*/*/image_*.jpg"))
    got = bench.authors_clip(files, np.random.default_rng(7), 4, 64)
    draw = D.transforms.draw_train_params(np.random.default_rng(7))  # the same three draws, same order
    frames = [Image.open(files[k - 1]).convert("RGB") for k in (1, 2, 4, 6)]
    crops = np.stack([np.asarray(D.transforms.train_transform(f, draw, 64, 256)) for f in frames])
    np.testing.assert_allclose(got.transpose(0, 2, 3, 1), D.transforms.normalize_rgb(crops), atol=1e-6)


@pytest.mark.slow
def test_training_on_uint8_batches_equals_training_on_host_normalised_ones(tmp_path):
    """Two steps of the trainer on a tfds build: uint8 batches (make_data's default, normalised in the jitted
    step) and host-normalised float32 batches give the same parameters (about 100 s: two trainer runs)."""
    from lsta_jax.train import trainer
    from lsta_jax.train.config import load_config
    from lsta_jax.train.input_pipeline import make_data
    from lsta_jax.train.presets import set_synthetic

    def config(on_device: bool):
        c = set_synthetic(load_config("configs/synthetic.py:toy"))
        c.data.synthetic.update(num_train=8, num_test=4, num_frames=5, frame_size=48)
        c.data.update(data_dir=str(tmp_path / "tfds"), num_frames=4, crop_size=48, resize_shorter=48)
        c.data.worker_count = 0
        with c.unlocked():
            c.data.normalize_on_device = on_device
        c.model.update(backbone_stage_sizes=(1, 1, 1, 1), backbone_widths=(8, 16, 16, 32), batchnorm="train")
        c.update(global_batch_size=4, eval_batch_size=4, total_steps=2, trainable="all", shuffle=False)
        return c

    from lsta_jax import load_model

    params = {}
    for on_device in (True, False):
        assert next(make_data(config(on_device)).train)["clip"].dtype == (
            np.uint8 if on_device else np.float32
        )
        trainer.train_and_evaluate(config(on_device), tmp_path / str(on_device), quiet=True)
        params[on_device] = jax.tree_util.tree_leaves(load_model(tmp_path / str(on_device))[1]["params"])
    assert len(params[True]) == len(params[False]) > 10
    for a, b in zip(params[True], params[False], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
