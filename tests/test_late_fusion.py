"""`python -m lsta_jax.evaluate --flow-checkpoint`: ego-rnn's late fusion of an RGB and a flow checkpoint on
a tiny GTEA61 tree (split 2: test subject S2), against the same rule computed here from the pipelines'
batches."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from data_fixtures import write_frames, write_gtea

from lsta_jax.checkpoint import abstract_variables, save_model
from lsta_jax.evaluate import main
from lsta_jax.models import create_model
from lsta_jax.train.config import load_config
from lsta_jax.train.input_pipeline import make_data

SMALL = dict(backbone_stage_sizes=[1, 1, 1, 1], backbone_widths=[8, 8, 16, 16])


def random_like(tree, seed):
    """Random values of the tree's shapes; BatchNorm variances positive."""
    rng = np.random.default_rng(seed)

    def draw(path, x):
        if str(path[-1].key) == "var":
            return rng.uniform(0.5, 1.5, x.shape).astype(x.dtype)
        return (rng.standard_normal(x.shape) * 0.5).astype(x.dtype)

    return jax.tree_util.tree_map_with_path(draw, tree)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("late_fusion")
    raw = write_gtea(root / "raw")
    for c_index, name in enumerate(["close_jam", "open_jam", "pour_ketchup,hotdog,bread", "take_bread"]):
        rel = Path("S2") / name / f"{name}_1"  # longer test clips: 9 flow frames, stacks at 1, 2, 4
        write_frames(raw / "frames" / rel, 10, 10 + c_index)
        write_frames(raw / "flow_x" / rel, 9, 510 + c_index, "flow_x_{:05d}.jpg", "L")
        write_frames(raw / "flow_y" / rel, 9, 910 + c_index, "flow_y_{:05d}.jpg", "L")
    config = load_config("configs/gtea61.py:split=2")
    config.data.update(
        data_dir=str(root / "tfds"), manual_dir=str(raw), num_frames=3, crop_size=32, resize_shorter=36
    )
    config.model.update(num_classes=4)
    config.global_batch_size, config.eval_batch_size = 4, 8  # 4 test clips in a padded batch of 8
    models = {}
    for kind, extra in (
        ("lsta_rgb", dict(mem_size=16, c_cam_classes=5, attention_classes=7)),
        ("egornn_flow", {}),
    ):
        model_config = dict(num_classes=4, **SMALL, **extra)
        model = create_model(kind, **model_config)
        variables = random_like(abstract_variables(model, kind, model_config), seed=len(models))
        save_model(
            root / kind, kind, model_config, variables, ["close_jam", "open_jam", "pour_x", "take_bread"]
        )
        models[kind] = (model, variables)
    return root, config, models


def test_late_fusion_equals_the_rule_on_the_pipelines_batches(setup, capsys):
    root, config, models = setup
    # the command line (`evaluate_late_fusion` behind it)
    args = ["--checkpoint", str(root / "lsta_rgb"), "--config", "configs/gtea61.py:split=2"]
    overrides = [f"--config.data.{k}={config.data[k]}" for k in ("data_dir", "manual_dir", "num_frames")]
    overrides += [
        "--config.data.crop_size=32",
        "--config.data.resize_shorter=36",
        "--config.model.num_classes=4",
    ]
    overrides += ["--config.global_batch_size=4", "--config.eval_batch_size=8", "--output", str(root / "out")]
    fusion = ["--flow-checkpoint", str(root / "egornn_flow"), "--flow-segments", "3"]
    assert main([*args, *fusion, *overrides]) == 0
    assert '"flow_top1"' in capsys.readouterr().out
    summary = json.loads((root / "out" / "summary.json").read_text())
    flow_config = copy.deepcopy(config)
    flow_config.data.update(modality="flow", flow_segments=3)
    rgb_batches = list(make_data(config).make_eval())
    flow_batches = list(make_data(flow_config).make_eval())
    assert flow_batches[0]["flow"].shape == (8, 3, 32, 32, 10)  # (batch, stacks, crop, crop, 2 * 5)
    assert not np.array_equal(flow_batches[0]["flow"][:, 0], flow_batches[0]["flow"][:, 2])  # distinct starts
    (rgb_model, rgb_vars), (flow_model, flow_vars) = models["lsta_rgb"], models["egornn_flow"]
    fused, rgb_pred, flow_pred, labels = [], [], [], []
    for rb, fb in zip(rgb_batches, flow_batches, strict=True):
        keep = rb["mask"]
        rgb = np.asarray(rgb_model.apply(rgb_vars, rb["clip"])["logits"])[keep]
        stacks = fb["flow"][keep]
        flow = np.stack(
            [np.asarray(flow_model.apply(flow_vars, stacks[:, s])["logits"]) for s in range(3)], 1
        )
        fused.append(0.5 * flow.mean(axis=1) + 0.5 * rgb)  # ego-rnn: raw logits, flow_wt 0.5
        rgb_pred.append(rgb.argmax(1))
        flow_pred.append(flow.mean(axis=1).argmax(1))
        labels.append(rb["label"][keep])
    fused, labels = np.concatenate(fused), np.concatenate(labels)
    assert summary["count"] == 4 == len(labels)
    assert summary["top1"] == pytest.approx(np.mean(fused.argmax(1) == labels))
    assert summary["rgb_top1"] == pytest.approx(np.mean(np.concatenate(rgb_pred) == labels))
    assert summary["flow_top1"] == pytest.approx(np.mean(np.concatenate(flow_pred) == labels))
    ce = fused - fused.max(1, keepdims=True)
    ce = -(ce - np.log(np.exp(ce).sum(1, keepdims=True)))[np.arange(4), labels]
    assert np.isfinite(ce).all()
    assert summary["loss"] == pytest.approx(ce.mean(), rel=1e-4)  # the fused scores, not only their argmax
    assert summary["late_fusion"]["flow_segments"] == 3 and summary["late_fusion"]["flow_weight"] == 0.5
    # the streams swapped is a clear error
    swapped = ["--checkpoint", str(root / "egornn_flow"), "--flow-checkpoint", str(root / "lsta_rgb")]
    assert main([*swapped, "--config", "configs/gtea61.py:split=2", *overrides]) == 2
    assert "late fusion needs an RGB model" in capsys.readouterr().err


