"""The ς selectors (paper eqs. 3, 9, 12-13; docs/differences.md §2.1, §2.3-2.4) against hand-computed small
examples."""

import jax
import jax.numpy as jnp
import numpy as np

from lsta_jax.models import selector

# Features (B=1, H=1, W=2, K=2): positions p0 = (1, 0), p1 = (3, 2); spatial mean (2, 1).
FEATURES = jnp.array([[[[1.0, 0.0], [3.0, 2.0]]]])
# Kernel (K=2, C=3); scores of the mean (2, 1): c0 = 2*1 + 1*0 = 2, c1 = 0 + 1*3 = 3, c2 = 2*1 + 1*1 = 3.
KERNEL = jnp.array([[1.0, 0.0, 1.0], [0.0, 3.0, 1.0]])


def test_attention_pooling_selects_argmax_with_bias_and_maps_without_it():
    # Without bias c1 and c2 tie at 3: the first index wins (torch's sort is stable for the top entry too).
    cam, idx = selector.attention_pooling(FEATURES, KERNEL)
    assert idx.tolist() == [1]
    # c1 map: p0 = 1*0 + 0*3 = 0, p1 = 3*0 + 2*3 = 6.
    np.testing.assert_allclose(cam, [[[0.0, 6.0]]])
    # A bias favouring c2 changes the selection, but the map is computed without the bias.
    cam, idx = selector.attention_pooling(FEATURES, KERNEL, bias=jnp.array([0.0, 0.0, 0.5]))
    assert idx.tolist() == [2]
    np.testing.assert_allclose(cam, [[[1.0, 5.0]]])  # c2 map: p0 = 1, p1 = 3 + 2
    # A bias favouring c0 strongly.
    cam, idx = selector.attention_pooling(FEATURES, KERNEL, bias=jnp.array([10.0, 0.0, 0.0]))
    assert idx.tolist() == [0]
    np.testing.assert_allclose(cam, [[[1.0, 3.0]]])


def test_attention_pooling_uses_given_scores_for_the_selection():
    cam, idx = selector.attention_pooling(FEATURES, KERNEL, scores=jnp.array([[0.0, 0.0, 1.0]]))
    assert idx.tolist() == [2]
    np.testing.assert_allclose(cam, [[[1.0, 5.0]]])


def test_attention_pooling_gradient_reaches_only_the_selected_row_and_never_the_bias():
    bias = jnp.array([0.0, 0.0, 0.5])

    def loss(kernel, bias):
        cam, _ = selector.attention_pooling(FEATURES, kernel, bias)
        return jnp.sum(cam * jnp.array([[[2.0, 1.0]]]))

    g_kernel, g_bias = jax.grad(loss, argnums=(0, 1))(KERNEL, bias)
    # loss = 2 * (x_p0 . w_c2) + (x_p1 . w_c2)  =>  d/dw_c2 = 2 * (1, 0) + (3, 2) = (5, 2); other columns 0.
    np.testing.assert_allclose(g_kernel, [[0.0, 0.0, 5.0], [0.0, 0.0, 2.0]])
    np.testing.assert_allclose(g_bias, 0.0)


def test_output_pooling_reweights_channels_and_bias_control_only_moves_the_selection():
    memory = FEATURES  # scores without bias: (2, 3, 3) -> c1
    pooled, idx = selector.output_pooling(memory, KERNEL)
    assert idx.tolist() == [1]
    # W_c[c1] = (0, 3) broadcast over the grid: p0 = (1*0, 0*3), p1 = (3*0, 2*3).
    np.testing.assert_allclose(pooled, [[[[0.0, 0.0], [0.0, 6.0]]]])
    # The instance-specific term moves the selection to c0; the map is the plain row W_c[c0] = (1, 0).
    pooled, idx = selector.output_pooling(memory, KERNEL, score_bias=jnp.array([[2.0, 0.0, 0.0]]))
    assert idx.tolist() == [0]
    np.testing.assert_allclose(pooled, [[[[1.0, 0.0], [3.0, 0.0]]]])


def test_output_pooling_gradients_scatter_into_the_selected_row_and_skip_the_coupling():
    # coupling_fc kernel (K=2, C_o=3): term ε(x) w_o = (2, 1) w_o = (0.5, 0, 5) moves the scores to c2.
    coupling = jnp.array([[0.1, -0.2, 0.0], [0.3, 0.4, 5.0]])
    weights = jnp.array([[[[1.0, 1.0], [1.0, 1.0]]]])

    def loss(kernel, coupling, memory):
        bias = selector.spatial_mean(memory) @ coupling
        pooled, _ = selector.output_pooling(memory, kernel, bias)
        return jnp.sum(pooled * weights)

    g_kernel, g_coupling, g_memory = jax.grad(loss, argnums=(0, 1, 2))(KERNEL, coupling, FEATURES)
    _, idx = selector.output_pooling(FEATURES, KERNEL, selector.spatial_mean(FEATURES) @ coupling)
    assert idx.tolist() == [2]
    # d/dW_c[c2][k] = Σ_positions memory[k] = (1 + 3, 0 + 2); the other rows get nothing.
    np.testing.assert_allclose(g_kernel, [[0.0, 0.0, 4.0], [0.0, 0.0, 2.0]])
    # coupling_fc is never trained (docs/differences.md §2.4 item 5)
    np.testing.assert_allclose(g_coupling, 0.0)
    # d/dmemory = W_c[c2] = (1, 1) at every position (no gradient through the scores).
    np.testing.assert_allclose(g_memory, np.ones((1, 1, 2, 2)))


def test_batched_selection_is_per_sample():
    features = jnp.concatenate([FEATURES, FEATURES[..., ::-1]], axis=0)  # sample 2: mean (1, 2)
    # sample 2 scores: c0 = 1, c1 = 6, c2 = 3 -> c1; map p0 = (0, 1).(0, 3) = 3, p1 = (2, 3).(0, 3) = 9.
    cam, idx = selector.attention_pooling(features, KERNEL, bias=jnp.array([0.0, 0.0, 0.5]))
    assert idx.tolist() == [2, 1]
    np.testing.assert_allclose(cam, [[[1.0, 5.0]], [[3.0, 9.0]]])


def test_spatial_softmax_sums_to_one_per_sample():
    logits = jnp.array([[[0.0, np.log(3.0)]], [[1.0, 1.0]]])
    u = selector.spatial_softmax(logits)
    np.testing.assert_allclose(u, [[[0.25, 0.75]], [[0.5, 0.5]]], rtol=1e-6)
