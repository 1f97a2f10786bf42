"""Model kinds by name: the one place that says what a kind is.

Every checkpoint lsta_jax writes (converted from PyTorch or trained here) stores its kind and a JSON-able
config; `create_model(kind, **config)` rebuilds the module. Everything else the trainer, the optimizer,
inference and `predict` need to know about a kind is a field of its `ModelKind` (`model_kind(kind)`): the
inputs it takes by name, whether it is a clip classifier, which attention maps it draws, how its variables
initialise another model, which of its parameters are never trained. Adding a kind is one `@register(...)`
on its builder in the module of its family; no other file names it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import numpy as np

#: what `ModelKind.init_role` may be
INIT_ROLES = ("whole", "backbone", "backbone_of_other_kinds")

#: a flow input's channels when the config does not say: 5 stacked x/y flow frames (docs/differences.md §4.2)
FLOW_CHANNELS = 10


def zero_inputs(
    names: tuple[str, ...], num_frames: int, size: int, flow_channels: int = FLOW_CHANNELS
) -> dict[str, np.ndarray]:
    """Zero model inputs of one clip, by name: `clip` (1, T, S, S, 3), `flow` (1, S, S, flow_channels)."""
    shapes = {"clip": (1, num_frames, size, size, 3), "flow": (1, size, size, flow_channels)}
    unknown = [name for name in names if name not in shapes]
    if unknown:
        raise ValueError(f"unknown model inputs {unknown}; known: {sorted(shapes)}")
    return {name: np.zeros(shapes[name], np.float32) for name in names}


@dataclass(frozen=True)
class ModelKind:
    """What a registered model kind is.

    inputs: the names of the arrays `model.apply` takes as keywords (`clip`, `flow`), in the batch too.
    clip_classifier: maps a clip (B, T, H, W, 3) to `logits`, `features` and per-frame `attention` maps, the
      contract of `lsta_jax.inference.forward` (batched predict and extract).
    attention: the inputs its attention maps are drawn over: () none, ('clip',) the frames' maps,
      ('flow',) the motion map over the flow stack's frames, ('clip', 'flow') both (cross-modal overlays).
    init_role: what its variables become when they initialise (`config.init_from`) a model: 'whole' the same
      tree; 'backbone' the `resNet` of any model (for a flow network without `resNet`: its top-level backbone
      with the cross-modality conv1); 'backbone_of_other_kinds' the whole tree of a model of its own kind,
      the `resNet` of a model of another kind.
    selector_from_init: its `verb_classes` is a motion stream's selector; 0 means "read it from the
      checkpoint that initialises it".
    never_trained: regexes over parameter paths (from the model's root) that no stage ever updates: they only
      shift an argmax, so they get no gradient (docs/differences.md §2.4 item 5).
    """

    name: str
    build: Callable[..., nn.Module]
    description: str
    inputs: tuple[str, ...] = ("clip",)
    clip_classifier: bool = False
    attention: tuple[str, ...] = ("clip",)
    init_role: str = "whole"
    selector_from_init: bool = False
    never_trained: tuple[str, ...] = ()
    custom_example_input: Callable[[dict[str, Any]], Any] | None = None

    @property
    def reads_flow(self) -> bool:
        return "flow" in self.inputs

    def example_input(self, config: Mapping[str, Any]) -> np.ndarray | dict[str, np.ndarray]:
        """A small input that `build(**config).init` accepts: an array, or a dict of them by input name."""
        if self.custom_example_input is not None:
            return self.custom_example_input(dict(config))
        channels = int(config.get("in_channels", FLOW_CHANNELS))
        return zero_inputs(self.inputs, num_frames=2, size=64, flow_channels=channels)


_KINDS: dict[str, ModelKind] = {}


def register(
    kind: str,
    description: str,
    *,
    inputs: tuple[str, ...] = ("clip",),
    clip_classifier: bool = False,
    attention: tuple[str, ...] = ("clip",),
    init_role: str = "whole",
    selector_from_init: bool = False,
    never_trained: tuple[str, ...] = (),
    example_input: Callable[[dict[str, Any]], Any] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a builder `f(**config) -> nn.Module` under `kind` (fields: see `ModelKind`)."""
    if init_role not in INIT_ROLES:
        raise ValueError(f"model kind {kind!r}: init_role {init_role!r}, expected one of {INIT_ROLES}")
    if not set(attention) <= set(inputs):
        raise ValueError(f"model kind {kind!r}: attention over {attention}, but its inputs are {inputs}")

    def decorate(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if kind in _KINDS:
            raise ValueError(f"model kind {kind!r} is registered twice")
        _KINDS[kind] = ModelKind(
            kind,
            build,
            description,
            inputs=tuple(inputs),
            clip_classifier=clip_classifier,
            attention=tuple(attention),
            init_role=init_role,
            selector_from_init=selector_from_init,
            never_trained=tuple(never_trained),
            custom_example_input=example_input,
        )
        return build

    return decorate


def unregister(kind: str) -> None:
    """Remove a kind (for kinds registered by tests)."""
    _KINDS.pop(kind, None)


def _registered() -> dict[str, ModelKind]:
    import lsta_jax.models  # noqa: F401  (importing the package registers every kind)

    return _KINDS


def model_kind(kind: str) -> ModelKind:
    """The `ModelKind` registered as `kind`, else a ValueError listing the known kinds."""
    kinds = _registered()
    if kind not in kinds:
        raise ValueError(f"unknown model kind {kind!r}; known kinds: {', '.join(sorted(kinds))}")
    return kinds[kind]


def create_model(kind: str, **config: Any) -> nn.Module:
    """Build the Flax module of a registered kind from its config."""
    return model_kind(kind).build(**config)


def defaults(kind: str) -> dict[str, Any]:
    """The JSON-able config of a kind's module as built with no config: its attributes' defaults (dtypes by
    name), the one place they are written; training configs take them from here and override a few."""
    module = create_model(kind)
    values = {
        f.name: getattr(module, f.name)
        for f in dataclasses.fields(module)
        if f.name not in ("parent", "name")
    }
    return {k: np.dtype(v).name if k == "dtype" and not isinstance(v, str) else v for k, v in values.items()}


def example_input(kind: str, config: dict[str, Any]) -> np.ndarray | dict[str, np.ndarray]:
    """A small input that `create_model(kind, **config).init` accepts (its size does not matter)."""
    return model_kind(kind).example_input(config)


def kinds(where: Callable[[ModelKind], bool] = lambda _: True) -> tuple[str, ...]:
    """The registered kind names (sorted) whose `ModelKind` satisfies `where`."""
    return tuple(name for name, spec in sorted(_registered().items()) if where(spec))


def input_names() -> tuple[str, ...]:
    """Every input name some registered kind takes (batch entries that are model inputs), in a fixed order."""
    names: dict[str, None] = {}
    for spec in _registered().values():
        names.update(dict.fromkeys(spec.inputs))
    return tuple(sorted(names))


def never_trained() -> tuple[str, ...]:
    """The `never_trained` patterns of every kind, each also matching inside a bigger model (`frameModel/`,
    `flowModel/`, ...): regexes matched in full against parameter paths."""
    patterns: dict[str, None] = {}
    for spec in _registered().values():
        patterns.update(dict.fromkeys(rf"(?:.+/)?{p}" for p in spec.never_trained))
    return tuple(patterns)


def available_kinds() -> dict[str, str]:
    """Registered kinds and their one-line descriptions."""
    return {name: spec.description for name, spec in sorted(_registered().items())}
