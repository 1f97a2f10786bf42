"""EPIC-KITCHENS end to end on a fake tree: the documented commands train a tiny multi-task LSTA, evaluate it
with the challenge metrics and write valid challenge submissions (EPIC-55 and EPIC-100)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from data_fixtures import EPIC100_ROWS, write_epic, write_epic100
from test_lsta import random_variables

from lsta_jax import load_model
from lsta_jax.evaluate import main as evaluate_main
from lsta_jax.submission import FORMATS, check_submission, submission_dict
from lsta_jax.submission import main as submission_main
from lsta_jax.train import losses
from lsta_jax.train.__main__ import main as train_main
from lsta_jax.train.optimizer import param_path

TINY_MODEL = [
    "--config.model.mem_size=32",
    "--config.model.c_cam_classes=6",
    "--config.model.attention_classes=10",
    "--config.model.backbone_stage_sizes=(1,1,1,1)",
    "--config.model.backbone_widths=(8,16,16,32)",
]


def data_flags(raw, tfds):
    return [
        f"--config.data.data_dir={tfds}",
        f"--config.data.manual_dir={raw}",
        "--config.data.num_frames=2",
        "--config.data.crop_size=32",
        "--config.data.resize_shorter=36",
        "--config.eval_batch_size=4",  # the tests run on 4 CPU devices (conftest)
        "--config.global_batch_size=4",
    ]


def test_multitask_loss_is_the_weighted_sum_of_three_cross_entropies_by_hand():
    outputs = {
        "logits": np.zeros((1, 3), np.float32),  # CE = log 3
        "verb_logits": np.zeros((1, 4), np.float32),  # CE = log 4
        "noun_logits": np.array([[np.log(3.0), 0.0, 0.0]], np.float32),  # p(0) = 3/5: CE = log(5/3)
    }
    batch = {"label": np.array([1]), "verb": np.array([2]), "noun": np.array([0])}
    got = float(losses.total_loss(outputs, batch, {"label": 1.0, "verb": 0.5, "noun": 2.0}))
    assert got == pytest.approx(np.log(3) + 0.5 * np.log(4) + 2 * np.log(5 / 3), rel=1e-6)


@pytest.mark.slow  # ~70 s of CPU time (3 min on a loaded 2-core box): four compiles
def test_epic55_train_evaluate_and_submit_on_a_fake_tree(tmp_path, capsys):
    raw = write_epic(tmp_path / "raw")
    with (raw / "EPIC_train_action_labels.csv").open("a") as f:  # a 4th training segment: batches of 4
        f.write("4,P02_01,x,,,1,5,P02,v,1,n,3,,\n")
    (raw / "EPIC_test_s2_timestamps.csv").write_text(
        "uid,participant_id,video_id,start_timestamp,stop_timestamp,start_frame,stop_frame\n"
        "9100,P02,P02_01,,,1,6\n9101,P02,P02_01,,,4,10\n9102,P01,P01_02,,,1,5\n"
    )
    data = data_flags(raw, tmp_path / "tfds")
    workdir = tmp_path / "run"
    train = ["--config", "configs/epic.py", "--workdir", str(workdir), *TINY_MODEL, *data]
    train += ["--config.trainable=all", "--config.model.batchnorm=train", "--config.total_steps=2"]
    train += [
        "--config.log_every_steps=1",
        "--config.learning_rate=0.01",
        "--config.checkpoint_every_steps=1",
    ]
    assert train_main(train) == 0
    summary = json.loads((workdir / "eval" / "summary.json").read_text())
    for task in ("verb", "noun", "action"):
        for metric in ("top1", "top5", "mean_class_recall"):
            assert 0.0 <= summary[f"{task}_{metric}"] <= 1.0
    assert summary["count"] == 1  # the held-out validation video P01_02

    # the verb and noun losses reached their heads and the bias control (stage set + total_loss)
    _, init = load_model(workdir, which=1)
    _, last = load_model(workdir, which=2)
    flat = {param_path(p): v for p, v in jax.tree_util.tree_leaves_with_path(init["params"])}
    after = {param_path(p): v for p, v in jax.tree_util.tree_leaves_with_path(last["params"])}
    for name in ("fc_verb/kernel", "fc_noun/bias", "action_to_verb/kernel", "action_to_noun/kernel"):
        assert not np.array_equal(flat[name], after[name]), name

    assert evaluate_main(["--checkpoint", str(workdir), "--config", "configs/epic.py", *data]) == 0
    printed = capsys.readouterr().out
    assert "verb_top1" in printed and "action_mean_class_recall" in printed

    for split, ids in (("test_s1", ["9000"]), ("test_s2", ["9100", "9101", "9102"])):
        out = tmp_path / f"{split}.json"
        args = ["--checkpoint", str(workdir), "--config", "configs/epic.py", "--split", split]
        assert submission_main([*args, "--output", str(out), "--no-progress", *data]) == 0
        sub = json.loads(out.read_text())
        # the challenge's schema, checked here independently of check_submission
        assert sub["version"] == "0.1" and sub["challenge"] == "action_recognition"
        assert "sls_pt" not in sub and sorted(sub["results"]) == sorted(ids)
        for entry in sub["results"].values():
            assert sorted(entry) == ["noun", "verb"]
            assert sorted(map(int, entry["verb"])) == list(range(125))
            assert sorted(map(int, entry["noun"])) == list(range(352))
            assert all(isinstance(v, float) for v in entry["verb"].values())
    # a single-head checkpoint cannot make a submission: a one-line error, status 2
    err = submission_main(["--checkpoint", str(tmp_path / "nope"), "--config", "configs/epic.py"] + [
        "--split", "test_s1", "--output", str(tmp_path / "x.json"), *data])  # fmt: skip
    assert err == 2 and "nope" in capsys.readouterr().err


def test_epic100_submission_format_and_check():
    fmt = FORMATS["epic_kitchens100"]
    ids = [row[0] for row in EPIC100_ROWS["test"]]
    verbs, nouns = np.arange(2 * 97).reshape(2, 97) / 7.0, -np.ones((2, 300))
    sub = submission_dict(ids, verbs, nouns, fmt, sls=(1, 3, 3))
    assert (sub["version"], sub["challenge"]) == ("0.2", "action_recognition")
    assert (sub["sls_pt"], sub["sls_tl"], sub["sls_td"]) == (1, 3, 3)
    assert sub["results"]["P02_01_1"]["verb"]["96"] == pytest.approx(round((97 + 96) / 7.0, 6))
    check_submission(json.loads(json.dumps(sub)), ids, 97, 300, fmt)
    with pytest.raises(ValueError, match="missing: \\['P99_01_0'\\]"):
        check_submission(sub, [*ids, "P99_01_0"], 97, 300, fmt)
    del sub["results"]["P01_101_1"]["noun"]["299"]
    with pytest.raises(ValueError, match="P01_101_1: noun scores"):
        check_submission(sub, ids, 97, 300, fmt)
    with pytest.raises(ValueError, match="SLS"):
        submission_dict(ids, verbs, nouns, fmt, sls=(1, 3, 6))


def test_epic100_builds_and_submits_on_a_fake_tree(tmp_path):
    """The EPIC-100 path through the command with a saved random multi-task model (no training)."""
    from lsta_jax.checkpoint import save_model
    from lsta_jax.models import create_model

    raw = write_epic100(tmp_path / "raw")
    config = dict(num_classes=4, mem_size=32, c_cam_classes=6, attention_classes=10, verb_classes=97)
    config.update(noun_classes=300, backbone_stage_sizes=(1, 1, 1, 1), backbone_widths=(8, 16, 16, 32))
    model = create_model("lsta_rgb", **config)
    variables = random_variables(model, jnp.zeros((1, 2, 32, 32, 3), jnp.float32))
    save_model(tmp_path / "model", "lsta_rgb", config, variables, [f"a{i}" for i in range(4)])
    out = tmp_path / "test.json"
    args = ["--checkpoint", str(tmp_path / "model"), "--config", "configs/epic100.py", "--split", "test"]
    args += ["--output", str(out), "--no-progress", "--sls-td", "4", *data_flags(raw, tmp_path / "tfds")]
    assert submission_main(args) == 0
    sub = json.loads(out.read_text())
    assert sub["version"] == "0.2" and sub["sls_td"] == 4
    assert sorted(sub["results"]) == ["P01_101_1", "P02_01_1"]
    assert len(sub["results"]["P02_01_1"]["verb"]) == 97 and len(sub["results"]["P02_01_1"]["noun"]) == 300

    # predict on a frames folder reports the heads' top-1 verb and noun (as a direct forward of the same clip)
    from lsta_jax.data import load_clip
    from lsta_jax.predict import main as predict_main

    folder = raw / "P01" / "rgb_frames" / "P01_101"
    flags = [
        "--num-frames",
        "2",
        "--size",
        "32",
        "--resize-shorter",
        "36",
        "--no-progress",
        "--min-frames",
        "2",
    ]
    out_lines = tmp_path / "pred.jsonl"
    assert (
        predict_main(
            [str(folder), "--checkpoint", str(tmp_path / "model"), *flags, "--output", str(out_lines)]
        )
        == 0
    )
    line = json.loads(out_lines.read_text())
    clip = load_clip(folder, num_frames=2, size=32, resize_shorter=36, min_frames=2)[None]
    direct = jax.jit(model.apply)(variables, jnp.asarray(clip))
    assert line["verb"] == int(np.argmax(direct["verb_logits"])) and line["noun"] == int(
        np.argmax(direct["noun_logits"])
    )
