"""The LSTA cell (docs/differences.md §2.2-2.4) against our independent PyTorch transcription; ablation
switches."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lsta_jax.convert.lsta import torch_cell_to_flax  # noqa: E402
from lsta_jax.models.cells import LSTACell  # noqa: E402

B, H, W, K, C_O, T = 2, 5, 4, 16, 6, 4


def nchw(x: np.ndarray) -> "torch.Tensor":
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(x), -1, 1)))


def nhwc(x: "torch.Tensor") -> np.ndarray:
    return np.moveaxis(x.detach().numpy(), 1, -1)


@pytest.fixture(scope="module")
def torch_cell():
    from lsta_jax.reference.torch_lsta import TorchLSTACell

    torch.manual_seed(0)
    cell = TorchLSTACell(K, K, C_O)
    with torch.no_grad():  # non-zero biases so every bias path is exercised
        for name, p in cell.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.3)
    return cell.eval()


def random_inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(T, B, H, W, K)).astype(np.float32)
    cams = (3.0 * rng.normal(size=(T, B, H, W))).astype(np.float32)
    flows = {g: (0.5 * rng.normal(size=(T, B, H, W, K))).astype(np.float32) for g in ("i", "f", "c", "o")}
    return xs, cams, flows


def max_rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


@pytest.mark.parametrize("with_flow", [False, True])
def test_cell_matches_torch_reference_over_several_steps(torch_cell, with_flow):
    xs, cams, flows = random_inputs()
    params = torch_cell_to_flax(torch_cell.state_dict())
    cell = LSTACell(mem_size=K, c_cam_classes=C_O)
    carry = LSTACell.initial_carry(B, H, W, K)
    zeros_att, zeros_mem = torch.zeros(B, 1, H, W), torch.zeros(B, K, H, W)
    state_att, state_inp = (zeros_att, zeros_att), (zeros_mem, zeros_mem)
    with jax.default_matmul_precision("highest"):
        for t in range(T):
            biases = {f"x_flow_{g}": flows[g][t] for g in "ifco"} if with_flow else None
            carry, out = cell.apply({"params": params}, carry, xs[t], cams[t], biases)
            torch_flow = {f"x_flow_{g}": nchw(flows[g][t]) for g in "ifco"} if with_flow else {}
            with torch.no_grad():
                state_att, state_inp, x_att, u, j = torch_cell(
                    nchw(xs[t]), nchw(cams[t][..., None]), state_att, state_inp, **torch_flow
                )
            assert out["pooling_class"].tolist() == j.tolist(), f"step {t}: output-pooling selection differs"
            (a, s), (c, o) = carry
            for name, ours, ref in [
                ("a", a, nhwc(state_att[0])),
                ("s", s, nhwc(state_att[1])),
                ("c", c, nhwc(state_inp[0])),
                ("o", o, nhwc(state_inp[1])),
                ("u", out["attention"], u[:, 0].numpy()),
                ("x_att", out["x_att"], nhwc(x_att)),
            ]:
                rel = max_rel(ours, ref)
                assert rel < 1e-5, f"step {t} {name}: max relative difference {rel:.2e}"
    # The attention map is a spatial softmax (sums to 1 per sample) and the selection varied across samples.
    np.testing.assert_allclose(np.sum(out["attention"], axis=(1, 2)), 1.0, rtol=1e-5)


class ScannedCell(nn.Module):
    @nn.compact
    def __call__(self, carry, xs, cams):
        scan = nn.scan(
            LSTACell, variable_broadcast="params", split_rngs={"params": False}, in_axes=1, out_axes=1
        )
        return scan(mem_size=K, c_cam_classes=C_O, name="lsta_cell")(carry, xs, cams, {})


def test_nn_scan_equals_an_unrolled_python_loop(torch_cell):
    xs, cams, _ = random_inputs(1)
    xs_bt, cams_bt = np.swapaxes(xs, 0, 1), np.swapaxes(cams, 0, 1)  # (B, T, ...)
    carry0 = LSTACell.initial_carry(B, H, W, K)
    scanned = ScannedCell()
    variables = {"params": {"lsta_cell": torch_cell_to_flax(torch_cell.state_dict())}}
    with jax.default_matmul_precision("highest"):
        (_, (c_scan, o_scan)), outs = scanned.apply(variables, carry0, xs_bt, cams_bt)
        cell, carry = LSTACell(mem_size=K, c_cam_classes=C_O), carry0
        cell_vars = {"params": variables["params"]["lsta_cell"]}
        for t in range(T):
            carry, out = cell.apply(cell_vars, carry, xs[t], cams[t])
            np.testing.assert_allclose(outs["attention"][:, t], out["attention"], rtol=1e-6, atol=1e-7)
            assert outs["pooling_class"][:, t].tolist() == out["pooling_class"].tolist()
    np.testing.assert_allclose(c_scan, carry[1][0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(o_scan, carry[1][1], rtol=1e-6, atol=1e-6)


def conv(x_nhwc: np.ndarray, kernel_hwio: np.ndarray, bias=None) -> np.ndarray:
    """A 3x3 / pad 1 conv computed by torch, independently of flax."""
    weight = torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(kernel_hwio), (3, 2, 0, 1))))
    b = None if bias is None else torch.from_numpy(np.asarray(bias))
    return nhwc(torch.nn.functional.conv2d(nchw(x_nhwc), weight, b, padding=1))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


SWITCHES = {
    "convlstm": dict(attention_pooling=False, output_pooling=False, bias_control=False),
    "output_pooling": dict(attention_pooling=False, output_pooling=True, bias_control=False),
    "attention_pooling": dict(attention_pooling=True, output_pooling=False, bias_control=False),
    "no_bias_control": dict(attention_pooling=True, output_pooling=True, bias_control=False),
    "lsta": dict(attention_pooling=True, output_pooling=True, bias_control=True),
}
ATTENTION_PARAMS = {f"conv_{g}_{s}" for g in "ifao" for s in ("s", "cam")}


@pytest.mark.parametrize("variant", list(SWITCHES))
def test_ablation_switches_remove_what_the_docs_say(torch_cell, variant):
    switches = SWITCHES[variant]
    xs, cams, _ = random_inputs(2)
    cell = LSTACell(mem_size=K, c_cam_classes=C_O, **switches)
    carry0 = LSTACell.initial_carry(B, H, W, K)
    params = jax.eval_shape(cell.init, jax.random.key(0), carry0, xs[0], cams[0])["params"]
    expected = {f"conv_{g}_{s}" for g in "ifco" for s in ("x", "c")}
    if switches["attention_pooling"]:
        expected |= ATTENTION_PARAMS
    if switches["output_pooling"]:
        expected.add("c_classifier")
    if switches["bias_control"]:
        expected.add("coupling_fc")
    assert set(params) == expected

    # Same weights as the full cell (converted from the torch cell), restricted to this variant's leaves.
    full = torch_cell_to_flax(torch_cell.state_dict())
    params = torch_cell_to_flax(torch_cell.state_dict(), **switches)
    with jax.default_matmul_precision("highest"):
        (_, (c1, o1)), out = cell.apply({"params": params}, carry0, xs[0], cams[0])
        _, full_out = LSTACell(mem_size=K, c_cam_classes=C_O).apply({"params": full}, carry0, xs[0], cams[0])
    # First step from zero states (h_0 = 0, c_0 = 0): c_1 = σ(conv_i_x(x_in)) tanh(conv_c_x(x_in)).
    x_in = np.asarray(full_out["x_att"]) if switches["attention_pooling"] else xs[0]
    if not switches["attention_pooling"]:
        np.testing.assert_allclose(out["attention"], 1.0 / (H * W))  # no attention: x_t used unweighted
    else:
        np.testing.assert_allclose(out["attention"], full_out["attention"], rtol=1e-6)
    i1 = sigmoid(conv(x_in, full["conv_i_x"]["kernel"], full["conv_i_x"]["bias"]))
    c_expected = i1 * np.tanh(conv(x_in, full["conv_c_x"]["kernel"], full["conv_c_x"]["bias"]))
    np.testing.assert_allclose(c1, c_expected, rtol=1e-4, atol=1e-5)
    # Output gate input: ν_c ⊙ c_t with output pooling, the (attended) input without it.
    if switches["output_pooling"]:
        w_c = np.asarray(full["c_classifier"]["kernel"])  # (K, C_o)
        scores = c_expected.mean(axis=(1, 2)) @ w_c
        if switches["bias_control"]:
            scores = scores + x_in.mean(axis=(1, 2)) @ np.asarray(full["coupling_fc"]["kernel"])
        j = scores.argmax(-1)
        assert out["pooling_class"].tolist() == j.tolist()
        gate_in = c_expected * w_c.T[j][:, None, None, :]
    else:
        assert out["pooling_class"].tolist() == [-1] * B
        gate_in = x_in
    o_expected = sigmoid(full["conv_o_x"]["bias"] + conv(gate_in, full["conv_o_c"]["kernel"]))
    np.testing.assert_allclose(o1, o_expected, rtol=1e-4, atol=1e-5)


def test_bias_control_needs_output_pooling():
    cell = LSTACell(mem_size=K, c_cam_classes=C_O, output_pooling=False, bias_control=True)
    carry0 = LSTACell.initial_carry(1, H, W, K)
    with pytest.raises(ValueError, match="bias_control needs output_pooling"):
        jax.eval_shape(cell.init, jax.random.key(0), carry0, jnp.zeros((1, H, W, K)), jnp.zeros((1, H, W)))


def test_flax_init_matches_the_reference_initialisers():
    cell = LSTACell(mem_size=64, c_cam_classes=100)
    carry0 = LSTACell.initial_carry(1, 3, 3, 64)
    params = cell.init(jax.random.key(0), carry0, jnp.zeros((1, 3, 3, 64)), jnp.zeros((1, 3, 3)))["params"]
    # xavier_normal: std sqrt(2 / (fan_in + fan_out)) with the 3x3 receptive field; biases zero.
    assert abs(float(np.std(params["conv_i_x"]["kernel"])) - np.sqrt(2.0 / (2 * 64 * 9))) < 3e-3
    np.testing.assert_array_equal(params["conv_i_x"]["bias"], 0.0)
    # torch Linear default: U(-1/sqrt(in), 1/sqrt(in)).
    bound = 1 / np.sqrt(64)
    assert np.max(np.abs(params["c_classifier"]["kernel"])) <= bound
    assert np.max(np.abs(params["c_classifier"]["kernel"])) > 0.9 * bound


@pytest.mark.parametrize("shape", [(2, 5, 4, 16, 12), (1, 7, 7, 1, 1), (3, 2, 3, 5, 7)])
def test_im2col_gate_conv_equals_torch_conv2d_and_its_gradients(shape):
    """`im2col_conv` (the cells' gate convolutions) against torch's conv2d (3x3, padding 1): outputs and the
    gradients with respect to input and kernel; and the "xla" implementation gives XLA's convolution, same
    numbers."""
    from lsta_jax.models.cells import gate_conv, resolve_gate_conv

    b, h, w, c_in, c_out = shape
    rng = np.random.default_rng(3)
    x = rng.normal(size=(b, h, w, c_in)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, c_in, c_out)).astype(np.float32)
    bias = rng.normal(size=(c_out,)).astype(np.float32)
    cotangent = rng.normal(size=(b, h, w, c_out)).astype(np.float32)
    params = {"params": {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias)}}

    def loss(p, x):
        return jnp.sum(conv.apply(p, x) * cotangent)

    x_t = nchw(x).requires_grad_()
    w_t = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).requires_grad_()
    y_t = torch.nn.functional.conv2d(x_t, w_t, torch.from_numpy(bias), padding=1)
    (y_t * nchw(cotangent)).sum().backward()
    for implementation in ("im2col", "xla"):
        conv = gate_conv(c_out, True, "conv", jnp.float32, implementation)
        hlo = jax.jit(conv.apply).lower(params, jnp.asarray(x)).as_text()
        y = jax.jit(conv.apply)(params, jnp.asarray(x))
        grads, dx = jax.jit(jax.grad(lambda p, x: loss(p, x), argnums=(0, 1)))(params, jnp.asarray(x))
        assert ("convolution" in hlo) == (implementation == "xla")
        np.testing.assert_allclose(y, nhwc(y_t), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dx, nhwc(x_t.grad), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            grads["params"]["kernel"], w_t.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-5, atol=1e-4
        )
    with pytest.raises(ValueError, match="gate_conv must be one of"):
        resolve_gate_conv("winograd")


@pytest.mark.parametrize("stride, dilation", [((2, 2), (1, 1)), ((1, 1), (2, 2))])
def test_im2col_conv_falls_back_to_a_convolution_outside_its_case(stride, dilation):
    """Strides and dilations other than 1 are not im2col's case: the result is still torch's conv2d."""
    from lsta_jax.models.cells import im2col_conv

    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 9, 8, 3)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    numbers = jax.lax.conv_dimension_numbers(x.shape, kernel.shape, ("NHWC", "HWIO", "NHWC"))
    y = im2col_conv(jnp.asarray(x), jnp.asarray(kernel), stride, ((1, 1), (1, 1)), None, dilation, numbers)
    w_t = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    y_t = torch.nn.functional.conv2d(nchw(x), w_t, stride=stride, padding=1, dilation=dilation)
    np.testing.assert_allclose(y, nhwc(y_t), rtol=1e-5, atol=1e-5)


def test_gate_conv_implementations_agree_and_auto_follows_the_backend():
    """An LSTA cell with its gate convolutions as im2col matmuls and as XLA convolutions: the same parameter
    tree and, up to summation order, the same outputs; "auto" is im2col on CPU, XLA's convolution on TPU and
    GPU, and on this host what the default backend gives."""
    from lsta_jax.models.cells import LSTACell, resolve_gate_conv

    rng = np.random.default_rng(5)
    b, h, w, k = 2, 5, 5, 8
    x = jnp.asarray(rng.normal(size=(2, b, h, w, k)).astype(np.float32))
    cam = jnp.asarray(rng.normal(size=(2, b, h, w)).astype(np.float32))
    outputs, trees = {}, {}
    for implementation in ("im2col", "xla"):
        cell = LSTACell(mem_size=k, c_cam_classes=4, gate_conv=implementation)
        carry = LSTACell.initial_carry(b, h, w, k)
        params = cell.init(jax.random.PRNGKey(0), carry, x[0], cam[0])
        trees[implementation] = jax.tree_util.tree_map(np.asarray, params)
        for t in range(2):
            carry, out = jax.jit(cell.apply)(trees["im2col"], carry, x[t], cam[t])
        outputs[implementation] = (carry, out)
    # the same initialisation gives the same tree
    jax.tree_util.tree_map(np.testing.assert_array_equal, trees["im2col"], trees["xla"])
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), outputs["im2col"], outputs["xla"]
    )
    assert [resolve_gate_conv("auto", p) for p in ("cpu", "tpu", "gpu")] == ["im2col", "xla", "xla"]
    assert resolve_gate_conv("auto") == resolve_gate_conv("auto", jax.default_backend())
    assert resolve_gate_conv("im2col", "tpu") == "im2col" and resolve_gate_conv("xla", "cpu") == "xla"
