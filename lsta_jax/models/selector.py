"""The pooling operator ς of LSTA as pure functions (no module state, no parameters of their own).

Paper (CVPR 2019) eqs. 11-13: a selector picks the category c* = argmax_c π(ε(x), θ_c) and returns the
category-specific mapping ε⊥(π(x, θ_c*)). With ε = spatial average and π = linear this is a class-activation
map. LSTA uses ς twice, and the authors' code (`docs/differences.md` §2.1, §2.3, §2.4) pins
down details the paper leaves open; these functions reproduce the code:

- `attention_pooling` (eq. 3, ν_a = ς(x_t, w_a)): scores WITH the scorer's bias, map WITHOUT it.
- `output_pooling` (eq. 9, ν_c ⊙ c_t): ε⊥ is dropped (paper section 4.2), so the "map" is the selected row of
  W_c broadcast over the grid, i.e. a channel re-weighting of the memory. The paper's bias control
  w_o ε(s ⊙ x_t) enters ONLY the selection scores (an additive `score_bias`), never the map.

The argmax is not differentiable: gradients reach the scorer only through the gathered row of the selected
class (a scatter into that row), and nothing that only shifts the scores (the scorer's bias, the code's
`coupling_fc`) gets a gradient at all. `jax.lax.stop_gradient` on the scores makes that explicit.

Arrays are NHWC: features (B, H, W, K); a scorer kernel is (K, C), the Flax Dense layout (the transpose of the
PyTorch `Linear.weight`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def spatial_mean(x: jax.Array) -> jax.Array:
    """ε of the paper: the spatial average of (B, H, W, K) features -> (B, K) (the code's AvgPool2d(7))."""
    return jnp.mean(x, axis=(1, 2))


def select_class(scores: jax.Array) -> jax.Array:
    """c* = argmax_c of (B, C) scores (eq. 13), as int32 (B,); the first index wins ties, like torch's sort.

    No gradient flows through the selection.
    """
    return jnp.argmax(jax.lax.stop_gradient(scores), axis=-1).astype(jnp.int32)


def linear_scores(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None) -> jax.Array:
    """π(ε(x), θ_c) for every class c: the spatial mean of (B, H, W, K) features times a (K, C) kernel."""
    scores = spatial_mean(x) @ kernel
    if bias is not None:
        scores = scores + bias
    return scores


def attention_pooling(
    features: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None = None,
    scores: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Attention pooling ν_a = ς(x, w_a), paper eqs. 3 and 12-13; docs/differences.md §2.1 steps 2-3.

    Args:
      features: (B, H, W, K) features the map is computed from (LSTA: the backbone's BN'd, ReLU'd `layer4`).
      kernel: (K, C) linear scorer w_a (in LSTA: the backbone's ImageNet `fc` kernel, C = 1000).
      bias: optional (C,) scorer bias; it only shifts the selection scores (eq. 13), the map never uses it.
      scores: optional precomputed (B, C) scores, e.g. the backbone's logits `fc(mean(features))`; when given,
        `bias` is ignored. They must equal `linear_scores(features, kernel, bias)` for the result to be ς.

    Returns:
      cam: (B, H, W) class-activation map ν_a[b, i] = Σ_k kernel[k, c*_b] features[b, i, k]: the selected
        class's linear map at every position, without bias, softmax or normalisation (code: `bmm` of the
        selected `fc.weight` row with the flattened feature).
      class_idx: (B,) int32 selected class c* (code: `logit.sort(1, True)` index 0).

    Gradients reach `kernel` only in the selected columns and `features` only through the map.
    """
    if scores is None:
        scores = linear_scores(features, kernel, bias)
    class_idx = select_class(scores)
    rows = jnp.take(kernel, class_idx, axis=1).T  # (B, K): the selected scorer rows
    cam = jnp.einsum("bhwk,bk->bhw", features, rows.astype(features.dtype))
    return cam, class_idx


def output_pooling(
    memory: jax.Array,
    kernel: jax.Array,
    score_bias: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Output pooling ν_c ⊙ c_t with ν_c = ς(c_t, w_c + w_o ε(s ⊙ x_t)), paper eq. 9; docs/differences.md
    §2.3-2.4.

    Args:
      memory: (B, H, W, K) memory c_t.
      kernel: (K, C_o) scorer w_c (the code's `c_classifier`, no bias).
      score_bias: optional (B, C_o) instance-specific term added to the selection scores only. In the code it
        is `coupling_fc(mean(s ⊙ x_t))` (w_o is (K, C_o), not the paper's C x C) and it is the paper's "bias
        control" (eq. 9). It never enters the returned map, so it never gets a gradient.

    Returns:
      pooled: (B, H, W, K) = W_c[j_t] ⊙ c_t: the memory re-weighted channel-wise by the selected row of w_c,
        broadcast over the grid (ε⊥ removed, paper section 4.2 / docs/differences.md §2.4 item 6).
      class_idx: (B,) int32 j_t = argmax(ε(c_t) w_c + score_bias).
    """
    scores = linear_scores(memory, kernel)
    if score_bias is not None:
        scores = scores + score_bias
    class_idx = select_class(scores)
    rows = jnp.take(kernel, class_idx, axis=1).T  # (B, K)
    pooled = memory * rows[:, None, None, :].astype(memory.dtype)
    return pooled, class_idx


def spatial_softmax(logits: jax.Array) -> jax.Array:
    """Softmax over the H*W positions of (B, H, W) logits, per sample (eq. 6: u_t = softmax(ν_a + s_t))."""
    b, h, w = logits.shape
    return jax.nn.softmax(logits.reshape(b, h * w), axis=-1).reshape(b, h, w)


#: How the LSTA cell receives the attention-pooling map ν_a (`LSTAClassifier.selector_map`): 'logits' as the
#: selector returns it (the authors' code), 'standardized' per frame to zero mean and unit standard deviation
#: over the positions (an opt-in departure, docs/differences.md §10).
SELECTOR_MAP_SCALES = ("logits", "standardized")


def rescale_selector_map(cam: jax.Array, scale: str) -> jax.Array:
    """ν_a (..., H, W) for the LSTA cell: unchanged with 'logits'; with 'standardized' (ν_a - mean) / std over
    the H*W positions of each map (a constant map stays all zeros), so that ν_a spans a few units, the scale
    of the attention memory's s_t in (-1, 1) (eq. 6 adds the two), instead of the tens of logits a trained
    selector's CAM spans."""
    if scale == "logits":
        return cam
    if scale != "standardized":
        raise ValueError(f"selector_map must be one of {', '.join(SELECTOR_MAP_SCALES)}, got {scale!r}")
    centred = cam - cam.mean(axis=(-2, -1), keepdims=True)
    std = jnp.sqrt(jnp.mean(jnp.square(centred), axis=(-2, -1), keepdims=True))
    return centred / jnp.maximum(std, 1e-6)
