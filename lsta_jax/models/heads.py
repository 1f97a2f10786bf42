"""Multi-task verb / noun heads whose biases are controlled by the activity classifier (paper section 6.5).

The paper trains LSTA on EPIC-KITCHENS "for multi-task classification with verb, noun and activity
supervision" and uses "activity classifier activations to control the bias of verb and noun classifiers"; the
authors released no EPIC code (docs/differences.md §6), so the form is ours. With the clip feature f (B, K)
(the spatial mean of the LSTA memory c_T, the input of the activity `fc`) and the activity logits z (B, M):

    verb_logits = fc_verb(dropout(f)) + β_verb(z)      fc_verb: Dense(K -> V) with bias
    noun_logits = fc_noun(dropout(f)) + β_noun(z)      fc_noun: Dense(K -> N) with bias

where the controlled bias β(z) is, by `head_bias_control`:
  'logits'         β(z) = z W       W = `action_to_verb` / `action_to_noun` kernel (M, V) / (M, N), no bias
                   (a linear map of the activity activations: the same reading as the authors' later EgoACO
                   code, docs/differences.md §9, and the config default);
  'probabilities'  β(z) = softmax(z) W  (the bias is a convex mix of per-activity bias vectors, bounded);
  'none'           β = 0, no `action_to_*` parameters: independent heads (an ablation).
Gradients of the verb and noun losses flow through β into the activity classifier and the features.
Each head has its own Dropout (as a torch `Sequential(Dropout, Linear)` per head would), active only in
training. Initialisation: torch's default `Linear` init for `fc_*` (as the activity `fc`); `action_to_*`
starts at ZERO, so at initialisation the verb and noun heads are plain linear classifiers and the control is
learnt from there (a random map of the activity logits would only add noise to the first steps).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from lsta_jax.models.layers import torch_linear_bias_init, torch_linear_kernel_init

BIAS_CONTROLS = ("logits", "probabilities", "none")


def controlled_bias(action_logits: jax.Array, control: str) -> jax.Array | None:
    """The input of the bias map β: the activity logits, their softmax, or None ('none')."""
    if control not in BIAS_CONTROLS:
        raise ValueError(f"unknown head_bias_control {control!r}; choose one of {', '.join(BIAS_CONTROLS)}")
    if control == "none":
        return None
    z = action_logits.astype(jnp.float32)
    return jax.nn.softmax(z, axis=-1) if control == "probabilities" else z


def multitask_heads(
    features: jax.Array,
    action_logits: jax.Array,
    verb_classes: int,
    noun_classes: int,
    control: str,
    dropout_rate: float,
    train: bool,
) -> dict[str, jax.Array]:
    """`verb_logits` (B, V) and `noun_logits` (B, N) of the module docstring; call inside a compact method
    (creates `fc_verb`, `fc_noun` and, unless control is 'none', `action_to_verb`, `action_to_noun`)."""
    control_input = controlled_bias(action_logits, control)
    out = {}
    for task, count in (("verb", verb_classes), ("noun", noun_classes)):
        dropped = nn.Dropout(dropout_rate, deterministic=not train)(features)
        logits = nn.Dense(
            count,
            kernel_init=torch_linear_kernel_init,
            bias_init=torch_linear_bias_init(features.shape[-1]),
            name=f"fc_{task}",
        )(dropped)
        if control_input is not None:
            logits = logits + nn.Dense(
                count, use_bias=False, kernel_init=nn.initializers.zeros, name=f"action_to_{task}"
            )(control_input)
        out[f"{task}_logits"] = logits
    return out
