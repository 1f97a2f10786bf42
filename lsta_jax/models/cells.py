"""One-step recurrent cells (plain linen modules, no time loop inside; `lsta.py` scans them over time).

`LSTACell` is one step of the authors' `MyConvLSTACell` (`docs/differences.md` §2.2-2.4),
paper eqs. 4-10, in NHWC, with the authors' parameter names:

  attention recurrence   conv_{i,f,a,o}_s (1->1, 3x3, bias) on s_{t-1};
                         conv_{i,f,a,o}_cam (1->1, no bias) on ν_a
  memory recurrence      conv_{i,f,c}_x (K->K, bias) on the attended input; conv_{i,f,c}_c (no bias) on h
  output gate            conv_o_x (K->K, bias) on h_{t-1}  and  conv_o_c (K->K, no bias) on the pooled memory
                         (the naming swap of docs/differences.md §2.2: shapes do not reveal it)
  output pooling         c_classifier (K x C_o, no bias), coupling_fc (K x C_o, no bias, "bias control")

Switches remove the components of the paper's Table 1 ablation (see `lsta.py` for the variant names):
`attention_pooling=False` drops the whole attention recurrence (eqs. 3-6: conv_*_s, conv_*_cam, states a and
s stay zero) and feeds the raw input x_t instead of s ⊙ x_t; `output_pooling=False` drops eq. 9 (c_classifier,
coupling_fc) and gives the output gate the standard LSTM input (conv_o_c acts on the attended input instead
of ν_c ⊙ c_t, paper section 4.2 "standard"); `bias_control=False` drops coupling_fc (the selection scores of
the output pooling are then ε(c_t) w_c alone).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lsta_jax.models import selector
from lsta_jax.models.layers import torch_linear_kernel_init, xavier_normal

Array = jax.Array
# ((a, s), (c, o)): attention memory and attention hidden state (B, H, W, 1); memory c and output gate o
# (B, H, W, K). The reference's order (state_att, state_inp).
LSTACarry = tuple[tuple[Array, Array], tuple[Array, Array]]


class LinearKernel(nn.Module):
    """A bias-free linear scorer that returns its (in_features, features) kernel instead of applying it.

    The selectors need the kernel itself (to gather the selected row); the parameter is named `kernel` like a
    Dense kernel, so conversion treats it as one (torch `Linear.weight` transposed).
    """

    features: int

    @nn.compact
    def __call__(self, in_features: int) -> Array:
        return self.param("kernel", torch_linear_kernel_init, (in_features, self.features))


#: The gate convolutions' implementations (the `gate_conv` field of the cells and of the models around them):
#: "im2col" (`im2col_conv`: one matmul of the input's patches), "xla" (`lax.conv_general_dilated`, the
#: backend's own convolution) or "auto" (the backend's default, `GATE_CONV_BY_BACKEND`). Same parameters and,
#: up to float summation order, the same numbers.
GATE_CONV_CHOICES = ("auto", "im2col", "xla")
GATE_CONV_IMPLEMENTATIONS = ("im2col", "xla")
#: What "auto" means per backend (evidence: docs/accelerators.md). CPU: im2col, measured (XLA's CPU
#: convolution runs the 7x7-map gate convolutions and their gradients far slower, above all inside the
#: rolled time loop). TPU: XLA's convolution, from TPU compiles of the stage-1 step (no more memory and
#: slightly fewer FLOPs than im2col, whose checkpointed patches are recomputed in the backward pass). GPU:
#: XLA's convolution (cuDNN), assumed, not measured (`lsta_jax.benchmarks.gpu` measures it).
GATE_CONV_BY_BACKEND = {"cpu": "im2col", "tpu": "xla", "gpu": "xla", "cuda": "xla", "rocm": "xla"}


def resolve_gate_conv(choice: str, platform: str | None = None) -> str:
    """The implementation ("im2col" or "xla") of a `gate_conv` field value on `platform` ('cpu', 'gpu',
    'tpu'; default: `jax.default_backend()`, the backend the computation is traced for)."""
    if choice not in GATE_CONV_CHOICES:
        raise ValueError(f"gate_conv must be one of {GATE_CONV_CHOICES}, got {choice!r}")
    if choice != "auto":
        return choice
    platform = jax.default_backend() if platform is None else platform
    return GATE_CONV_BY_BACKEND.get(platform, "im2col")


def im2col_conv(
    lhs: Array,
    rhs: Array,
    window_strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    precision: Any = None,
    **kwargs: Any,
) -> Array:
    """A stride-1 NHWC x HWIO `lax.conv_general_dilated` computed as ONE matmul of the input's patches.

    The (B, H, W, kh*kw*C_in) patch matrix times the (kh*kw*C_in, C_out) kernel. Why: on the 7x7 maps of the
    cells, XLA's CPU convolution runs a 3x3 512->512 forward + backward at ~55 GFLOP/s and much slower inside
    a rolled scan loop, the matmul at ~130 GFLOP/s, rolled or not (2-core CPU, batch 2). Signature of
    `lax.conv_general_dilated` (flax `nn.Conv(conv_general_dilated=...)` calls it); other layouts, strides,
    dilations or groups fall back to XLA's convolution.
    """
    plain = (
        tuple(window_strides) == (1, 1)
        and feature_group_count == 1
        and all(d is None or tuple(d) == (1, 1) for d in (lhs_dilation, rhs_dilation))
        and not isinstance(padding, str)
        and lhs.ndim == 4
        and (dimension_numbers is None or tuple(dimension_numbers.lhs_spec) == (0, 3, 1, 2))
        and (dimension_numbers is None or tuple(dimension_numbers.rhs_spec) == (3, 2, 0, 1))
        and (dimension_numbers is None or tuple(dimension_numbers.out_spec) == (0, 3, 1, 2))
    )
    if not plain:
        return jax.lax.conv_general_dilated(
            lhs,
            rhs,
            window_strides,
            padding,
            lhs_dilation,
            rhs_dilation,
            dimension_numbers,
            feature_group_count,
            precision=precision,
            **kwargs,
        )
    return _patch_matmul(
        lhs, rhs, tuple(map(tuple, padding)), precision, kwargs.get("preferred_element_type")
    )


@functools.partial(jax.checkpoint, static_argnums=(2, 3, 4))
def _patch_matmul(
    lhs: Array, rhs: Array, padding: tuple[tuple[int, int], ...], precision: Any, preferred: Any
) -> Array:
    """im2col: the (B*H'*W', kh*kw*C_in) patches of `lhs` times the flattened kernel. Under `jax.checkpoint`
    the backward pass keeps only `lhs` and recomputes the patches (kh*kw times its size: at the paper's batch
    32 they doubled a train step's memory, 4.9 -> 10.3 GiB)."""
    kh, kw, c_in, c_out = rhs.shape
    (top, bottom), (left, right) = padding
    b, h, w, _ = lhs.shape
    padded = jnp.pad(lhs, ((0, 0), (top, bottom), (left, right), (0, 0)))
    h_out, w_out = h + top + bottom - kh + 1, w + left + right - kw + 1
    patches = jnp.concatenate(
        [padded[:, i : i + h_out, j : j + w_out, :] for i in range(kh) for j in range(kw)], axis=-1
    )  # (B, H', W', kh*kw*C_in), the kernel's (i, j, c) order
    out = jnp.dot(
        patches.reshape(b * h_out * w_out, kh * kw * c_in),
        rhs.reshape(kh * kw * c_in, c_out),
        precision=precision,
        preferred_element_type=preferred,
    )
    return out.reshape(b, h_out, w_out, c_out)


def gate_conv(features: int, use_bias: bool, name: str, dtype: Any, implementation: str = "auto") -> nn.Conv:
    """3x3, stride 1, padding 1 convolution with the reference's xavier-normal init and zero bias, computed as
    `implementation` says (`resolve_gate_conv`: one matmul of patches, `im2col_conv`, or XLA's convolution);
    parameters are those of a plain `nn.Conv` either way."""
    xla = resolve_gate_conv(implementation) == "xla"
    return nn.Conv(
        features,
        (3, 3),
        padding=((1, 1), (1, 1)),
        use_bias=use_bias,
        kernel_init=xavier_normal,
        bias_init=nn.initializers.zeros,
        dtype=dtype,
        name=name,
        conv_general_dilated=jax.lax.conv_general_dilated if xla else im2col_conv,
    )


class LSTACell(nn.Module):
    """One LSTA step (docs/differences.md §2.3; paper eqs. 4-10), with the authors' parameter names
    (docs/differences.md §2.2).

    Attributes:
      mem_size: K, channels of the input and of the memory (512 with ResNet-34).
      c_cam_classes: C_o, number of output-pooling classes (rows of `c_classifier`; the authors use 100).
      attention_pooling, output_pooling, bias_control: ablation switches (module docstring).
      dtype: compute dtype of the convolutions; states, gates and selections stay float32.
      gate_conv: how the gate convolutions are computed, "auto" (the backend's default), "im2col" or "xla"
        (`resolve_gate_conv`); the parameters and, up to summation order, the numbers are the same.

    `__call__(carry, x, cam, gate_biases=None)`:
      carry: ((a, s), (c, o)) from `initial_carry` (zeros, docs/differences.md §2.4 item 9) or the previous
      step. x: (B, H, W, K) input x_t; in LSTA the pre-BN conv5_3 feature (docs/differences.md §2.1).
      cam: (B, H, W) attention pooling map ν_a_t (selector.attention_pooling); ignored without attention.
      gate_biases: optional additive pre-activation biases from another stream (cross-modal fusion,
        paper 5.3), keys `x_flow_i`, `x_flow_f`, `x_flow_c`, each broadcastable to (B, H, W, K). `x_flow_o`
        is accepted and ignored, exactly as in the authors' cell (docs/differences.md §2.4 item 7).
    Returns `(new_carry, outputs)`, outputs a dict:
      `attention` (B, H, W): u_t = softmax over positions of (s_t + ν_a) (eq. 6); uniform 1/(H*W) when the
        attention pooling is switched off (the input is then used unweighted).
      `pooling_class` (B,) int32: j_t of the output pooling, -1 when it is switched off.
      `x_att` (B, H, W, K): the attended input u_t ⊙ x_t (x_t itself without attention).

    Gate math (code order i, f, o, a~ for attention; i, f, c~, o for memory):
      i_a, f_a, o_a = σ(conv_{i,f,o}_s(s_{t-1}) + conv_{i,f,o}_cam(ν_a))
      a~ = tanh(conv_a_s(s_{t-1}) + conv_a_cam(ν_a))
      a_t = f_a a_{t-1} + i_a a~;  s_t = o_a tanh(a_t);  u_t = softmax(s_t + ν_a);  x_att = u_t x_t
      h = o_{t-1} tanh(c_{t-1});  i, f = σ(conv_{i,f}_c(h) + conv_{i,f}_x(x_att) + x_flow_{i,f})
      c~ = tanh(conv_c_c(h) + conv_c_x(x_att) + x_flow_c);  c_t = f c_{t-1} + i c~   (raw c is the state)
      j_t = argmax(ε(c_t) W_c + coupling_fc(ε(x_att)));  o_t = σ(conv_o_x(h) + conv_o_c(W_c[j_t] ⊙ c_t))
    """

    mem_size: int = 512
    c_cam_classes: int = 100
    attention_pooling: bool = True
    output_pooling: bool = True
    bias_control: bool = True
    dtype: Any = jnp.float32
    gate_conv: str = "auto"

    @staticmethod
    def initial_carry(batch: int, height: int, width: int, mem_size: int) -> LSTACarry:
        """Zero states: (a, s) (B, H, W, 1), (c, o) (B, H, W, K) (docs/differences.md §2.1 / §2.4 item 9)."""
        att = jnp.zeros((batch, height, width, 1), jnp.float32)
        mem = jnp.zeros((batch, height, width, mem_size), jnp.float32)
        return (att, att), (mem, mem)

    def _conv(self, name: str, use_bias: bool, features: int, inputs: Array) -> Array:
        return gate_conv(features, use_bias, name, self.dtype, self.gate_conv)(inputs).astype(jnp.float32)

    @nn.compact
    def __call__(
        self,
        carry: LSTACarry,
        x: Array,
        cam: Array,
        gate_biases: Mapping[str, Array] | None = None,
    ) -> tuple[LSTACarry, dict[str, Array]]:
        if self.bias_control and not self.output_pooling:
            raise ValueError("bias_control needs output_pooling: it only perturbs the output-pooling scores")
        (a_prev, s_prev), (c_prev, o_prev) = carry
        x = x.astype(jnp.float32)
        if x.shape[-1] != self.mem_size:
            raise ValueError(f"LSTACell(mem_size={self.mem_size}) got input with {x.shape[-1]} channels")
        batch, height, width, _ = x.shape
        gate_biases = dict(gate_biases or {})
        unknown = set(gate_biases) - {"x_flow_i", "x_flow_f", "x_flow_c", "x_flow_o"}
        if unknown:
            raise ValueError(f"unknown gate biases {sorted(unknown)}; expected x_flow_i, x_flow_f, x_flow_c")

        # Attention recurrence, eqs. 4-6 (docs/differences.md §2.3, first block).
        if self.attention_pooling:
            nu_a = cam.astype(jnp.float32)[..., None]

            def att_gate(g: str) -> Array:
                return self._conv(f"conv_{g}_s", True, 1, s_prev) + self._conv(
                    f"conv_{g}_cam", False, 1, nu_a
                )

            i_a = jax.nn.sigmoid(att_gate("i"))
            f_a = jax.nn.sigmoid(att_gate("f"))
            o_a = jax.nn.sigmoid(att_gate("o"))
            a_tilde = jnp.tanh(att_gate("a"))
            a_t = f_a * a_prev + i_a * a_tilde
            s_t = o_a * jnp.tanh(a_t)
            attention = selector.spatial_softmax((s_t + nu_a)[..., 0])
            x_att = x * attention[..., None]
        else:
            a_t, s_t = a_prev, s_prev
            attention = jnp.full((batch, height, width), 1.0 / (height * width), jnp.float32)
            x_att = x

        # Memory recurrence, eqs. 7-8.
        h_prev = o_prev * jnp.tanh(c_prev)
        k = self.mem_size

        def mem_gate(g: str) -> Array:
            pre = self._conv(f"conv_{g}_c", False, k, h_prev) + self._conv(f"conv_{g}_x", True, k, x_att)
            if f"x_flow_{g}" in gate_biases:
                pre = pre + gate_biases[f"x_flow_{g}"].astype(jnp.float32)
            return pre

        i = jax.nn.sigmoid(mem_gate("i"))
        f = jax.nn.sigmoid(mem_gate("f"))
        c_tilde = jnp.tanh(mem_gate("c"))
        c_t = f * c_prev + i * c_tilde

        # Output pooling, eq. 9, and output gate, eq. 10 (conv_o_x on h, conv_o_c on the pooled memory).
        if self.output_pooling:
            w_c = LinearKernel(self.c_cam_classes, name="c_classifier")(k)
            score_bias = None
            if self.bias_control:
                score_bias = nn.Dense(
                    self.c_cam_classes,
                    use_bias=False,
                    kernel_init=torch_linear_kernel_init,
                    name="coupling_fc",
                )(selector.spatial_mean(x_att))
            gate_input, pooling_class = selector.output_pooling(c_t, w_c, score_bias)
        else:
            gate_input = x_att  # the standard LSTM output gate sees the (attended) input
            pooling_class = jnp.full((batch,), -1, jnp.int32)
        o_t = jax.nn.sigmoid(
            self._conv("conv_o_x", True, k, h_prev) + self._conv("conv_o_c", False, k, gate_input)
        )

        new_carry = ((a_t, s_t), (c_t, o_t))
        return new_carry, {"attention": attention, "pooling_class": pooling_class, "x_att": x_att}


# (h, c): hidden state and memory, each (B, H, W, K), the order of ego-rnn's `MyConvLSTMCell`.
ConvLSTMCarry = tuple[Array, Array]


class ConvLSTMCell(nn.Module):
    """One step of ego-rnn's `MyConvLSTMCell` (docs/differences.md §4.5), the recurrent unit of the ego-rnn
    baseline.

    Parameter names are ego-rnn's: conv_{i,f,c,o}_xx (3x3, K_in -> K, with bias) on the input and
    conv_{i,f,c,o}_hh (3x3, K -> K, no bias) on h_{t-1}; xavier-normal weights, zero biases.
      i, f, o = σ(conv_{i,f,o}_xx(x_t) + conv_{i,f,o}_hh(h_{t-1}))
      c~ = tanh(conv_c_xx(x_t) + conv_c_hh(h_{t-1}))
      c_t = c~ i + c_{t-1} f;  h_t = o tanh(c_t)
    `__call__(carry, x, gate_biases=None)` with carry (h, c) from `initial_carry` (zeros, as the ego-rnn model
    passes) returns `((h_t, c_t), {})`. `gate_biases` (cross-modal fusion, paper 5.3; not in ego-rnn) are
    optional additive pre-activation biases, keys `x_rgb_i`, `x_rgb_f`, `x_rgb_c`, `x_rgb_o`, each
    broadcastable to (B, H, W, K), added inside the σ / tanh of their gate; absent keys add nothing, so
    without them the cell (parameters and outputs) is exactly ego-rnn's. `gate_conv` as `LSTACell`.
    """

    mem_size: int = 512
    dtype: Any = jnp.float32
    gate_conv: str = "auto"

    @staticmethod
    def initial_carry(batch: int, height: int, width: int, mem_size: int) -> ConvLSTMCarry:
        zeros = jnp.zeros((batch, height, width, mem_size), jnp.float32)
        return zeros, zeros

    @nn.compact
    def __call__(
        self, carry: ConvLSTMCarry, x: Array, gate_biases: Mapping[str, Array] | None = None
    ) -> tuple[ConvLSTMCarry, dict[str, Array]]:
        h_prev, c_prev = carry
        k = self.mem_size
        gate_biases = dict(gate_biases or {})
        unknown = set(gate_biases) - {f"x_rgb_{g}" for g in "ifco"}
        if unknown:
            raise ValueError(
                f"unknown gate biases {sorted(unknown)}; expected x_rgb_i, x_rgb_f, x_rgb_c, x_rgb_o"
            )

        def gate(g: str) -> Array:
            xx = gate_conv(k, True, f"conv_{g}_xx", self.dtype, self.gate_conv)(x)
            hh = gate_conv(k, False, f"conv_{g}_hh", self.dtype, self.gate_conv)(h_prev)
            pre = xx.astype(jnp.float32) + hh.astype(jnp.float32)
            if f"x_rgb_{g}" in gate_biases:
                pre = pre + gate_biases[f"x_rgb_{g}"].astype(jnp.float32)
            return pre

        i = jax.nn.sigmoid(gate("i"))
        f = jax.nn.sigmoid(gate("f"))
        c_tilde = jnp.tanh(gate("c"))
        c_t = c_tilde * i + c_prev * f
        o = jax.nn.sigmoid(gate("o"))
        h_t = o * jnp.tanh(c_t)
        return (h_t, c_t), {}
