"""`predict` and `extract` on the kinds that read optical flow (`egornn_flow`, `lsta_flow`,
`egornn_two_stream`, `lsta_two_stream`) on a tiny GTEA61 tree: each command's output equals a direct
`model.apply` on the clip and the centre flow stack of the same input; an input without flow fails, named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import write_frames, write_gtea
from test_late_fusion import SMALL, random_like

from lsta_jax.checkpoint import abstract_variables, save_model
from lsta_jax.data import load_clip
from lsta_jax.data.clip_io import load_centre_flow_stack
from lsta_jax.models import create_model

CONFIGS = {
    "egornn_flow": dict(num_classes=4, **SMALL),
    "lsta_flow": dict(num_classes=4, verb_classes=2, **SMALL),
    "egornn_two_stream": dict(num_classes=4, mem_size=16, attention_classes=5, **SMALL),
    "lsta_two_stream": dict(
        num_classes=4, mem_size=16, c_cam_classes=4, attention_classes=5, verb_classes=2, summary_features=4,
        flow_mem_size=16, **SMALL,
    ),
}  # fmt: skip
GEOMETRY = ["--num-frames", "3", "--size", "32", "--resize-shorter", "32", "--no-progress"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flow_inference")
    write_gtea(root / "gtea", missing=())
    write_frames(root / "elsewhere" / "clip_1", 7, 3)  # RGB frames with no flow anywhere
    return root


@pytest.fixture(scope="module", params=list(CONFIGS))
def checkpoint(request, tree):
    kind = request.param
    model = create_model(kind, **CONFIGS[kind])
    variables = random_like(abstract_variables(model, kind, CONFIGS[kind]), seed=3)
    save_model(tree / kind, kind, CONFIGS[kind], variables, class_names=["a", "b", "c", "d"])
    return kind, model, variables, tree / kind


def direct(kind: str, model, variables, source: Path) -> dict[str, np.ndarray]:
    """model.apply on the input as the reference's evaluation reads it: 3 frames, centre flow stack."""
    inputs = {"flow": load_centre_flow_stack(source, 32, 32)[0][None]}
    if "two_stream" in kind:
        inputs["clip"] = load_clip(source, 3, 32, 32)[None]
    kept = {k: v for k, v in variables.items() if k in ("params", "batch_stats")}
    return {k: np.asarray(v[0]) for k, v in model.apply(kept, **inputs).items()}


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


def test_predict_equals_a_direct_apply_and_names_an_input_without_flow(checkpoint, tree, tmp_path, capsys):
    from lsta_jax.predict import main

    kind, model, variables, path = checkpoint
    good = tree / "gtea" / "frames" / "S2" / "close_jam" / "close_jam_1"
    no_flow = tree / "elsewhere" / "clip_1"
    overlays = [] if kind == "egornn_flow" else ["--attention-dir", str(tmp_path / "maps")]
    status = main(["--checkpoint", str(path), str(good), str(no_flow), "--top-k", "4", *GEOMETRY, *overlays])
    assert status == 1
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    expected = softmax(direct(kind, model, variables, good)["logits"].astype(np.float64))
    got = np.zeros(4)
    for entry in first["top_k"]:
        got[entry["index"]] = entry["score"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert first["label"] == "abcd"[int(np.argmax(expected))]
    assert not second["ok"] and str(no_flow) in second["error"] and "flow" in second["error"]
    if overlays:
        assert first["overlay"] and all(Path(p).is_file() for p in first["overlay"])


def test_extract_writes_the_models_features(checkpoint, tree, tmp_path, capsys):
    from lsta_jax.extract import main

    kind, model, variables, path = checkpoint
    good = tree / "gtea" / "frames" / "S2" / "open_jam" / "open_jam_1"
    no_flow = tree / "elsewhere" / "clip_1"
    out = tmp_path / "feats"
    status = main(["--checkpoint", str(path), str(no_flow), str(good), "--output-dir", str(out), *GEOMETRY])
    assert status == 1
    features = np.load(out / "features.npy")
    expected = direct(kind, model, variables, good)["features"][None]
    scale = np.abs(expected).max()  # jit and eager float32 sums differ by ~1e-6 of the largest feature
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5 * scale)
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert index[0]["row"] is None and str(no_flow) in index[0]["error"] and index[1]["row"] == 0
    assert main(["--checkpoint", str(path), str(good), "--output-dir", str(out), "--frame-features"]) == 2


def test_a_flow_only_model_reads_a_flow_clip_folder_as_its_frame_folder(checkpoint, tree, capsys):
    from lsta_jax.predict import main

    kind, _, _, path = checkpoint
    if "two_stream" in kind:
        pytest.skip("a two-stream model needs the RGB frames too")
    rel = Path("S2") / "take_bread" / "take_bread_1"
    inputs = [str(tree / "gtea" / layout / rel) for layout in ("frames", "flow_x", "flow_y")]
    assert main(["--checkpoint", str(path), *inputs, "--top-k", "4", *GEOMETRY]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["top_k"] == lines[1]["top_k"] == lines[2]["top_k"]
    if kind == "egornn_flow":  # nothing to draw
        assert main(["--checkpoint", str(path), inputs[0], "--attention-dir", "x", *GEOMETRY]) == 2


def test_evaluate_runs_each_kind_on_its_modality(checkpoint, tree, tmp_path):
    """`evaluate` feeds `trainer.model_inputs` of the 'flow' / 'rgb+flow' pipeline: its top-1 is the direct
    forward's on the same batches (the 4 test clips of split 2)."""
    import jax

    from lsta_jax.evaluate import evaluate_checkpoint
    from lsta_jax.train import trainer
    from lsta_jax.train.config import load_config
    from lsta_jax.train.input_pipeline import make_data

    kind, model, variables, path = checkpoint
    config = load_config("configs/gtea61.py:split=2")
    config.data.update(
        data_dir=str(tree / "tfds"), manual_dir=str(tree / "gtea"), num_frames=3, crop_size=32,
        resize_shorter=32, modality="rgb+flow" if "two_stream" in kind else "flow",
    )  # fmt: skip
    config.model.update(num_classes=4)
    config.global_batch_size, config.eval_batch_size = 4, 8
    summary = evaluate_checkpoint(path, config, output=tmp_path / "eval")
    kept = {k: v for k, v in variables.items() if k in ("params", "batch_stats")}
    forward = jax.jit(lambda inputs: model.apply(kept, **inputs)["logits"])
    hits = [
        (np.asarray(forward(trainer.model_inputs(b))).argmax(1) == b["label"])[b["mask"]]
        for b in make_data(config).make_eval()
    ]
    assert summary["count"] == 4
    assert summary["top1"] == pytest.approx(np.concatenate(hits).mean())
