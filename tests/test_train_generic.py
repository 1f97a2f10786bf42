"""The train step's generic parts: the loss of every labelled output, inputs by name, BatchNorm modes."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from lsta_jax.train import losses, trainer


def log_softmax_np(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_total_loss_is_the_weighted_sum_of_the_mean_cross_entropies():
    rng = np.random.default_rng(0)
    out = {k: rng.normal(size=(3, n)).astype(np.float32) for k, n in (("logits", 5), ("verb_logits", 4))}
    out["noun_logits"] = rng.normal(size=(3, 6)).astype(np.float32)  # no `noun` label: not a term
    batch = {"label": np.array([0, 4, 2]), "verb": np.array([3, 3, 1])}
    got = float(losses.total_loss(out, batch, {"label": 1.0, "verb": 0.5}))
    ce_label = -np.mean(log_softmax_np(out["logits"])[np.arange(3), batch["label"]])
    ce_verb = -np.mean(log_softmax_np(out["verb_logits"])[np.arange(3), batch["verb"]])
    assert got == pytest.approx(ce_label + 0.5 * ce_verb, rel=1e-6)
    # single head, no weights: the reference's nn.CrossEntropyLoss (batch mean)
    assert float(losses.total_loss({"logits": out["logits"]}, batch)) == pytest.approx(ce_label, rel=1e-6)
    with pytest.raises(ValueError, match="unknown loss weights"):
        losses.total_loss(out, batch, {"action": 1.0})
    with pytest.raises(ValueError, match="no output/label pair"):
        losses.total_loss({"features": out["logits"]}, batch)


class TinyFlowNet(nn.Module):
    """A flow classifier (input named `flow`) with one BatchNorm, for the trainer mechanics."""

    batchnorm: str = "frozen"

    @nn.compact
    def __call__(self, flow, train=False):
        x = jnp.mean(flow, axis=(1, 2))
        x = nn.BatchNorm(use_running_average=not (train and self.batchnorm == "train"), momentum=0.9)(x)
        return {"logits": nn.Dense(3)(x)}


def step_for(model, variables, accum_steps=1):
    tx = optax.sgd(0.1)
    mask = jax.tree_util.tree_map(lambda _: True, variables["params"])
    state = trainer.TrainState(
        step=jnp.zeros([], jnp.int32),
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        opt_state=tx.init(variables["params"]),
        rng=jax.random.PRNGKey(0),
    )
    step = jax.jit(
        lambda s, b: trainer.train_step(s, b, model=model, tx=tx, mask=mask, accum_steps=accum_steps)
    )
    return state, step


def flow_batch():
    rng = np.random.default_rng(1)
    return {
        "flow": rng.normal(1.0, 2.0, size=(4, 6, 6, 10)).astype(np.float32),
        "label": np.array([0, 1, 2, 1]),
    }


@pytest.mark.parametrize("mode", ["train", "frozen"])
def test_batchnorm_train_mode_updates_the_running_statistics_by_the_momentum_rule(mode):
    model = TinyFlowNet(batchnorm=mode)
    batch = flow_batch()
    variables = model.init(jax.random.PRNGKey(0), flow=jnp.asarray(batch["flow"][:1]))
    state, step = step_for(model, variables)
    new_state, metrics = step(state, batch)
    assert bool(metrics["finite"])
    mean_before = np.asarray(state.batch_stats["BatchNorm_0"]["mean"])
    mean_after = np.asarray(new_state.batch_stats["BatchNorm_0"]["mean"])
    var_after = np.asarray(new_state.batch_stats["BatchNorm_0"]["var"])
    x = np.asarray(batch["flow"], np.float64).mean(axis=(1, 2))
    if mode == "train":  # torch momentum 0.1 == flax 0.9; flax keeps the biased batch variance
        np.testing.assert_allclose(mean_after, 0.9 * mean_before + 0.1 * x.mean(0), rtol=1e-5)
        np.testing.assert_allclose(var_after, 0.9 * 1.0 + 0.1 * x.var(0), rtol=1e-5)
    else:
        assert np.array_equal(mean_after, mean_before) and np.array_equal(var_after, np.ones_like(var_after))


def test_batchnorm_train_mode_with_accumulation_updates_micro_batch_after_micro_batch():
    model = TinyFlowNet(batchnorm="train")
    batch = flow_batch()
    variables = model.init(jax.random.PRNGKey(0), flow=jnp.asarray(batch["flow"][:1]))
    state, step = step_for(model, variables, accum_steps=2)
    new_state, _ = step(state, batch)
    x = np.asarray(batch["flow"], np.float64).mean(axis=(1, 2))
    expected = np.zeros(x.shape[1])
    for micro in (x[:2], x[2:]):
        expected = 0.9 * expected + 0.1 * micro.mean(0)
    np.testing.assert_allclose(np.asarray(new_state.batch_stats["BatchNorm_0"]["mean"]), expected, rtol=1e-5)


def test_model_inputs_and_example_inputs_follow_the_modality():
    batch = {"clip": 1, "flow": 2, "label": 3, "mask": 4}
    assert trainer.model_inputs(batch) == {"clip": 1, "flow": 2}
    with pytest.raises(ValueError, match="no model input"):
        trainer.model_inputs({"label": 3})
    config = ml_collections.ConfigDict(
        {"data": {"num_frames": 3, "crop_size": 8, "modality": "rgb+flow", "flow_stack": 5}}
    )
    shapes = {k: v.shape for k, v in trainer.example_inputs(config).items()}
    assert shapes == {"clip": (1, 3, 8, 8, 3), "flow": (1, 8, 8, 10)}
    config.data.modality = "depth"
    with pytest.raises(ValueError, match="modality"):
        trainer.example_inputs(config)
