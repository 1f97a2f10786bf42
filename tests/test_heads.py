"""Multi-task verb/noun heads with activity-controlled biases (paper 6.5, `models/heads.py`)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_lsta import SMALL, random_variables

from lsta_jax.models import create_model
from lsta_jax.models.heads import multitask_heads


class Heads(nn.Module):
    control: str

    @nn.compact
    def __call__(self, features, action_logits, train=False):
        return multitask_heads(features, action_logits, 3, 2, self.control, 0.5, train)


FEATURES = np.array([[1.0, -2.0], [0.5, 0.0]], np.float32)  # B=2, K=2
ACTION = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], np.float32)  # B=2, M=3


def hand_params():
    return {
        "fc_verb": {
            "kernel": np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]], np.float32),
            "bias": np.array([0.1, 0.2, 0.3], np.float32),
        },
        "fc_noun": {
            "kernel": np.array([[1.0, -1.0], [2.0, 0.0]], np.float32),
            "bias": np.zeros(2, np.float32),
        },
        "action_to_verb": {"kernel": np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 3.0]], np.float32)},
        "action_to_noun": {"kernel": np.array([[0.5, 0.0], [0.0, 0.0], [1.0, 1.0]], np.float32)},
    }


def test_logit_control_adds_a_linear_map_of_the_activity_logits_by_hand():
    out = Heads("logits").apply({"params": hand_params()}, FEATURES, ACTION)
    # clip 0: fc_verb = [1*1 + -2*0 + .1, 1*0 + -2*1 + .2, 1*2 + -2*-1 + .3] = [1.1, -1.8, 4.3]
    #         bias    = ACTION[0] @ diag(1, 1, 3) = [2, 0, -3]
    # clip 1: fc_verb = [.5 + .1, .2, 1 + .3] = [.6, .2, 1.3]; bias 0
    np.testing.assert_allclose(out["verb_logits"], [[3.1, -1.8, 1.3], [0.6, 0.2, 1.3]], rtol=1e-6)
    # nouns: clip 0 fc = [1 - 4, -1] = [-3, -1], bias = [2*.5 + -1*1, -1*1] = [0, -1]
    #        clip 1 fc = [.5, -.5], bias 0
    np.testing.assert_allclose(out["noun_logits"], [[-3.0, -2.0], [0.5, -0.5]], rtol=1e-6)


def test_probability_control_uses_the_softmax_and_none_has_no_control_parameters():
    out = Heads("probabilities").apply({"params": hand_params()}, FEATURES, ACTION)
    p = np.exp(ACTION) / np.exp(ACTION).sum(1, keepdims=True)
    verb_fc = FEATURES @ hand_params()["fc_verb"]["kernel"] + hand_params()["fc_verb"]["bias"]
    want = verb_fc + p @ hand_params()["action_to_verb"]["kernel"]
    np.testing.assert_allclose(out["verb_logits"], want, rtol=1e-6)
    # clip 1 has uniform activity probabilities: bias = mean of the rows of action_to_verb = [1/3, 1/3, 1]
    np.testing.assert_allclose(out["verb_logits"][1] - verb_fc[1], [1 / 3, 1 / 3, 1.0], rtol=1e-6)

    shapes = jax.eval_shape(Heads("none").init, jax.random.key(0), FEATURES, ACTION)["params"]
    assert sorted(shapes) == ["fc_noun", "fc_verb"]
    params = {k: v for k, v in hand_params().items() if k.startswith("fc_")}
    out = Heads("none").apply({"params": params}, FEATURES, ACTION)
    np.testing.assert_allclose(out["verb_logits"], verb_fc, rtol=1e-6)
    with pytest.raises(ValueError, match="head_bias_control"):
        Heads("sum").apply({"params": params}, FEATURES, ACTION)


def test_lsta_heads_are_off_by_default_and_follow_the_rule_inside_the_model():
    clip = jnp.asarray(np.random.default_rng(0).normal(size=(2, 2, 32, 32, 3)), jnp.float32)
    plain = create_model("lsta_rgb", **SMALL)
    plain_tree = jax.eval_shape(plain.init, jax.random.key(0), clip)["params"]
    assert not any(k.startswith(("fc_", "action_to_")) for k in plain_tree)

    model = create_model("lsta_rgb", **SMALL, verb_classes=3, noun_classes=4)
    variables = random_variables(model, clip, seed=1)
    params = variables["params"]
    assert {k for k in params if k not in plain_tree} == {
        "fc_verb",
        "fc_noun",
        "action_to_verb",
        "action_to_noun",
    }
    assert params["action_to_verb"]["kernel"].shape == (SMALL["num_classes"], 3)
    out = jax.jit(model.apply)(variables, clip)
    f, z = np.asarray(out["features"]), np.asarray(out["logits"])
    for task in ("verb", "noun"):
        want = (
            f @ params[f"fc_{task}"]["kernel"]
            + params[f"fc_{task}"]["bias"]
            + z @ params[f"action_to_{task}"]["kernel"]
        )
        np.testing.assert_allclose(out[f"{task}_logits"], want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="noun_classes"):
        create_model("lsta_rgb", **SMALL, verb_classes=3).apply(variables, clip)
