"""The reference optimiser (reference section 5): PyTorch 0.3.1 Adam, coupled L2, MultiStepLR, stage masks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lsta_jax.models import create_model
from lsta_jax.train import optimizer as opt


def torch031_adam_reference(params, grads_per_step, lrs, wd=5e-4, b1=0.9, b2=0.999, eps=1e-4):
    """The update rule of torch/optim/adam.py in PyTorch 0.3.1, written out in float64 numpy."""
    p = {k: np.asarray(v, np.float64).copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    for step, (grads, lr) in enumerate(zip(grads_per_step, lrs, strict=True), start=1):
        for k in p:
            g = np.asarray(grads[k], np.float64) + wd * p[k]
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            denom = np.sqrt(v[k]) + eps
            step_size = lr * np.sqrt(1 - b2**step) / (1 - b1**step)
            p[k] = p[k] - step_size * m[k] / denom
    return p


def test_reference_adam_equals_the_pytorch_031_rule_over_several_steps():
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(5, 3)).astype(np.float32), "b": rng.normal(size=(3,)).astype(np.float32)}
    # Tiny gradients make eps matter (it dominates sqrt(v)); large ones test the moments.
    grads = [
        {k: (rng.normal(size=x.shape) * s).astype(np.float32) for k, x in params.items()}
        for s in (1e-5, 1.0, 3e-4, 10.0, 1e-6, 0.5)
    ]
    lrs = [1e-3] * 3 + [1e-4] * 3
    tx = opt.reference_adam(opt.multistep_lr(1e-3, [1], 0.1, steps_per_epoch=3))
    state = tx.init(params)
    p = {k: jnp.asarray(x) for k, x in params.items()}
    for g in grads:
        updates, state = tx.update(g, state, p)
        p = optax.apply_updates(p, updates)
    want = torch031_adam_reference(params, grads, lrs)
    for k in params:
        np.testing.assert_allclose(np.asarray(p[k]), want[k], rtol=2e-6, atol=2e-7)
    # And it is NOT optax.adam(eps=1e-4) + L2: eps before/after the bias correction differs visibly at step 1.
    plain = optax.chain(optax.add_decayed_weights(5e-4), optax.adam(1e-3, eps=1e-4))
    u_plain, _ = plain.update(grads[0], plain.init(params), params)
    u_ref, _ = opt.reference_adam(1e-3).update(grads[0], opt.reference_adam(1e-3).init(params), params)
    assert not np.allclose(np.asarray(u_plain["w"]), np.asarray(u_ref["w"]), rtol=1e-2)


def test_multistep_lr_matches_the_031_epoch_table():
    # Stage 1 (reference section 5): e 0-24: 1e-3, 25-74: 1e-4, 75-149: 1e-5, 150-199: 1e-6.
    steps_per_epoch = 4
    schedule = opt.multistep_lr(1e-3, [25, 75, 150], 0.1, steps_per_epoch)
    for epoch, want in [
        (0, 1e-3),
        (24, 1e-3),
        (25, 1e-4),
        (74, 1e-4),
        (75, 1e-5),
        (149, 1e-5),
        (150, 1e-6),
        (199, 1e-6),
    ]:
        for step in (epoch * steps_per_epoch, epoch * steps_per_epoch + steps_per_epoch - 1):
            assert float(schedule(step)) == pytest.approx(want, rel=1e-6), (epoch, step)


SMALL = dict(
    num_classes=5,
    mem_size=32,
    c_cam_classes=7,
    attention_classes=11,
    backbone_stage_sizes=(1, 1, 1, 1),
    backbone_widths=(8, 16, 16, 32),
)


@pytest.fixture(scope="module")
def lsta_params():
    model = create_model("lsta_rgb", **{**SMALL, "backbone_stage_sizes": (1, 1, 1, 3)})
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 2, 32, 32, 3)))
    return shapes["params"]


def trained_paths(params, trainable):
    mask = opt.trainable_mask(params, trainable)
    flat = jax.tree_util.tree_leaves_with_path(mask)
    return {opt.param_path(path) for path, m in flat if m}, {opt.param_path(path) for path, _ in flat}


def test_stage_masks_follow_the_reference(lsta_params):
    stage1, every = trained_paths(lsta_params, "stage1")
    assert stage1 == {p for p in every if (p.startswith("lsta_cell/") or p.startswith("fc/"))} - {
        "lsta_cell/coupling_fc/kernel"
    }
    assert "lsta_cell/c_classifier/kernel" in stage1 and "fc/bias" in stage1
    stage2, _ = trained_paths(lsta_params, "stage2")
    extra = stage2 - stage1
    # layer4.{0,1,2}.conv{1,2}.weight and resNet.fc.weight; not downsample, not BN, not fc.bias.
    assert extra == {f"resNet/layer4_{b}/conv{c}/kernel" for b in range(3) for c in (1, 2)} | {
        "resNet/fc/kernel"
    }
    scratch, _ = trained_paths(lsta_params, "all")
    assert every - scratch == {"lsta_cell/coupling_fc/kernel", "resNet/fc/bias"}
    with pytest.raises(ValueError, match="unknown trainable set"):
        opt.trainable_mask(lsta_params, "stage3")


def test_masked_optimizer_leaves_frozen_leaves_bit_identical_and_undecayed():
    params = {"a": jnp.asarray([-0.0, 1.5, -2.0]), "b": jnp.asarray([3.0, -0.0])}
    mask = {"a": True, "b": False}
    tx = opt.masked_optimizer(opt.reference_adam(1e-2), mask)
    state = tx.init(params)
    grads = {"a": jnp.ones(3), "b": jnp.ones(2)}
    updates, state = tx.update(grads, state, params)
    new = opt.apply_updates(params, updates, mask)
    assert new["b"] is params["b"]  # untouched, even the -0.0
    assert np.all(np.asarray(new["a"]) != np.asarray(params["a"]))
    # no optimiser state for frozen leaves
    sizes = [x.size for x in jax.tree_util.tree_leaves(state)]
    assert sum(sizes) == 1 + 3 + 3  # count, m and v of 'a'
