"""Training the LSTA motion stream and the cross-modal two-stream model (configs/lsta_flow.py,
configs/lsta_two_stream.py): the paper's protocols, one step each on in-memory batches (small backbones), the
stage chain verb network -> motion stream -> two-stream by grafting saved model directories, toy flow data."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from lsta_jax.checkpoint import abstract_variables, save_model
from lsta_jax.models import create_model
from lsta_jax.train import trainer
from lsta_jax.train.config import load_config
from lsta_jax.train.input_pipeline import make_data

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
LAYOUT = dict(backbone_stage_sizes=(1, 1, 1, 1), backbone_widths=(8, 8, 16, 16))
RGB = dict(mem_size=16, c_cam_classes=6, attention_classes=11)


def small_config(spec: str, **model):
    config = load_config(str(CONFIGS / spec))
    config.model.update(LAYOUT, **model)
    config.data.update(num_frames=2, crop_size=32)
    config.global_batch_size = 4
    return config


def fake_batch(config, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = trainer.example_inputs(config)
    batch = {k: rng.standard_normal((4, *v.shape[1:])).astype(np.float32) for k, v in inputs.items()}
    batch["label"] = rng.integers(0, config.model.num_classes, 4).astype(np.int32)
    return batch


def leaves(tree) -> dict[str, np.ndarray]:
    return {
        "/".join(str(k.key) for k in path): np.asarray(v)
        for path, v in jax.tree_util.tree_leaves_with_path(tree)
    }


def one_step(config):
    model = create_model(config.model.kind, **trainer.model_config(config))
    state, tx, mask, schedule = trainer.create_train_state(config, model, steps_per_epoch=2)
    steps = trainer.compile_steps(model, tx, mask)
    before = leaves({"params": state.params, "batch_stats": state.batch_stats})
    new_state, metrics = steps.train(steps.replicate(state), steps.put_batch(fake_batch(config)))
    after = leaves({"params": new_state.params, "batch_stats": new_state.batch_stats})
    assert bool(metrics["finite"])
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    return model, leaves(mask), before, changed, schedule


def test_flow_stages_follow_the_papers_protocol_and_train_one_step():
    verb = small_config("lsta_flow.py:stage=verb,dataset=egtea,split=3")
    assert verb.model.kind == "egornn_flow" and verb.data.label_key == "verb" and verb.model.num_classes == 0
    assert (verb.data.name, verb.data.builder_config, verb.data.modality) == (
        "egtea_gaze_plus",
        "split3",
        "flow",
    )
    assert (verb.optimizer, verb.learning_rate, verb.lr_milestones, verb.lr_gamma, verb.num_epochs) == (
        "sgd",
        0.01,
        (75, 150, 250, 500),
        0.5,
        700,
    )
    activity = small_config("lsta_flow.py:stage=activity,dataset=gtea61", num_classes=5, verb_classes=3)
    assert activity.model.kind == "lsta_flow" and activity.data.label_key == "label"
    assert (activity.lr_milestones, activity.num_epochs, activity.data.builder_config) == (
        (50, 100),
        500,
        "split2",
    )
    model, mask, before, changed, _ = one_step(activity)
    assert trainer.trains_batchnorm(model)  # ego-rnn's flow protocol: BatchNorm statistics while training
    # everything trains but the selector's bias, which only moves the argmax (no gradient, never updated)
    params = {k.removeprefix("params/") for k in before if k.startswith("params/")}
    assert {k for k, m in mask.items() if not m} == {"resNet/fc_action/bias"}
    assert {k.removeprefix("params/") for k in changed if k.startswith("params/")} == params - {
        "resNet/fc_action/bias"
    }
    assert "batch_stats/resNet/layer4_0/bn2/mean" in changed


def test_two_stream_config_follows_the_papers_protocol_and_trains_its_set():
    config = small_config(
        "lsta_two_stream.py:dataset=egtea",
        num_classes=5,
        verb_classes=3,
        summary_features=8,
        flow_mem_size=16,
        **RGB,
    )
    assert config.model.num_classes == 5 and config.num_epochs == 100  # EGTEA: 100 epochs (GTEA 200)
    assert load_config(str(CONFIGS / "lsta_two_stream.py:gtea71")).num_epochs == 200
    assert (config.optimizer, config.learning_rate, config.lr_schedule, config.lr_gamma) == (
        "adam",
        0.01,
        "exponential",
        0.99,
    )
    model, mask, before, changed, schedule = one_step(config)
    # lr 0.01 x 0.99 after each epoch (2 steps per epoch here)
    lrs = [float(schedule(n)) for n in (0, 1, 2, 5)]
    np.testing.assert_allclose(lrs, [0.01, 0.01, 0.0099, 0.01 * 0.99**2], rtol=1e-6)
    assert not trainer.trains_batchnorm(model) and not any(k.startswith("batch_stats/") for k in changed)
    trained = {k for k, m in mask.items() if m}
    for name in (
        "conv_x_flow_i/kernel",  # starts at zero, moves with the first step
        "conv_x_rgb_o/kernel",
        "rgb_summary/kernel",
        "flow_lstm_cell/conv_c_xx/kernel",
        "frameModel/lsta_cell/conv_i_x/kernel",
        "frameModel/resNet/layer4_0/conv2/kernel",
        "flowModel/resNet/layer4_0/bn1/scale",
        "flowModel/fc/kernel",
    ):
        assert name in trained and f"params/{name}" in changed, name
    for name in (
        "frameModel/lsta_cell/coupling_fc/kernel",
        "frameModel/resNet/fc/bias",
        "flowModel/resNet/fc_action/bias",
        "frameModel/resNet/layer3_0/conv1/kernel",
        "frameModel/resNet/layer4_0/bn1/scale",
        "flowModel/resNet/layer3_0/conv1/kernel",
        "flowModel/resNet/conv1/kernel",
    ):
        assert name not in trained and f"params/{name}" not in changed, name
    assert not np.any(before["params/conv_x_flow_i/kernel"])  # fusion_init 'zeros'


def random_like(tree, seed: int):
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda x: rng.standard_normal(x.shape).astype(x.dtype), tree)


def test_stage_chain_grafts_verb_net_into_motion_stream_and_both_streams_into_two_stream(tmp_path):
    # stage (a): a "trained" verb network (3 verbs)
    verb_config = dict(num_classes=3, **LAYOUT)
    verb_net = random_like(
        abstract_variables(create_model("egornn_flow", **verb_config), "egornn_flow", verb_config), 1
    )
    save_model(tmp_path / "verb", "egornn_flow", verb_config, verb_net)
    # stage (b) from it: verb_classes 0 -> 3 from the workdir, its whole tree is the motion stream's resNet
    activity = small_config("lsta_flow.py:stage=activity", num_classes=5)
    activity.init_from = str(tmp_path / "verb")
    assert activity.model.verb_classes == 0
    activity.model.verb_classes = trainer.selector_classes_of_init(activity)
    assert activity.model.verb_classes == 3
    motion = create_model("lsta_flow", **trainer.model_config(activity))
    scratch = random_like(abstract_variables(motion, "lsta_flow", trainer.model_config(activity)), 4)
    grafted = leaves(trainer.load_init(activity, scratch))
    for key, value in leaves(verb_net).items():
        collection, rest = key.split("/", 1)
        assert grafted[f"{collection}/resNet/{rest}"].tobytes() == value.tobytes(), key
    np.testing.assert_array_equal(grafted["params/fc/kernel"], leaves(scratch)["params/fc/kernel"])

    # the two-stream model from a trained RGB stream and that motion stream
    flow_config = trainer.model_config(activity)
    rgb_config = dict(num_classes=5, **RGB, **LAYOUT)
    rgb = random_like(abstract_variables(create_model("lsta_rgb", **rgb_config), "lsta_rgb", rgb_config), 2)
    flow = random_like(abstract_variables(motion, "lsta_flow", flow_config), 3)
    save_model(tmp_path / "rgb", "lsta_rgb", rgb_config, rgb)
    save_model(tmp_path / "flow", "lsta_flow", flow_config, flow)
    config = small_config(
        "lsta_two_stream.py",
        num_classes=5,
        summary_features=8,
        flow_mem_size=16,
        **RGB,
    )
    config.init_from_rgb, config.init_from_flow = str(tmp_path / "rgb"), str(tmp_path / "flow")
    config.model.verb_classes = trainer.selector_classes_of_init(config)  # 3, from the lsta_flow workdir
    model = create_model("lsta_two_stream", **trainer.model_config(config))
    scratch = random_like(abstract_variables(model, "lsta_two_stream", trainer.model_config(config)), 5)
    grafted = leaves(trainer.load_stream_inits(config, scratch))
    for prefix, source in (("frameModel", rgb), ("flowModel", flow)):
        for key, value in leaves(source).items():
            collection, rest = key.split("/", 1)
            assert grafted[f"{collection}/{prefix}/{rest}"].tobytes() == value.tobytes(), key
    for key, value in leaves(scratch).items():  # the fusion parameters keep their initialisation
        if "frameModel" not in key and "flowModel" not in key:
            assert grafted[key].tobytes() == value.tobytes(), key
    # a workdir of the wrong stream does not fit
    config.init_from_flow = str(tmp_path / "rgb")
    with pytest.raises(ValueError, match="does not fit"):
        trainer.load_stream_inits(config, scratch)


@pytest.mark.parametrize("modality", ["flow", "rgb+flow"])
def test_toy_data_gives_flow_batches_whose_motion_is_the_class_direction(modality):
    config = load_config(str(CONFIGS / "synthetic.py:toy"))
    config.model.num_classes = 4
    config.data.update(num_train=8, num_eval=4, num_frames=2, crop_size=40, modality=modality)
    config.global_batch_size, config.eval_batch_size = 4, 4
    data = make_data(config)
    batch = next(data.train)
    assert batch["flow"].shape == (4, 40, 40, 10) and ("clip" in batch) == (modality == "rgb+flow")
    evaluation = next(data.make_eval())
    assert evaluation["flow"].shape == (4, 40, 40, 10) and evaluation["mask"].all()
    # the strongest flow vector of each clip points in its class direction (angle 2 pi c / 4)
    background = (128 / 255 - 0.449) / 0.226
    for flow, label in zip(batch["flow"], batch["label"], strict=True):
        dx, dy = flow[..., 0] - background, flow[..., 1] - background
        k = np.argmax(dx**2 + dy**2)
        angle = np.arctan2(dy.flat[k], dx.flat[k])
        assert abs(np.angle(np.exp(1j * (angle - 2 * np.pi * label / 4)))) < 0.3
