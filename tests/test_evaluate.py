"""Evaluation metrics against hand-computed values, and `lsta_jax.evaluate` against a direct model.apply."""

import csv
import json

import jax.numpy as jnp
import numpy as np
import pytest
from test_train import tiny_config

from lsta_jax.checkpoint import save_model
from lsta_jax.evaluate import evaluate_checkpoint, main
from lsta_jax.models import create_model
from lsta_jax.train import metrics, trainer
from lsta_jax.train.input_pipeline import make_data


def test_summary_by_hand_with_padding_and_verb_noun_names():
    names = ["take_cup", "take_spoon,cup", "put_cup", "open_jar"]
    logits = np.array(
        [
            [5, 1, 0, 0],  # true 0 -> 0
            [0, 1, 5, 0],  # true 1 -> 2 (verb wrong, noun right: 'spoon,cup' != 'cup')
            [0, 0, 5, 1],  # true 2 -> 2
            [5, 0, 0, 1],  # true 2 -> 0 (verb wrong, noun right)
            [9, 9, 9, 9],  # padding: must not count
        ],
        np.float32,
    )
    labels = np.array([0, 1, 2, 2, 3])
    mask = np.array([True, True, True, True, False])
    first = metrics.batch_sums(jnp.asarray(logits[:3]), jnp.asarray(labels[:3]), jnp.asarray(mask[:3]))
    second = metrics.batch_sums(jnp.asarray(logits[3:]), jnp.asarray(labels[3:]), jnp.asarray(mask[3:]))
    s = metrics.summarize(metrics.add_sums(metrics.add_sums(None, first), second), names)
    assert s["count"] == 4
    assert s["top1"] == pytest.approx(2 / 4)
    # per class: 0 -> 1/1, 1 -> 0/1, 2 -> 1/2, 3 absent -> mean over present classes
    assert s["per_class_accuracy"] == [1.0, 0.0, 0.5, None]
    assert s["mean_class_accuracy"] == pytest.approx((1 + 0 + 0.5) / 3)
    # verbs: take==take, take!=put, put==put, put!=take -> 2/4
    # nouns: cup==cup, 'spoon,cup'!=cup, cup==cup, cup==cup -> 3/4
    assert s["verb_accuracy"] == pytest.approx(2 / 4)
    assert s["noun_accuracy"] == pytest.approx(3 / 4)
    assert s["top5"] == pytest.approx(1.0)  # 4 classes: top-5 is everything
    ce = -np.log(np.exp(logits[:4]) / np.exp(logits[:4]).sum(1, keepdims=True))[np.arange(4), labels[:4]]
    assert s["loss"] == pytest.approx(ce.mean(), rel=1e-5)


def test_evaluate_command_equals_a_direct_forward(tmp_path, capsys):
    config = tiny_config()
    model = create_model("lsta_rgb", **trainer.model_config(config))
    import jax

    variables = trainer.init_variables(model, config, jax.random.PRNGKey(3))
    data = make_data(config)
    save_model(tmp_path / "model", "lsta_rgb", trainer.model_config(config), variables, data.class_names)
    summary = evaluate_checkpoint(tmp_path / "model", config, output=tmp_path / "out")

    clips = np.concatenate([b["clip"][b["mask"]] for b in data.make_eval()])
    labels = np.concatenate([b["label"][b["mask"]] for b in data.make_eval()])
    logits = np.asarray(jax.jit(model.apply)(variables, jnp.asarray(clips))["logits"])
    assert summary["count"] == config.data.num_eval
    assert summary["top1"] == pytest.approx(np.mean(logits.argmax(1) == labels))
    rows = list(csv.reader((tmp_path / "out" / "confusion.csv").open()))
    table = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    want = np.zeros((4, 4), int)
    np.add.at(want, (labels, logits.argmax(1)), 1)
    np.testing.assert_array_equal(table, want)
    assert (tmp_path / "out" / "confusion.png").stat().st_size > 1000
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["count"] == config.data.num_eval
    # the command: a missing checkpoint is a clear error naming it
    assert main(["--checkpoint", str(tmp_path / "nope"), "--config", "configs/synthetic.py:toy"]) == 2
    assert "nope" in capsys.readouterr().err
