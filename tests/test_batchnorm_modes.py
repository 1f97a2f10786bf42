"""`batchnorm` of the models ('frozen' = the reference's running statistics, 'train' = batch statistics in
training), the `resnet` classifier kind used for pre-training, and the output-stride-8 backbone layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsta_jax.models import create_model
from lsta_jax.models.resnet import ResNet

SMALL = dict(backbone_stage_sizes=(1, 1, 1, 1), backbone_widths=(4, 8, 8, 8), attention_classes=5)
STRIDE8 = dict(backbone_stage_strides=(1, 2, 2, 1), backbone_max_pool=False)


def _clip(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def test_batchnorm_train_uses_batch_statistics_and_frozen_keeps_running_ones():
    kind, extra = "lsta_rgb", {"c_cam_classes": 3}
    clip = _clip((2, 2, 24, 24, 3))
    frozen = create_model(kind, num_classes=3, mem_size=8, dropout_rate=0.0, **SMALL, **STRIDE8, **extra)
    trained = create_model(
        kind, num_classes=3, mem_size=8, dropout_rate=0.0, batchnorm="train", **SMALL, **STRIDE8, **extra
    )
    variables = frozen.init(jax.random.PRNGKey(0), clip)
    assert variables["batch_stats"]["resNet"]["bn1"]["mean"].shape == (4,)
    # stride 8 without the max-pool: a 24 px frame gives a 3x3 map
    inference = frozen.apply(variables, clip)
    assert inference["attention"].shape == (2, 2, 3, 3)
    # frozen: train=True needs no mutable collection and equals inference (dropout 0)
    np.testing.assert_array_equal(frozen.apply(variables, clip, train=True)["logits"], inference["logits"])
    out, updates = trained.apply(variables, clip, train=True, mutable=["batch_stats"])
    # the stem BatchNorm's new running mean is 0.9 * old (0) + 0.1 * the batch mean of conv1's output
    conv1 = jax.lax.conv_general_dilated(
        clip.reshape(4, 24, 24, 3),
        variables["params"]["resNet"]["conv1"]["kernel"],
        (2, 2),
        ((3, 3), (3, 3)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision="highest",
    )
    np.testing.assert_allclose(
        updates["batch_stats"]["resNet"]["bn1"]["mean"],
        0.1 * conv1.mean(axis=(0, 1, 2)),
        rtol=1e-4,
        atol=1e-6,
    )
    assert not np.allclose(out["logits"], inference["logits"])
    with pytest.raises(ValueError, match="batchnorm must be one of"):
        create_model(kind, num_classes=3, mem_size=8, batchnorm="eval", **SMALL, **extra).init(
            jax.random.PRNGKey(0), clip
        )
    # the ego-rnn baseline shares the backbone call: its BatchNorm statistics are mutable in training too
    ego = create_model("convlstm_rgb", num_classes=3, mem_size=8, batchnorm="train", **SMALL, **STRIDE8)
    ego_vars = jax.eval_shape(ego.init, jax.random.PRNGKey(0), clip)
    _, ego_updates = jax.eval_shape(
        lambda v: ego.apply(
            v, clip, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(1)}
        ),
        ego_vars,
    )
    shapes = jax.tree_util.tree_map(np.shape, ego_updates["batch_stats"])
    assert shapes == jax.tree_util.tree_map(np.shape, ego_vars["batch_stats"])


def test_resnet_kind_is_a_resnet_tree_and_averages_clip_logits():
    config = dict(stage_sizes=(1, 1), widths=(4, 8), num_classes=5, stage_strides=(1, 2), max_pool=False)
    model = create_model("resnet", batchnorm="train", **config)
    images = _clip((3, 16, 16, 3), seed=1)
    variables = model.init(jax.random.PRNGKey(1), images)
    plain = ResNet(**config).init(jax.random.PRNGKey(1), images)
    shapes = jax.tree_util.tree_map(np.shape, variables)
    assert shapes == jax.tree_util.tree_map(np.shape, plain)  # graftable like a converted ResNet
    out = model.apply(variables, images)
    assert out["logits"].shape == (3, 5) and out["layer4"].shape == (3, 4, 4, 8)
    clips = jnp.stack([images, images[::-1]], axis=1)  # (3, 2, 16, 16, 3)
    want = (out["logits"] + out["logits"][::-1]) / 2
    np.testing.assert_allclose(model.apply(variables, clips)["logits"], want, rtol=1e-5, atol=1e-6)
    _, updates = model.apply(variables, images, train=True, mutable=["batch_stats"])
    assert not np.allclose(updates["batch_stats"]["bn1"]["var"], variables["batch_stats"]["bn1"]["var"])


def test_from_scratch_run_with_frozen_batchnorm_is_refused(tmp_path, capsys):
    from lsta_jax.train.__main__ import main

    argv = ["--config", "configs/synthetic.py:toy", "--workdir", str(tmp_path / "w")]
    assert main([*argv, "--config.model.batchnorm=frozen"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "from scratch with frozen BatchNorm" in err[0]
    assert "--config.model.batchnorm=train" in err[0] and "--config.init_from=DIR" in err[0]
    assert not (tmp_path / "w" / "checkpoints").exists() or not any(
        (tmp_path / "w" / "checkpoints").iterdir()
    )


def test_a_two_stream_run_from_its_trained_streams_is_not_from_scratch():
    """The frozen-BatchNorm refusal counts the streams a two-stream model is grafted from as pre-trained
    weights (`init_from_rgb`, `init_from_flow`), like `init_from`; without them, nor a resume, it holds."""
    from lsta_jax.train.config import load_config
    from lsta_jax.train.trainer import starts_from_scratch

    config = load_config("configs/lsta_two_stream.py:dataset=synthetic")
    assert config.model.batchnorm == "frozen" and starts_from_scratch(config, None)
    assert not starts_from_scratch(config, resume_step=120)
    config.init_from_rgb, config.init_from_flow = "runs/rgb", "runs/flow"
    assert not starts_from_scratch(config, None)
    config.init_from_rgb, config.init_from_flow = "", ""
    config.init_from = "runs/two_stream"
    assert not starts_from_scratch(config, None)
