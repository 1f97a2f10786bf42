"""eleGAtt baseline (`elegatt_rgb`): the gate and one LSTM step against a hand-written numpy step."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from test_lsta import SMALL, random_variables

from lsta_jax.models import create_model
from lsta_jax.models.baselines import EleGAttLSTMCell


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_step(p, c, h, x):
    """eleGAtt: a = σ(W_xa x + W_ha h + b_a), x̃ = a ⊙ x, then the textbook LSTM step on x̃."""
    a = sigmoid(x @ p["attention_x"]["kernel"] + p["attention_x"]["bias"] + h @ p["attention_h"]["kernel"])
    xt = a * x
    lstm = p["lstm"]

    def pre(g):
        return xt @ lstm[f"i{g}"]["kernel"] + h @ lstm[f"h{g}"]["kernel"] + lstm[f"h{g}"]["bias"]

    i, f, g, o = sigmoid(pre("i")), sigmoid(pre("f")), np.tanh(pre("g")), sigmoid(pre("o"))
    c_new = f * c + i * g
    return a, c_new, o * np.tanh(c_new)


def test_gate_and_one_step_equal_a_numpy_step():
    rng = np.random.default_rng(0)
    b, d, hidden = 3, 6, 5
    x = rng.normal(size=(b, d)).astype(np.float32)
    carry = (rng.normal(size=(b, hidden)).astype(np.float32), rng.normal(size=(b, hidden)).astype(np.float32))
    cell = EleGAttLSTMCell(hidden_size=hidden)
    shapes = jax.eval_shape(cell.init, jax.random.key(0), carry, x)["params"]
    params = jax.tree_util.tree_map(lambda s: rng.normal(0, 0.5, s.shape).astype(np.float32), shapes)
    assert sorted(params) == ["attention_h", "attention_x", "lstm"]
    assert params["attention_x"]["kernel"].shape == (d, d) and "bias" not in params["attention_h"]
    (c_t, h_t), out = jax.jit(cell.apply)({"params": params}, carry, x)
    a, c_want, h_want = numpy_step(params, *carry, x)
    np.testing.assert_allclose(out["gate"], a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_t, c_want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_t, h_want, rtol=1e-5, atol=1e-6)
    assert np.all((out["gate"] > 0) & (out["gate"] < 1))


def test_classifier_scans_the_cell_over_the_pooled_frame_features():
    config = {k: v for k, v in SMALL.items() if k not in ("mem_size", "c_cam_classes")}
    model = create_model("elegatt_rgb", **config, hidden_size=8)
    clip = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 32, 32, 3)), jnp.float32)
    variables = random_variables(model, clip, seed=2)
    out = jax.jit(model.apply, static_argnames="return_frame_features")(
        variables, clip, return_frame_features=True
    )
    assert out["logits"].shape == (2, 5) and out["gate"].shape == (2, 3, 32)
    np.testing.assert_allclose(out["attention"].sum(axis=(2, 3)), 1.0, rtol=1e-6)
    p = jax.tree_util.tree_map(np.asarray, variables["params"])
    c = h = np.zeros((2, 8), np.float32)
    for t in range(3):  # the recurrence by hand over the model's own pooled frame features
        a, c, h = numpy_step(p["elegatt_cell"], c, h, np.asarray(out["frame_features"][:, t]))
        np.testing.assert_allclose(out["gate"][:, t], a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["features"], h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["logits"], h @ p["fc"]["kernel"] + p["fc"]["bias"], rtol=1e-4, atol=1e-5)


def test_elegatt_checkpoint_works_with_predict_extract_and_evaluate(tmp_path):
    from inference_fixtures import moving_square_frames, write_frame_folder
    from test_train import tiny_config

    from lsta_jax.checkpoint import save_model
    from lsta_jax.evaluate import evaluate_checkpoint
    from lsta_jax.extract import main as extract_main
    from lsta_jax.predict import main as predict_main

    config = dict(num_classes=4, hidden_size=8, attention_classes=10)
    config.update(backbone_stage_sizes=[1, 1, 1, 1], backbone_widths=[8, 16, 16, 32])
    model = create_model("elegatt_rgb", **config)
    variables = random_variables(model, jnp.zeros((1, 2, 48, 48, 3), jnp.float32), seed=3)
    names = ["a_x", "b_x", "c_y", "d_y"]
    model_dir = save_model(tmp_path / "model", "elegatt_rgb", config, variables, names)
    folder = write_frame_folder(tmp_path / "clip", moving_square_frames(4, 48, 48, seed=1))
    common = [str(folder), "--checkpoint", str(model_dir), "--num-frames", "2", "--size", "48"]
    common += ["--resize-shorter", "48", "--batch-size", "4", "--no-progress"]
    assert predict_main([*common, "--output", str(tmp_path / "p.jsonl")]) == 0
    line = json.loads((tmp_path / "p.jsonl").read_text())
    assert line["ok"] and line["label"] in names
    assert extract_main([*common, "--output-dir", str(tmp_path / "features")]) == 0
    assert np.load(tmp_path / "features" / "features.npy").shape == (1, 8)  # h_T of the 8-unit LSTM
    summary = evaluate_checkpoint(model_dir, tiny_config(), output=tmp_path / "eval")
    assert summary["count"] == tiny_config().data.num_eval and 0 <= summary["top1"] <= 1


def test_elegatt_configs_train_the_cell_and_fc_then_layer4_convs():
    from lsta_jax.train.config import load_config
    from lsta_jax.train.optimizer import param_path, trainable_mask

    config = {k: v for k, v in SMALL.items() if k not in ("mem_size", "c_cam_classes")}
    model = create_model("elegatt_rgb", **config, hidden_size=8)
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 2, 32, 32, 3)))["params"]
    for stage in (1, 2):
        c = load_config(f"configs/elegatt.py:dataset=gtea71,stage={stage}")
        assert c.model.kind == "elegatt_rgb" and c.data.name == "gtea71" and c.model.hidden_size == 512
        mask = trainable_mask(params, c.trainable)
        trained = {param_path(p) for p, m in jax.tree_util.tree_leaves_with_path(mask) if m}
        want = {param_path(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)}
        want = {k for k in want if k.startswith(("elegatt_cell/", "fc/"))}
        if stage == 2:  # + layer4 conv kernels, never the unused ImageNet fc
            want |= {f"resNet/layer4_0/conv{i}/kernel" for i in (1, 2)}
        assert trained == want
    assert load_config("configs/elegatt.py:dataset=gtea71,stage=2").learning_rate == 1e-4
