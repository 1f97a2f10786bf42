"""Training: one full step against the reference rule, frozen sets, 4 devices == 1 device, exact resume."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsta_jax import load_model
from lsta_jax.models import create_model
from lsta_jax.train import trainer
from lsta_jax.train.checkpoints import checkpoint_steps
from lsta_jax.train.config import apply_overrides, load_config
from lsta_jax.train.input_pipeline import make_data
from lsta_jax.train.optimizer import param_path


def tiny_config(**overrides):
    c = load_config("configs/synthetic.py:toy")
    c.model.update(
        num_classes=4,
        mem_size=32,
        c_cam_classes=6,
        attention_classes=10,
        backbone_stage_sizes=(1, 1, 1, 1),
        backbone_widths=(8, 16, 16, 32),
    )
    c.data.update(num_train=16, num_eval=10, num_frames=2, crop_size=48)  # 2x2 attention grid
    c.global_batch_size = 8
    c.eval_batch_size = 4  # 10 eval clips -> the last batch is padded
    c.log_every_steps = 1
    c.learning_rate = 1e-3
    c.weight_decay = 5e-4
    for k, v in overrides.items():
        c[k] = v
    return c


@pytest.fixture(scope="module")
def setup():
    config = tiny_config(trainable="stage1")
    config.model.batchnorm = "frozen"  # the reference's stage-1 rule (the toy config trains BN from scratch)
    data = make_data(config)
    model = create_model("lsta_rgb", **trainer.model_config(config))
    state, tx, mask, _ = trainer.create_train_state(config, model, data.steps_per_epoch)
    batch = next(data.train)
    return config, data, model, state, tx, mask, batch


def leaves(tree):
    return {param_path(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(tree)}


def test_one_train_step_follows_the_reference_rule_and_eval_counts_padding_once(setup):
    config, data, model, state, tx, mask, batch = setup
    before = leaves(state.params)
    steps = trainer.compile_steps(model, tx, mask)
    new_state, m = steps.train(steps.replicate(state), steps.put_batch(batch))
    after = leaves(new_state.params)
    assert bool(m["finite"]) and np.isfinite(float(m["loss"]))
    trained = {k for k, v in leaves(mask).items() if v}
    for k in before:
        if k in trained:
            assert not np.array_equal(before[k], after[k]), k
        else:  # stage 1: the whole backbone, and coupling_fc, stay bit-identical
            assert np.array_equal(before[k], after[k]) and before[k].tobytes() == after[k].tobytes(), k
    assert any(k.startswith("resNet/") for k in before) and "lsta_cell/coupling_fc/kernel" not in trained

    # Independent expectation for the classifier: gradient of the mean cross-entropy (same dropout key), then
    # step 1 of PyTorch 0.3.1 Adam with coupled L2 written out by hand.
    key = jax.random.fold_in(state.rng, 0)

    def loss(params):
        out = model.apply(
            {"params": params, "batch_stats": state.batch_stats},
            jnp.asarray(batch["clip"]),
            train=True,
            rngs={"dropout": key},
        )
        logp = jax.nn.log_softmax(out["logits"])
        return -jnp.mean(logp[jnp.arange(len(batch["label"])), batch["label"]])

    with jax.default_matmul_precision("highest"):
        g = np.asarray(jax.grad(loss)(state.params)["fc"]["kernel"], np.float64)
    p = before["fc/kernel"].astype(np.float64)
    g = g + config.weight_decay * p
    m1, v1 = 0.1 * g, 0.001 * g * g
    want = p - config.learning_rate * np.sqrt(1 - 0.999) / (1 - 0.9) * m1 / (np.sqrt(v1) + 1e-4)
    np.testing.assert_allclose(after["fc/kernel"], want, rtol=1e-4, atol=1e-6)

    variables = {"params": new_state.params, "batch_stats": new_state.batch_stats}
    sums = trainer.evaluate(steps, variables, data.make_eval())
    assert sums["count"] == config.data.num_eval  # 3 batches of 4, the last holds 2 real clips
    assert sums["confusion"].sum() == config.data.num_eval


def test_step_on_four_devices_equals_one_device(setup):
    config, _, model, state, tx, mask, batch = setup
    assert jax.device_count() == 4
    results = {}
    for name, devices in (("one", jax.devices()[:1]), ("four", jax.devices())):
        steps = trainer.compile_steps(model, tx, mask, 1, trainer.create_mesh(devices))
        s = steps.replicate(state)
        for _ in range(2):
            s, _ = steps.train(s, steps.put_batch(batch))
        results[name] = leaves(s.params)
    for k, v in results["one"].items():
        np.testing.assert_allclose(results["four"][k], v, rtol=1e-5, atol=1e-6, err_msg=k)


def test_accumulated_gradient_equals_full_batch_without_dropout():
    config = tiny_config(trainable="stage1")
    config.model.batchnorm = "frozen"
    config.model.dropout_rate = 0.0
    data = make_data(config)
    model = create_model("lsta_rgb", **trainer.model_config(config))
    state, tx, mask, _ = trainer.create_train_state(config, model, data.steps_per_epoch)
    batch = next(data.train)
    out = {}
    for accum in (1, 4):
        steps = trainer.compile_steps(model, tx, mask, accum, trainer.create_mesh(jax.devices()[:1]))
        s, _ = steps.train(steps.replicate(state), steps.put_batch(batch))
        out[accum] = leaves(s.params)
    for k, v in out[1].items():
        np.testing.assert_allclose(out[4][k], v, rtol=2e-4, atol=1e-6, err_msg=k)


@pytest.fixture
def compilation_cache(tmp_path):
    """Persistent compilation cache: the 2nd and 3rd runs below reuse the 1st run's compiled programs."""
    old = jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    yield
    jax.config.update("jax_compilation_cache_dir", old[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])


