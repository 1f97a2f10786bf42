"""Two-stream fusion of an appearance (RGB) and a motion (flow) stream.

`late_fusion`: the paper's "two stream late fusion" row (Table 1, 78.45% on GTEA61*), computed with ego-rnn's
`eval-run-twoStream.py` rule (reference 4.4), which LSTA never released for itself.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

#: ego-rnn's `flow_wt`: the weight of the flow scores in the late average.
LATE_FUSION_FLOW_WEIGHT = 0.5
#: ego-rnn's `--numSegs` default: flow stacks per video, starts `transforms.flow_segment_starts`.
LATE_FUSION_FLOW_SEGMENTS = 10


def late_fusion(
    rgb_logits: jax.Array, flow_logits: jax.Array, flow_weight: float = LATE_FUSION_FLOW_WEIGHT
) -> jax.Array:
    """Late fusion scores: flow_weight * mean_s flow_logits[:, s] + (1 - flow_weight) * rgb_logits.

    ego-rnn's `eval-run-twoStream.py`: the flow network runs on `numSegs` (10) stacks of the video, its RAW
    logits are averaged over the stacks, and the result is averaged with the RGB model's RAW logits with
    weight `flow_wt` = 0.5; the prediction is the argmax. No softmax on either side (softmax first would
    change which class wins whenever the two streams' logit scales differ).

    rgb_logits: (B, M). flow_logits: (B, S, M), one row per stack, or (B, M) for a single stack.
    Returns (B, M) float32 fused scores (logit-like: apply a softmax only to display them).
    """
    rgb = jnp.asarray(rgb_logits, jnp.float32)
    flow = jnp.asarray(flow_logits, jnp.float32)
    if flow.ndim == 3:
        flow = jnp.mean(flow, axis=1)
    if rgb.ndim != 2 or flow.shape != rgb.shape:
        raise ValueError(
            f"late fusion needs RGB logits (B, M) and flow logits (B, S, M) or (B, M) of the same B and M; "
            f"got {tuple(jnp.shape(rgb_logits))} and {tuple(jnp.shape(flow_logits))}"
        )
    if not 0.0 <= flow_weight <= 1.0:
        raise ValueError(f"flow_weight must lie in [0, 1], got {flow_weight}")
    return flow_weight * flow + (1.0 - flow_weight) * rgb
