"""ResNet-34 parity with the plain-torch, torchvision-named reference (docs/differences.md §3).

Random weights with non-trivial BN statistics, converted by `lsta_jax.convert.resnet`; float32 with matmul
precision 'highest'; parity measure max|a - b| / max|b| (printed; run with -s to see the numbers).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch_fixtures import images, make_torch_resnet, numpy_state_dict, random_resnet34, rel_diff, to_nhwc  # noqa: E402

from lsta_jax.convert.resnet import resnet_variables  # noqa: E402
from lsta_jax.models.resnet import BasicBlock, ResNet, resnet34  # noqa: E402

TOL = 1e-4


@functools.lru_cache(maxsize=1)
def _resnet34_pair():
    torch_model = random_resnet34()
    model = resnet34()
    return torch_model, model, resnet_variables(numpy_state_dict(torch_model), model)


def _torch_intermediates(torch_model, x):
    """Stem conv1/bn1 and every block's (out, prebn), recorded with forward hooks."""
    record, handles = {}, []

    def hook(name):
        def store(module, inputs, output):
            record[name] = output

        return store

    handles.append(torch_model.conv1.register_forward_hook(hook("conv1")))
    handles.append(torch_model.bn1.register_forward_hook(hook("bn1")))
    for i, stage in enumerate(torch_model.stages()):
        for j, block in enumerate(stage):
            handles.append(block.register_forward_hook(hook(f"layer{i + 1}_{j}")))
    try:
        with torch.no_grad():
            logits, layer4, prebn = torch_model(torch.from_numpy(x))
    finally:
        for handle in handles:
            handle.remove()
    return (logits, layer4, prebn), record


def _is_recorded(module, method_name):
    return isinstance(module, BasicBlock) or module.scope.path in (("conv1",), ("bn1",))


def test_resnet34_parity_224_block_by_block():
    torch_model, model, variables = _resnet34_pair()
    x = images((2, 3, 224, 224), seed=1)
    (t_logits, t_layer4, t_prebn), t_record = _torch_intermediates(torch_model, x)

    @jax.jit
    def apply(v, inputs):
        return model.apply(v, inputs, capture_intermediates=_is_recorded, mutable=["intermediates"])

    with jax.default_matmul_precision("highest"):
        outputs, state = apply(variables, jnp.asarray(to_nhwc(x)))
    inter = state["intermediates"]

    diffs = {
        "conv1": rel_diff(inter["conv1"]["__call__"][0], to_nhwc(t_record["conv1"])),
        "bn1": rel_diff(inter["bn1"]["__call__"][0], to_nhwc(t_record["bn1"])),
    }
    names = [f"layer{i + 1}_{j}" for i, n in enumerate(model.stage_sizes) for j in range(n)]
    assert len(names) == 16 and set(names) <= set(inter)
    for name in names:
        j_out, j_prebn = inter[name]["__call__"][0]
        t_out, t_prebn_block = t_record[name]
        diffs[f"{name}.out"] = rel_diff(j_out, to_nhwc(t_out))
        diffs[f"{name}.prebn"] = rel_diff(j_prebn, to_nhwc(t_prebn_block))
    finals = {
        "logits": rel_diff(outputs["logits"], t_logits.numpy()),
        "layer4": rel_diff(outputs["layer4"], to_nhwc(t_layer4)),
        "layer4_prebn": rel_diff(outputs["layer4_prebn"], to_nhwc(t_prebn)),
        "pooled": rel_diff(outputs["pooled"], t_layer4.numpy().mean(axis=(2, 3))),
    }
    worst = max(diffs, key=diffs.get)
    print(f"\n[resnet34 parity 224x224 f32] {', '.join(f'{k} {v:.2e}' for k, v in finals.items())}")
    print(f"[resnet34 parity 224x224 f32] worst block output: {worst} {diffs[worst]:.2e}")
    assert outputs["layer4"].shape == (2, 7, 7, 512) and outputs["logits"].shape == (2, 1000)
    assert max(diffs.values()) <= TOL, diffs
    assert max(finals.values()) <= TOL, finals
    # The prebn output really is before bn2 and the ReLU: it has negative values, layer4 has none.
    assert float(outputs["layer4_prebn"].min()) < 0.0 <= float(outputs["layer4"].min())