def test_interrupted_and_resumed_run_ends_bit_identical(tmp_path, compilation_cache):
    base = dict(total_steps=5, checkpoint_every_steps=2, eval_every_steps=2, trainable="all")
    straight = trainer.train_and_evaluate(tiny_config(**base), tmp_path / "straight", quiet=True)
    # stopped after step 3 (last checkpoint: step 2), then the same command again resumes from step 2
    trainer.train_and_evaluate(tiny_config(**{**base, "total_steps": 3}), tmp_path / "resumed", quiet=True)
    # killed after step 3, before its checkpoint was written: only step 2 survives
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "3")
    (tmp_path / "resumed" / "checkpoints" / "best.json").unlink()
    assert checkpoint_steps(tmp_path / "resumed") == [2]
    resumed = trainer.train_and_evaluate(tiny_config(**base), tmp_path / "resumed", quiet=True)
    model, a = load_model(tmp_path / "straight")
    _, b = load_model(tmp_path / "resumed")
    la, lb = leaves(a), leaves(b)
    assert la.keys() == lb.keys()
    for k in la:
        assert la[k].tobytes() == lb[k].tobytes(), k
    assert straight["top1"] == resumed["top1"]
    _, best = load_model(tmp_path / "straight", which="best")
    assert leaves(best).keys() == la.keys()
    # stage 2 starts from the LAST checkpoint of a stage-1 workdir (the reference's `last_checkpoint_stage1`)
    stage2 = tiny_config(trainable="stage2", init_from=str(tmp_path / "straight"))
    model2 = create_model("lsta_rgb", **trainer.model_config(stage2))
    scratch = trainer.init_variables(model2, stage2, jax.random.PRNGKey(9))
    grafted = leaves(trainer.load_init(stage2, scratch))
    for k in la:
        assert grafted[k].tobytes() == la[k].tobytes(), k
    with pytest.raises(ValueError, match="does not fit"):
        other = tiny_config(init_from=str(tmp_path / "straight"))
        other.model.num_classes = 5
        model5 = create_model("lsta_rgb", **trainer.model_config(other))
        trainer.load_init(other, trainer.init_variables(model5, other, jax.random.PRNGKey(9)))
    # the data iterator state went into the checkpoint
    assert (tmp_path / "straight" / "checkpoints" / "5" / "data" / "process_0-of-1.json").is_file()


def test_config_overrides_and_errors():
    c = apply_overrides(
        load_config("configs/synthetic.py:toy"),
        ["--config.learning_rate=0.5", "--config.model.variant=convlstm", "--config.lr_milestones=[3,4]"],
    )
    assert c.learning_rate == 0.5 and c.model.variant == "convlstm" and tuple(c.lr_milestones) == (3, 4)
    with pytest.raises(KeyError, match="no field"):
        apply_overrides(c, ["--config.nope=1"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config("configs/missing.py")


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path):
    # lr 1e-3 for epoch 0 (steps 1-2), then infinite: the parameters become Inf and the loss NaN
    config = tiny_config(
        total_steps=6,
        steps_per_epoch=2,
        lr_milestones=(1,),
        lr_gamma=float("inf"),
        checkpoint_every_steps=2,
        eval_every_steps=100,
        trainable="stage1",
    )
    with pytest.raises(trainer.NonFiniteLoss, match="non-finite.*last good checkpoint is step 2"):
        trainer.train_and_evaluate(config, tmp_path / "w", quiet=True)
    assert checkpoint_steps(tmp_path / "w") == [2]
    _, variables = load_model(tmp_path / "w")
    assert all(np.all(np.isfinite(v)) for v in leaves(variables).values())
