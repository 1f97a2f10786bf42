"""ego-rnn's training protocols (configs/egornn_{flow,rgb,two_stream}.py): one training step each on
in-memory batches (small backbones), and the initialisations they rely on (ImageNet -> flow, single streams ->
two-stream).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from lsta_jax.checkpoint import abstract_variables, save_model
from lsta_jax.convert.ego_rnn_flow import flow_init_from_resnet
from lsta_jax.models import create_model
from lsta_jax.train import optimizer as opt
from lsta_jax.train import trainer
from lsta_jax.train.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMALL = dict(backbone_stage_sizes=(1, 1, 1, 1), backbone_widths=(8, 8, 16, 16))


def small_config(spec: str):
    config = load_config(str(CONFIGS / spec))
    config.model.update(SMALL)
    if "mem_size" in config.model:
        config.model.update(mem_size=16, attention_classes=11)
    config.data.update(num_frames=2, crop_size=32)
    config.global_batch_size = 4
    return config


def fake_batch(config, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = trainer.example_inputs(config)
    batch = {k: rng.standard_normal((4, *v.shape[1:])).astype(np.float32) for k, v in inputs.items()}
    batch["label"] = rng.integers(0, config.model.num_classes, 4).astype(np.int32)
    return batch


def random_like(tree, seed: int = 0):
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda x: rng.standard_normal(x.shape).astype(x.dtype), tree)


def one_step(config):
    model = create_model(config.model.kind, **trainer.model_config(config))
    state, tx, mask, _ = trainer.create_train_state(config, model, steps_per_epoch=2)
    steps = trainer.compile_steps(model, tx, mask)
    before = jax.device_get((state.params, state.batch_stats))
    new_state, metrics = steps.train(steps.replicate(state), steps.put_batch(fake_batch(config)))
    after = jax.device_get((new_state.params, new_state.batch_stats))
    return model, mask, before, after, metrics


def changed_paths(a, b) -> set[str]:
    flags = jax.tree_util.tree_map(lambda x, y: not np.array_equal(x, y), a, b)
    return {"/".join(str(k.key) for k in path) for path, f in jax.tree_util.tree_leaves_with_path(flags) if f}


def test_egornn_flow_config_trains_everything_with_batchnorm_statistics():
    config = small_config("egornn_flow.py:dataset=gtea71,split=3")
    assert (config.data.name, config.data.builder_config, config.model.num_classes) == (
        "gtea71",
        "split3",
        71,
    )
    assert config.optimizer == "sgd" and config.lr_milestones == (150, 300, 500) and config.lr_gamma == 0.5
    model, mask, (p0, s0), (p1, s1), metrics = one_step(config)
    assert bool(metrics["finite"]) and trainer.trains_batchnorm(model)
    assert all(jax.tree_util.tree_leaves(mask))
    assert changed_paths(p0, p1) == set(changed_paths(p0, jax.tree_util.tree_map(lambda x: x + 1, p0)))
    assert "layer4_0/bn2/mean" in changed_paths(s0, s1) and "bn1/var" in changed_paths(s0, s1)


def test_egornn_rgb_config_trains_ego_rnns_sets():
    stage1 = small_config("egornn_rgb.py:split=2")
    model = create_model("convlstm_rgb", **trainer.model_config(stage1))
    params = abstract_variables(model, "convlstm_rgb", {})["params"]
    mask = opt.trainable_mask(params, stage1.trainable)
    trained = {"/".join(str(k.key) for k in p) for p, m in jax.tree_util.tree_leaves_with_path(mask) if m}
    assert trained and all(
        p.startswith(("lstm_cell/", "fc/")) for p in trained
    )  # stage 1: the backbone frozen

    config = small_config("egornn_rgb.py:split=2,stage=2")
    assert config.weight_decay == 4e-5 and config.num_epochs == 150 and config.init_which == "best"
    _, _, (p0, s0), (p1, s1), metrics = one_step(config)
    assert bool(metrics["finite"])
    changed = changed_paths(p0, p1)
    assert {"fc/kernel", "lstm_cell/conv_i_xx/kernel", "lstm_cell/conv_o_hh/kernel"} <= changed
    # stage 2: also the layer4 conv kernels and the backbone fc weight (its bias only feeds the argmax)
    assert {p for p in changed if p.startswith("resNet/")} == {
        "resNet/layer4_0/conv1/kernel",
        "resNet/layer4_0/conv2/kernel",
        "resNet/fc/kernel",
    }
    assert not changed_paths(s0, s1)


def test_egornn_two_stream_config_trains_ego_rnns_set_and_only_the_flow_layer4_statistics():
    config = small_config("egornn_two_stream.py:dataset=egtea")
    assert config.model.num_classes == 106 and config.data.modality == "rgb+flow"
    assert len(config.lr_milestones) == 249 and config.lr_gamma == 0.99
    _, _, (p0, s0), (p1, s1), metrics = one_step(config)
    assert bool(metrics["finite"])
    changed = changed_paths(p0, p1)
    flow = {p for p in changed if p.startswith("flowModel/")}
    frame = {p for p in changed if p.startswith("frameModel/")}
    assert "fc2/kernel" in changed and "fc2/bias" in changed
    assert flow and all(p.startswith("flowModel/layer4_0/") for p in flow)
    assert "flowModel/layer4_0/bn1/scale" in flow  # the BN affine parameters of layer4 train too
    assert {p for p in frame if not p.startswith("frameModel/lstm_cell/")} == {
        "frameModel/resNet/layer4_0/conv1/kernel",
        "frameModel/resNet/layer4_0/conv2/kernel",
        "frameModel/resNet/fc/kernel",
    }
    stats = changed_paths(s0, s1)
    assert stats and all(p.startswith("flowModel/layer4_0/") for p in stats)


def test_imagenet_resnet_initialises_the_flow_network_as_ego_rnn():
    from lsta_jax.models.resnet import ResNet

    flow_model = create_model("egornn_flow", num_classes=5, **SMALL)
    flow_vars = random_like(abstract_variables(flow_model, "egornn_flow", {}), seed=1)
    rgb = ResNet(stage_sizes=(1, 1, 1, 1), widths=(8, 8, 16, 16), num_classes=9)
    rgb_vars = random_like(jax.eval_shape(rgb.init, jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32)))
    out = flow_init_from_resnet(flow_vars, rgb_vars)
    kernel = rgb_vars["params"]["conv1"]["kernel"]  # (7, 7, 3, 8)
    expected = np.repeat(kernel.mean(axis=2, keepdims=True), 10, axis=2)  # mean over RGB, replicated
    np.testing.assert_allclose(out["params"]["conv1"]["kernel"], expected, rtol=1e-6)
    assert np.array_equal(
        out["params"]["layer3_0"]["conv2"]["kernel"], rgb_vars["params"]["layer3_0"]["conv2"]["kernel"]
    )
    assert np.array_equal(out["batch_stats"]["bn1"]["var"], rgb_vars["batch_stats"]["bn1"]["var"])
    assert np.array_equal(out["params"]["fc_action"]["kernel"], flow_vars["params"]["fc_action"]["kernel"])
    assert "fc" not in out["params"]


def test_single_stream_runs_graft_into_the_two_stream_model(tmp_path):
    common = dict(num_classes=5, **SMALL)
    two = create_model("egornn_two_stream", mem_size=16, attention_classes=11, **common)
    target = random_like(abstract_variables(two, "egornn_two_stream", {}), seed=2)
    sources = {}
    for kind, field, extra in (
        ("convlstm_rgb", "init_from_rgb", dict(mem_size=16, attention_classes=11)),
        ("egornn_flow", "init_from_flow", {}),
    ):
        config = {**common, **extra}
        model = create_model(kind, **config)
        sources[field] = random_like(abstract_variables(model, kind, config), seed=len(sources) + 3)
        save_model(
            tmp_path / kind,
            kind,
            {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()},
            sources[field],
        )
    config = small_config("egornn_two_stream.py")
    config.init_from_rgb, config.init_from_flow = (
        str(tmp_path / "convlstm_rgb"),
        str(tmp_path / "egornn_flow"),
    )
    merged = trainer.load_stream_inits(config, target)
    for field, subtree in trainer.STREAM_INIT_FIELDS.items():
        for collection in ("params", "batch_stats"):
            assert not changed_paths(merged[collection][subtree], sources[field][collection])
    assert np.array_equal(merged["params"]["fc2"]["kernel"], target["params"]["fc2"]["kernel"])
    config.init_from_flow = str(tmp_path / "convlstm_rgb")  # the wrong stream: a clear error
    with pytest.raises(ValueError, match="does not fit this model"):
        trainer.load_stream_inits(config, target)


def test_config_init_from_a_resnet_directory_takes_the_flow_branch(tmp_path, monkeypatch):
    """`--config.init_from=models/resnet34` on a flow network: grafted at the top level, conv1 cross-modal."""
    from lsta_jax.models.resnet import ResNet

    config = small_config("egornn_flow.py")
    model = create_model("egornn_flow", **trainer.model_config(config))
    target = random_like(abstract_variables(model, "egornn_flow", {}), seed=4)
    rgb = ResNet(stage_sizes=(1, 1, 1, 1), widths=(8, 8, 16, 16))
    source = random_like(jax.eval_shape(rgb.init, jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32)), 5)
    (tmp_path / "lsta_jax_model.json").write_text('{"kind": "resnet34"}')
    monkeypatch.setattr(trainer, "load_model", lambda path, which: (rgb, source))
    config.init_from = str(tmp_path)
    out = trainer.load_init(config, target)
    assert np.allclose(out["params"]["conv1"]["kernel"][:, :, 7], source["params"]["conv1"]["kernel"].mean(2))
    assert np.array_equal(
        out["params"]["layer4_0"]["bn2"]["scale"], source["params"]["layer4_0"]["bn2"]["scale"]
    )
    assert np.array_equal(out["params"]["fc_action"]["bias"], target["params"]["fc_action"]["bias"])


@pytest.mark.parametrize("variant", ["convlstm", "lsta", "ego_rnn", "elegatt"])
@pytest.mark.parametrize("stage", [1, 2])
def test_synthetic_ablation_configs_build_their_models(variant, stage):
    """Every `configs/synthetic.py` variant (the ablation's rows) gives a model config its kind accepts
    (ego_rnn's ConvLSTM has no variant, output pooling or multi-task heads) and the stage's trainable mask."""
    config = load_config(str(CONFIGS / f"synthetic.py:variant={variant},stage={stage}"))
    kinds = {"ego_rnn": "convlstm_rgb", "elegatt": "elegatt_rgb"}
    assert config.model.kind == kinds.get(variant, "lsta_rgb")
    model = create_model(config.model.kind, **trainer.model_config(config))
    shapes = jax.eval_shape(model.init, jax.random.key(0), trainer.example_inputs(config)["clip"][:, :2])
    mask = opt.trainable_mask(shapes["params"], config.trainable)
    assert any(jax.tree_util.tree_leaves(mask)) and not all(jax.tree_util.tree_leaves(mask))


def _trained_paths(config) -> set[str]:
    model = create_model(config.model.kind, **trainer.model_config(config))
    shapes = jax.eval_shape(model.init, jax.random.key(0), trainer.example_inputs(config)["clip"][:, :2])
    mask = opt.trainable_mask(shapes["params"], config.trainable)
    return {opt.param_path(p) for p, m in jax.tree_util.tree_leaves_with_path(mask) if m}


@pytest.mark.parametrize("recipe", ["lsta", "own"])
def test_synthetic_ego_rnn_trains_its_convlstm_under_either_recipe(recipe):
    """ego-rnn's stage 1 trains the ConvLSTM (`lstm_cell`, not LSTA's `lsta_cell`) and `fc`, the backbone
    frozen; stage 2 adds layer4's conv1/conv2 kernels and the backbone fc kernel (ego-rnn's
    `main-run-rgb.py`)."""
    stage1 = _trained_paths(load_config(str(CONFIGS / f"synthetic.py:variant=ego_rnn,recipe={recipe}")))
    gates = {f"lstm_cell/conv_{g}_{s}/kernel" for g in "ifco" for s in ("xx", "hh")}
    assert gates <= stage1 and {"fc/kernel", "fc/bias"} <= stage1
    assert not any(p.startswith("resNet/") for p in stage1)
    stage2 = _trained_paths(
        load_config(str(CONFIGS / f"synthetic.py:variant=ego_rnn,recipe={recipe},stage=2"))
    )
    assert stage2 - stage1 == {
        "resNet/layer4_0/conv1/kernel",
        "resNet/layer4_0/conv2/kernel",
        "resNet/fc/kernel",
    }


def test_synthetic_recipes_are_the_authors_scaled_by_one_rule():
    """`recipe=lsta` keeps the embedded data's LSTA schedule; `recipe=own` is ego-rnn's recipe (Adam eps 1e-4;
    stage 1 lr 1e-3, 300 epochs, x0.1 at 25/75/150, wd 4e-5; stage 2 lr 1e-4, 150 epochs, x0.1 at 25/75, from
    the best stage-1 checkpoint) under the rule that turns LSTA's (lr 1e-3, 200 epochs, last milestone 150,
    wd 5e-4; stage 2 lr 1e-4, 100 epochs, last milestone 75) into 5e-3, 48, (36,), 5e-5 and 5e-4, 5, (4,):
    lr x5, wd x0.1, epochs x0.24 / x0.05, the last milestone kept. Values computed by hand."""

    def recipe(spec):
        c = load_config(str(CONFIGS / f"synthetic.py:{spec}"))
        return c.learning_rate, c.num_epochs, tuple(c.lr_milestones), c.weight_decay, c.adam_eps, c.init_which

    for variant in ("lsta", "ego_rnn", "elegatt"):
        assert recipe(f"variant={variant}") == (5e-3, 48, (36,), 5e-5, 1e-4, "latest")
        assert recipe(f"variant={variant},stage=2") == (5e-4, 5, (4,), 5e-5, 1e-4, "latest")
    assert recipe("variant=ego_rnn,recipe=own") == (
        5e-3,
        72,
        (36,),
        4e-6,
        1e-4,
        "latest",
    )  # 300*0.24, 150*0.24
    assert recipe("variant=ego_rnn,recipe=own,stage=2") == (5e-4, 8, (4,), 4e-6, 1e-4, "best")  # 150*.05=7.5
    assert load_config(str(CONFIGS / "synthetic.py:variant=ego_rnn,recipe=own")).eval_every_epochs == 1
    for refused in ("variant=lsta,recipe=own", "variant=elegatt,recipe=own", "variant=ego_rnn,recipe=x"):
        with pytest.raises(ValueError, match="recipe"):
            load_config(str(CONFIGS / f"synthetic.py:{refused}"))


def test_synthetic_elegatt_builds_on_the_pretrained_backbone_and_initialises():
    """`configs/elegatt.py:dataset=synthetic` is `configs/synthetic.py:variant=elegatt`: the small backbone
    with its stage strides (a 56 px crop gives 7x7 maps, as the pre-training's), BatchNorm on its statistics,
    a 32-unit eleGAtt LSTM; initialised, it gives 18 logits per clip, and stage 1 trains the cell and fc
    only."""
    config = load_config(str(CONFIGS / "elegatt.py:dataset=synthetic"))
    assert config.to_dict() == load_config(str(CONFIGS / "synthetic.py:variant=elegatt")).to_dict()
    model = create_model(config.model.kind, **trainer.model_config(config))
    clip = trainer.example_inputs(config)["clip"][:, :2]
    variables = model.init(jax.random.key(0), clip)
    out = model.apply(variables, clip)
    assert out["logits"].shape == (1, 18) and out["attention"].shape == (1, 2, 7, 7)
    assert out["gate"].shape == (1, 2, 32) and variables["params"]["fc"]["kernel"].shape == (32, 18)
    assert "batch_stats" in variables and not trainer.trains_batchnorm(model)
    trained = _trained_paths(config)
    assert trained and all(p.startswith(("elegatt_cell/", "fc/")) for p in trained)
    assert "fc/kernel" in trained and any(p.startswith("elegatt_cell/") for p in trained)