def test_resnet34_non_224_input_and_bfloat16():
    torch_model, model, variables = _resnet34_pair()
    x = images((1, 3, 97, 130), seed=2)  # odd sizes: every stride-2 layer sees odd and even inputs
    with torch.no_grad():
        t_logits, t_layer4, t_prebn = torch_model(torch.from_numpy(x))
    with jax.default_matmul_precision("highest"):
        out = jax.jit(model.apply)(variables, jnp.asarray(to_nhwc(x)))
    diffs = {
        "logits": rel_diff(out["logits"], t_logits.numpy()),
        "layer4": rel_diff(out["layer4"], to_nhwc(t_layer4)),
        "layer4_prebn": rel_diff(out["layer4_prebn"], to_nhwc(t_prebn)),
    }
    print(f"\n[resnet34 parity 97x130 f32] {', '.join(f'{k} {v:.2e}' for k, v in diffs.items())}")
    assert out["layer4"].shape == (1, 4, 5, 512) == to_nhwc(t_layer4).shape
    assert max(diffs.values()) <= TOL, diffs

    bf16 = resnet34(dtype=jnp.bfloat16)
    out16 = jax.jit(bf16.apply)(variables, jnp.asarray(to_nhwc(x)))
    assert all(v.dtype == jnp.float32 for v in out16.values())
    diffs16 = {
        "logits": rel_diff(out16["logits"], t_logits.numpy()),
        "layer4": rel_diff(out16["layer4"], to_nhwc(t_layer4)),
        "layer4_prebn": rel_diff(out16["layer4_prebn"], to_nhwc(t_prebn)),
    }
    print(f"[resnet34 bfloat16 vs torch f32 97x130] {', '.join(f'{k} {v:.2e}' for k, v in diffs16.items())}")
    assert max(diffs16.values()) <= 0.15, diffs16  # bfloat16 has an 8-bit mantissa; 34 layers deep
    assert np.corrcoef(np.ravel(out16["logits"]), t_logits.numpy().ravel())[0, 1] > 0.99


@pytest.mark.parametrize(
    "config",
    [
        dict(stage_sizes=(1, 1, 1, 1), widths=(8, 16, 32, 64), num_classes=7, in_channels=10),
        dict(stage_sizes=(2, 1, 1, 1), widths=(8, 16, 24, 32), include_fc=False, in_channels=3),
        dict(stage_sizes=(1, 2), widths=(8, 12), num_classes=5, in_channels=2),  # stage 1 changes width
    ],
)
def test_small_backbones_parity(config):
    torch_model = make_torch_resnet(seed=3, **config)
    model = ResNet(**config)
    variables = resnet_variables(numpy_state_dict(torch_model), model)
    x = images((2, config["in_channels"], 45, 38), seed=4)
    with torch.no_grad():
        t_logits, t_layer4, t_prebn = torch_model(torch.from_numpy(x))
    with jax.default_matmul_precision("highest"):
        out = model.apply(variables, jnp.asarray(to_nhwc(x)))
    assert rel_diff(out["layer4"], to_nhwc(t_layer4)) <= TOL
    assert rel_diff(out["layer4_prebn"], to_nhwc(t_prebn)) <= TOL
    if config.get("include_fc", True):
        assert rel_diff(out["logits"], t_logits.numpy()) <= TOL
    else:
        assert t_logits is None and "logits" not in out


def test_train_mode_batch_norm_matches_torch():
    """train=True: batch statistics in the forward (same as torch), running stats updated with momentum 0.1.

    Known difference: torch's running_var uses the unbiased batch variance (n / (n - 1)), Flax's the biased
    one; the test checks the Flax update against that rule.
    """
    config = dict(stage_sizes=(1, 1), widths=(8, 16), num_classes=4, in_channels=3)
    torch_model = make_torch_resnet(seed=5, **config)
    model = ResNet(**config)
    variables = resnet_variables(numpy_state_dict(torch_model), model)
    before = numpy_state_dict(torch_model)
    x = images((3, 3, 32, 30), seed=6)
    torch_model.train()
    with torch.no_grad():
        t_logits, t_layer4, _ = torch_model(torch.from_numpy(x))
    torch_model.eval()
    after = numpy_state_dict(torch_model)
    with jax.default_matmul_precision("highest"):
        out, updated = model.apply(variables, jnp.asarray(to_nhwc(x)), train=True, mutable=["batch_stats"])
    assert rel_diff(out["layer4"], to_nhwc(t_layer4)) <= TOL
    assert rel_diff(out["logits"], t_logits.numpy()) <= TOL
    stats = updated["batch_stats"]
    # The stem bn1 sees n = 3 * 16 * 15 positions; unbias torch's update to compare.
    n = 3 * 16 * 15
    np.testing.assert_allclose(stats["bn1"]["mean"], after["bn1.running_mean"], rtol=1e-5, atol=1e-6)
    torch_batch_var = (after["bn1.running_var"] - 0.9 * before["bn1.running_var"]) / 0.1
    expected_var = 0.9 * before["bn1.running_var"] + 0.1 * torch_batch_var * (n - 1) / n
    np.testing.assert_allclose(stats["bn1"]["var"], expected_var, rtol=1e-4, atol=1e-6)
