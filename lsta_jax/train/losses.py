"""The training loss: softmax cross-entropy of every classifier output that has a label in the batch.

Each model output is paired with the batch entry that labels it (`OUTPUT_LABELS`): the activity `logits` with
`label`, and, for multi-task models (EPIC-KITCHENS, paper section 6.5), `verb_logits` with `verb` and
`noun_logits` with `noun`. The loss is the weighted sum of the mean cross-entropies of the pairs present in
both the outputs and the batch; the weights come from `config.loss_weights` (a missing weight counts 1.0). A
single-head model on a single-label batch gets exactly the reference's `nn.CrossEntropyLoss` (batch mean).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from lsta_jax.train.metrics import cross_entropy

# model output -> the batch entry holding its integer labels
OUTPUT_LABELS: dict[str, str] = {"logits": "label", "verb_logits": "verb", "noun_logits": "noun"}


def total_loss(
    outputs: Mapping[str, jax.Array],
    batch: Mapping[str, jax.Array],
    weights: Mapping[str, float] | None = None,
) -> jax.Array:
    """Σ_pairs weight[label key] * mean_batch CE(outputs[output key], batch[label key]), in float32.

    `weights` is keyed by the label name (`label`, `verb`, `noun`). Raises if no pair is present.
    """
    weights = dict(weights or {})
    unknown = set(weights) - set(OUTPUT_LABELS.values())
    if unknown:
        raise ValueError(f"unknown loss weights {sorted(unknown)}; known: {sorted(OUTPUT_LABELS.values())}")
    terms = [
        float(weights.get(label_key, 1.0))
        * jnp.mean(cross_entropy(outputs[out_key].astype(jnp.float32), batch[label_key]))
        for out_key, label_key in OUTPUT_LABELS.items()
        if out_key in outputs and label_key in batch
    ]
    if not terms:
        raise ValueError(
            f"no output/label pair to train on: outputs {sorted(outputs)}, batch {sorted(batch)}; "
            f"expected one of {OUTPUT_LABELS}"
        )
    return sum(terms[1:], terms[0])
