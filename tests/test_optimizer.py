"""The reference optimiser (docs/differences.md §5): PyTorch 0.3.1 Adam, coupled L2, MultiStepLR, stage
masks."""

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
    # Stage 1 (docs/differences.md §5): e 0-24: 1e-3, 25-74: 1e-4, 75-149: 1e-5, 150-199: 1e-6.
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


def test_torch_sgd_with_a_parameter_group_lr_equals_pytorch_sgd():
    """ego-rnn's two-stream optimiser: SGD(momentum 0.9, weight_decay 5e-4) with two parameter groups (lr and
    lr / 100) under StepLR(1, 0.99), against torch.optim.SGD itself."""
    torch = pytest.importorskip("torch")
    import ml_collections

    rng = np.random.default_rng(1)
    params = {
        "fc2": {"kernel": rng.normal(size=(4, 3)).astype(np.float32)},
        "flowModel": {"layer4_0": {"conv1": {"kernel": rng.normal(size=(2, 2)).astype(np.float32)}}},
        "frozen": {"bias": rng.normal(size=(3,)).astype(np.float32)},
    }
    grads = [
        jax.tree_util.tree_map(lambda x: rng.normal(size=x.shape).astype(np.float32), params)
        for _ in range(5)
    ]
    config = ml_collections.ConfigDict(
        dict(
            trainable=[r"fc2/.*", r"flowModel/layer4_\d+/.*"],
            learning_rate=1e-2,
            lr_milestones=tuple(range(1, 10)),  # StepLR(step_size=1, gamma=0.99) == a milestone every epoch
            lr_gamma=0.99,
            weight_decay=5e-4,
            optimizer="sgd",
            momentum=0.9,
            lr_scales=((r"flowModel/layer4_\d+/.*", 0.01),),
        )
    )
    tx, mask, _ = opt.make_optimizer(config, params, steps_per_epoch=2)
    state, p = tx.init(params), jax.tree_util.tree_map(jnp.asarray, params)
    for g in grads:
        updates, state = tx.update(g, state, p)
        p = opt.apply_updates(p, updates, mask)

    main = torch.nn.Parameter(torch.tensor(params["fc2"]["kernel"]))
    base = torch.nn.Parameter(torch.tensor(params["flowModel"]["layer4_0"]["conv1"]["kernel"]))
    sgd = torch.optim.SGD(
        [{"params": [main]}, {"params": [base], "lr": 1e-4}], lr=1e-2, momentum=0.9, weight_decay=5e-4
    )
    scheduler = torch.optim.lr_scheduler.StepLR(sgd, step_size=1, gamma=0.99)
    for step, g in enumerate(grads):
        main.grad = torch.tensor(g["fc2"]["kernel"])
        base.grad = torch.tensor(g["flowModel"]["layer4_0"]["conv1"]["kernel"])
        sgd.step()
        if step % 2 == 1:  # end of an epoch of 2 steps
            scheduler.step()
    np.testing.assert_allclose(p["fc2"]["kernel"], main.detach().numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        p["flowModel"]["layer4_0"]["conv1"]["kernel"], base.detach().numpy(), rtol=1e-5, atol=1e-8
    )
    assert np.array_equal(p["frozen"]["bias"], params["frozen"]["bias"])


def test_a_stage_set_is_refused_for_a_model_without_the_modules_it_names():
    leaf = np.zeros((1,), np.float32)
    egornn = {
        "lstm_cell": {"conv_i_xx": {"kernel": leaf}},
        "fc": {"kernel": leaf},
        "resNet": {"fc": {"kernel": leaf}},
    }
    with pytest.raises(ValueError, match=r"'stage1' names lsta_cell/\.\*.*modules: fc, lstm_cell, resNet"):
        opt.trainable_mask(egornn, "stage1")
    # the same model with its own regexes, and an LSTA tree without the optional heads, are accepted
    assert opt.trainable_mask(egornn, [r"lstm_cell/.*", r"fc/.*"])["lstm_cell"]["conv_i_xx"]["kernel"]
    lsta = {
        "lsta_cell": {"conv_i_x": {"kernel": leaf}},
        "fc": {"kernel": leaf},
        "resNet": {"fc": {"kernel": leaf}},
    }
    assert opt.trainable_mask(lsta, "stage1")["lsta_cell"]["conv_i_x"]["kernel"]