def test_predict_fuses_each_input_with_its_flow(setup, tmp_path, capsys):
    from lsta_jax.data.clip_io import flow_dirs_for, load_flow_stacks
    from lsta_jax.predict import main as predict_main
    from lsta_jax.predict import predict

    root, _, models = setup
    raw = root / "raw"
    inputs = [raw / "frames" / "S2" / name / f"{name}_1" for name in ("close_jam", "take_bread")]
    assert flow_dirs_for(inputs[0]) == (
        raw / "flow_x" / "S2" / "close_jam" / "close_jam_1",
        raw / "flow_y" / "S2" / "close_jam" / "close_jam_1",
    )
    stray = tmp_path / "clip_without_flow"
    write_frames(stray, 6, seed=3)
    geometry = dict(num_frames=3, size=32, resize_shorter=36)
    (rgb_model, rgb_vars), (flow_model, flow_vars) = models["lsta_rgb"], models["egornn_flow"]
    rgb = predict(rgb_model, rgb_vars, inputs, **geometry)
    expected = []
    for p in rgb:
        stacks = load_flow_stacks(p.source, segments=3, size=32, resize_shorter=36)
        assert stacks.shape == (3, 32, 32, 10)
        flow = np.asarray(flow_model.apply(flow_vars, stacks)["logits"])
        fused = 0.5 * flow.mean(axis=0) + 0.5 * p.logits
        expected.append((int(fused.argmax()), float(np.exp(fused.max()) / np.exp(fused).sum())))

    out = tmp_path / "preds.jsonl"
    argv = ["--checkpoint", str(root / "lsta_rgb"), "--flow-checkpoint", str(root / "egornn_flow")]
    argv += [*map(str, inputs), str(stray), "--flow-segments", "3", "--num-frames", "3", "--size", "32"]
    argv += ["--resize-shorter", "36", "--output", str(out), "--no-progress", "--top-k", "2"]
    with open(root / "egornn_flow" / "lsta_jax_model.json") as f:  # the flow model's own crop geometry
        meta = json.load(f)
    meta["input"] = {"num_frames": 1, "size": 32, "resize_shorter": 36}
    (root / "egornn_flow" / "lsta_jax_model.json").write_text(json.dumps(meta))
    assert predict_main(argv) == 1  # the stray input has no flow: reported, the others go on
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    names = ["close_jam", "open_jam", "pour_x", "take_bread"]
    for line, (index, score) in zip(lines[:2], expected, strict=True):
        assert (
            line["ok"] and line["label"] == names[index] and line["score"] == pytest.approx(score, rel=1e-4)
        )
        assert line["top_k"][0]["index"] == index  # the fused ranking's indices, not the RGB stream's
    assert not lines[2]["ok"] and "clip_without_flow" in lines[2]["error"] and "frames" in lines[2]["error"]
    assert "1 failed" in capsys.readouterr().err
