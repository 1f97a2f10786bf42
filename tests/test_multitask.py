"""EPIC-KITCHENS challenge metrics of the multi-task heads, against hand-computed values."""

import jax.numpy as jnp
import numpy as np
import pytest

from lsta_jax.train import metrics


def test_verb_noun_action_top1_top5_and_class_mean_recall_by_hand():
    verb_logits = np.array([[3, 0, 0], [0, 3, 1], [0, 1, 3], [9, 0, 0]], np.float32)  # V = 3
    noun_logits = np.array([[0, 2], [2, 0], [0, 2], [9, 0]], np.float32)  # N = 2
    verbs, nouns = np.array([0, 1, 0, 2]), np.array([1, 1, 0, 0])
    mask = np.array([True, True, True, False])  # the last clip is padding
    # predicted (verb, noun): (0, 1) right; (1, 0) verb right, noun wrong; (2, 1) both wrong.
    # clip 1: of the 6 pairs only (0, 1) is less likely than the true (1, 1) -> in the top 5.
    # clip 2: the true (0, 0) is the least likely pair (verb 0 and noun 0 are each the least likely) -> not.
    halves = [slice(0, 2), slice(2, 4)]
    total = None
    for part in halves:
        sums = metrics.multitask_sums(
            *(jnp.asarray(a[part]) for a in (verb_logits, noun_logits, verbs, nouns, mask))
        )
        total = metrics.add_sums(total, sums)
    s = metrics.multitask_summary(total)
    assert s["verb_top1"] == pytest.approx(2 / 3) and s["verb_top5"] == pytest.approx(1.0)
    assert s["noun_top1"] == pytest.approx(1 / 3) and s["noun_top5"] == pytest.approx(1.0)
    assert s["action_top1"] == pytest.approx(1 / 3) and s["action_top5"] == pytest.approx(2 / 3)
    # verbs: class 0 -> 1 of 2 (clips 0, 2), class 1 -> 1 of 1: mean 0.75 (class 2 only on padding: absent)
    assert s["verb_mean_class_recall"] == pytest.approx(0.75)
    # nouns: class 1 -> 1 of 2, class 0 -> 0 of 1: 0.25; actions (0,1) 1, (1,1) 0, (0,0) 0: 1/3
    assert s["noun_mean_class_recall"] == pytest.approx(0.25)
    assert s["action_mean_class_recall"] == pytest.approx(1 / 3)
    logp = verb_logits[:3] - np.log(np.exp(verb_logits[:3]).sum(1, keepdims=True))
    assert s["verb_loss"] == pytest.approx(-logp[np.arange(3), verbs[:3]].mean(), rel=1e-5)
    # summarize() of an activity head's sums picks the multi-task metrics up when they are there
    head = metrics.batch_sums(jnp.asarray(verb_logits), jnp.asarray(verbs), jnp.asarray(mask))
    full = metrics.summarize({**metrics.add_sums(None, head), **total})
    assert full["action_top5"] == s["action_top5"] and full["top1"] == pytest.approx(2 / 3)
    assert "action_top1" not in metrics.summarize(metrics.add_sums(None, head))
