"""The reference optimiser, its learning-rate schedule and the per-stage trainable sets (docs/differences.md
§5); ego-rnn's SGD (`torch_sgd`) and per-parameter learning-rate factors (`lr_scales`) for its flow and
two-stream protocols (docs/differences.md §4.2, §4.4).

The authors train with `torch.optim.Adam(params, lr, weight_decay=5e-4, eps=1e-4)` under PyTorch 0.3.1 and
`MultiStepLR(milestones, gamma)` stepped at the START of every epoch. Both differ from their optax namesakes:

- 0.3.1 Adam adds the weight decay to the gradient (coupled L2, not AdamW) and adds eps to sqrt(v) BEFORE the
  bias correction: p <- p - lr * sqrt(1 - b2^t) / (1 - b1^t) * m_t / (sqrt(v_t) + eps), so the effective
  eps is eps / sqrt(1 - b2^t) (3.2e-3 at t = 1 with eps = 1e-4). `optax.scale_by_adam` adds eps
  after the correction. `scale_by_torch03_adam` below is the exact rule; `reference_adam`
  chains the coupled L2, it and the lr.
- The scheduler's `.step()` runs before each epoch, so epoch e (0-based) uses lr0 * gamma^(#milestones <= e)
  (`multistep_lr`); newer PyTorch would shift that by one epoch.
- PyTorch skips parameters whose `.grad` is None: no moment update and no weight decay. The reference never
  gives a gradient to `lsta_cell.coupling_fc` (used only inside an argmax, docs/differences.md §2.4 item 5)
  nor to the backbone's `fc.bias`; with `requires_grad=False` the whole backbone is frozen in stage 1 and all
  but `layer4.*.conv{1,2}.weight` and `fc` in stage 2. In JAX those get zero gradients instead, so they are
  labelled `frozen` here (`trainable_mask`) and get NO transform at all (no decay, no state); `apply_updates`
  leaves them bit-identical (it returns the very same arrays, not p + 0).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lsta_jax.models import registry

# Parameter paths are '/'-joined Flax names, e.g. 'lsta_cell/conv_i_x/kernel', 'resNet/layer4_0/conv1/kernel'.
# Trainable sets per stage (docs/differences.md §5 and §9). `all` is for training from scratch (no ImageNet
# weights): every parameter that can receive a gradient.
# The multi-task heads (`models/heads.py`: fc_verb, fc_noun, action_to_*) train with the activity `fc`.
HEADS = (r"fc_(verb|noun)/.*", r"action_to_(verb|noun)/.*")
STAGE_TRAINABLE: dict[str, tuple[str, ...]] = {
    "stage1": (r"lsta_cell/.*", r"fc/.*", *HEADS),
    "stage2": (
        r"lsta_cell/.*",
        r"fc/.*",
        *HEADS,
        r"resNet/layer4_\d+/conv[12]/kernel",
        r"resNet/fc/.*",
    ),
    "all": (r".*",),
}


def param_path(path: Sequence[Any]) -> str:
    """'/'-joined names of a pytree key path (DictKey / GetAttrKey entries)."""
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
    return "/".join(parts)


def trainable_mask(params: Any, trainable: str | Sequence[str]) -> Any:
    """Pytree of bools: True where a parameter is trained.

    `trainable` is a stage name of `STAGE_TRAINABLE` ('stage1', 'stage2', 'all') or a list of regexes matched
    in full against parameter paths. A stage name whose patterns (the optional heads aside) match no parameter
    is refused: the stage sets name LSTA's modules, and on another model they would leave its cell frozen.
    The registered kinds' `never_trained` parameters
    (`registry.never_trained()`) are always excluded (docs/differences.md §2.4 item 5).
    """
    if isinstance(trainable, str) and trainable not in STAGE_TRAINABLE:
        raise ValueError(f"unknown trainable set {trainable!r}; choose one of {sorted(STAGE_TRAINABLE)}")
    patterns = STAGE_TRAINABLE[trainable] if isinstance(trainable, str) else tuple(trainable)
    keep = [re.compile(p) for p in patterns]
    never = [re.compile(p) for p in registry.never_trained()]
    if isinstance(trainable, str):  # a stage set names LSTA's modules: refuse it for a model without them
        names = [param_path(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
        missing = [
            p.pattern for p in keep if p.pattern not in HEADS and not any(p.fullmatch(n) for n in names)
        ]
        if missing:
            modules = sorted({n.split("/")[0] for n in names})
            raise ValueError(
                f"trainable set {trainable!r} names {', '.join(missing)}, which match no parameter of this "
                f"model (its modules: {', '.join(modules)}): give config.trainable as a list of regexes"
            )

    def rule(path: Sequence[Any], _: Any) -> bool:
        name = param_path(path)
        return any(p.fullmatch(name) for p in keep) and not any(p.fullmatch(name) for p in never)

    return jax.tree_util.tree_map_with_path(rule, params)


def multistep_lr(
    base_lr: float, milestones: Sequence[float], gamma: float, steps_per_epoch: int
) -> Callable[[jax.Array], jax.Array]:
    """PyTorch 0.3.1 `MultiStepLR` stepped at the start of each epoch, as a function of the update count.

    Update n (0-based) lies in epoch e = n // steps_per_epoch and uses base_lr * gamma^(#{m : m <= e}).
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    marks = jnp.asarray(sorted(float(m) for m in milestones), jnp.float32).reshape(-1)

    def schedule(count: jax.Array) -> jax.Array:
        epoch = (jnp.asarray(count) // steps_per_epoch).astype(jnp.float32)
        passed = jnp.sum((marks <= epoch).astype(jnp.int32))
        return base_lr * jnp.power(jnp.float32(gamma), passed.astype(jnp.float32))

    return schedule


def exponential_lr(base_lr: float, gamma: float, steps_per_epoch: int) -> Callable[[jax.Array], jax.Array]:
    """lr x gamma every epoch (PyTorch's StepLR(step_size=1) / ExponentialLR stepped at the start of each
    epoch): update n lies in epoch e = n // steps_per_epoch and uses base_lr * gamma^e (the paper's two-stream
    training: lr 0.01 "reduced by 0.99 after each epoch", section 6.2)."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")

    def schedule(count: jax.Array) -> jax.Array:
        epoch = (jnp.asarray(count) // steps_per_epoch).astype(jnp.float32)
        return base_lr * jnp.power(jnp.float32(gamma), epoch)

    return schedule


class TorchAdamState(NamedTuple):
    """State of `scale_by_torch03_adam`: update count t and the moments m, v."""

    count: jax.Array
    mu: Any
    nu: Any


def scale_by_torch03_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-4
) -> optax.GradientTransformation:
    """Adam direction of PyTorch 0.3.1: sqrt(1 - b2^t) / (1 - b1^t) * m_t / (sqrt(v_t) + eps).

    m_t = b1 m_{t-1} + (1 - b1) g, v_t = b2 v_{t-1} + (1 - b2) g^2, t counted from 1. eps is added to
    sqrt(v_t) BEFORE the bias correction (optax's `scale_by_adam` adds it after). Returns the positive
    direction; chain with `optax.scale_by_learning_rate` to descend.
    """

    def init(params: Any) -> TorchAdamState:
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return TorchAdamState(
            count=jnp.zeros([], jnp.int32), mu=zeros, nu=jax.tree_util.tree_map(jnp.copy, zeros)
        )

    def update(updates: Any, state: TorchAdamState, params: Any = None) -> tuple[Any, TorchAdamState]:
        del params
        count = state.count + 1
        mu = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
        nu = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)
        t = count.astype(jnp.float32)
        step_scale = jnp.sqrt(1 - jnp.float32(b2) ** t) / (1 - jnp.float32(b1) ** t)
        direction = jax.tree_util.tree_map(lambda m, v: step_scale * m / (jnp.sqrt(v) + eps), mu, nu)
        return direction, TorchAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


def reference_adam(
    learning_rate: float | Callable[[jax.Array], jax.Array],
    weight_decay: float = 5e-4,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-4,
) -> optax.GradientTransformation:
    """`torch.optim.Adam(lr, betas=(b1, b2), eps, weight_decay)` of PyTorch 0.3.1 (docs/differences.md §5).

    g <- g + weight_decay * p (coupled L2, before the moments), then `scale_by_torch03_adam`, then -lr.
    """
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        scale_by_torch03_adam(b1=b1, b2=b2, eps=eps),
        optax.scale_by_learning_rate(learning_rate),
    )


def masked_optimizer(inner: optax.GradientTransformation, mask: Any) -> optax.GradientTransformation:
    """Run `inner` on the parameters where `mask` is True; the others get no transform and no state.

    Frozen leaves come out as zero updates; `apply_updates(params, updates, mask)` keeps them untouched.
    """
    labels = jax.tree_util.tree_map(lambda m: "train" if m else "frozen", mask)
    return optax.multi_transform({"train": inner, "frozen": optax.set_to_zero()}, labels)


def partition_params(params: Any, mask: Any) -> tuple[Any, Any]:
    """(trainable, frozen): two trees of the structure of `params`, each with None where the other has a leaf.

    The train step differentiates the loss with respect to `trainable` only and closes over `frozen`, so JAX
    builds no backward pass for frozen parameters at all (nothing of the backbone in stage 1, only `layer4` in
    stage 2), exactly as PyTorch's `requires_grad=False` does in the reference.
    """
    trainable = jax.tree_util.tree_map(lambda p, m: p if m else None, params, mask)
    frozen = jax.tree_util.tree_map(lambda p, m: None if m else p, params, mask)
    return trainable, frozen


def combine_params(trainable: Any, frozen: Any, mask: Any) -> Any:
    """Inverse of `partition_params`: the full tree, leaves from `trainable` where `mask`, else `frozen`."""
    return jax.tree_util.tree_map(lambda m, t, f: t if m else f, mask, trainable, frozen)


def full_gradient(trainable_grads: Any, params: Any, mask: Any) -> Any:
    """The gradient of the trainable part as a tree of `params`' structure, zeros on frozen leaves.

    The zeros are never read (`masked_optimizer` gives frozen leaves no transform, `apply_updates` leaves them
    untouched), so XLA drops them; they only keep the optimiser's tree structure.
    """
    return jax.tree_util.tree_map(
        lambda m, g, p: g if m else jnp.zeros_like(p), mask, trainable_grads, params
    )


def apply_updates(params: Any, updates: Any, mask: Any) -> Any:
    """params + updates on trainable leaves; frozen leaves are returned as they are (bit-identical)."""
    return jax.tree_util.tree_map(lambda p, u, m: (p + u).astype(p.dtype) if m else p, params, updates, mask)


def torch_sgd(
    learning_rate: float | Callable[[jax.Array], jax.Array], momentum: float = 0.9, weight_decay: float = 5e-4
) -> optax.GradientTransformation:
    """`torch.optim.SGD(lr, momentum, weight_decay)` (no dampening, no Nesterov), ego-rnn's flow and
    two-stream optimiser (docs/differences.md §4.2, §4.4): g <- g + weight_decay * p; b <- momentum * b + g
    (b_1 = g); p <- p - lr * b."""
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.trace(decay=momentum, nesterov=False),
        optax.scale_by_learning_rate(learning_rate),
    )


def lr_scale_tree(params: Any, lr_scales: Sequence[tuple[str, float]]) -> Any:
    """Per-parameter learning-rate factors: the factor of the first `(regex, factor)` whose regex matches the
    parameter path in full, else 1.0 (PyTorch's parameter groups with their own lr)."""
    rules = [(re.compile(pattern), float(factor)) for pattern, factor in lr_scales]

    def factor(path: Sequence[Any], _: Any) -> float:
        name = param_path(path)
        return next((f for pattern, f in rules if pattern.fullmatch(name)), 1.0)

    return jax.tree_util.tree_map_with_path(factor, params)


def scale_by_tree(factors: Any) -> optax.GradientTransformation:
    """Multiply each update by its leaf of `factors` (a pytree of floats shaped like the params)."""

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params
        return jax.tree_util.tree_map(lambda u, f: u * f, updates, factors), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(
    config: Any, params: Any, steps_per_epoch: int
) -> tuple[optax.GradientTransformation, Any, Callable[[jax.Array], jax.Array]]:
    """(optimizer, trainable mask, lr schedule) from a training config.

    Config fields: `trainable` (stage name or regex list), `learning_rate`, `lr_schedule` ('multistep'
    (default): x `lr_gamma` at each of `lr_milestones` (epochs); 'exponential': x `lr_gamma` every epoch),
    `lr_gamma`, `weight_decay`; `optimizer`: 'adam' (default, the reference's, with `adam_b1`, `adam_b2`,
    `adam_eps`) or 'sgd' (`torch_sgd` with `momentum`, ego-rnn's); `lr_scales`: optional
    ((regex, factor), ...) giving matching parameters lr * factor (a parameter group with its own lr; the
    schedule scales it alike).
    Gradient accumulation happens inside the train step (one update per global batch), so the schedule
    counts updates = steps.
    """
    mask = trainable_mask(params, config.trainable)
    schedule_kind = config.get("lr_schedule", "multistep")
    if schedule_kind == "multistep":
        schedule = multistep_lr(config.learning_rate, config.lr_milestones, config.lr_gamma, steps_per_epoch)
    elif schedule_kind == "exponential":
        schedule = exponential_lr(config.learning_rate, config.lr_gamma, steps_per_epoch)
    else:
        raise ValueError(f"config.lr_schedule {schedule_kind!r}: expected 'multistep' or 'exponential'")
    kind = config.get("optimizer", "adam")
    if kind == "adam":
        inner = reference_adam(
            schedule,
            weight_decay=config.weight_decay,
            b1=config.adam_b1,
            b2=config.adam_b2,
            eps=config.adam_eps,
        )
    elif kind == "sgd":
        inner = torch_sgd(schedule, momentum=config.get("momentum", 0.9), weight_decay=config.weight_decay)
    else:
        raise ValueError(f"config.optimizer {kind!r}: expected 'adam' or 'sgd'")
    tx = masked_optimizer(inner, mask)
    lr_scales = tuple(config.get("lr_scales", None) or ())
    if lr_scales:  # after the mask: frozen leaves have zero updates, scaled or not
        tx = optax.chain(tx, scale_by_tree(lr_scale_tree(params, lr_scales)))
    return tx, mask, schedule
