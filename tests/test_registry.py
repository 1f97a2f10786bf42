"""The model registry is the one place that knows a kind.

- the registered fields of the library's kinds say what the code used to hard-wire (the clip classifiers,
  the kinds reading flow, the never-trained parameters: the lists written out here);
- a throwaway kind registered by this test goes through the generic code paths (optimizer mask, trainer
  inputs and init, the batched inference, predict's checkpoint loading) without any other file naming it;
- no module outside `models/` (and the converters, which produce a given kind) compares a kind name or lists
  kind names: an AST scan of the package.
"""

import ast
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from lsta_jax import inference
from lsta_jax.checkpoint import save_model
from lsta_jax.models import registry
from lsta_jax.train import optimizer, trainer

PACKAGE = Path(__file__).resolve().parents[1] / "lsta_jax"
PROBE = "probe_clip_classifier"


class ProbeClassifier(nn.Module):
    """A clip classifier of the smallest kind: mean frame -> dense; attention = per-frame channel mean."""

    num_classes: int = 3

    @nn.compact
    def __call__(self, clip: jax.Array, train: bool = False, return_frame_features: bool = False) -> dict:
        features = clip.mean(axis=(1, 2, 3))
        out = {
            "logits": nn.Dense(self.num_classes, name="head")(features),
            "features": features,
            "attention": clip.mean(axis=-1),
        }
        if return_frame_features:
            out["frame_features"] = clip.mean(axis=(2, 3))
        return out


@pytest.fixture
def probe_kind():
    registry.register(PROBE, "test probe", clip_classifier=True, never_trained=(r"head/bias",))(
        lambda **config: ProbeClassifier(**config)
    )
    yield registry.model_kind(PROBE)
    registry.unregister(PROBE)


def test_registered_fields_say_what_the_code_hard_wired():
    assert set(registry.kinds(lambda s: s.clip_classifier)) == {"lsta_rgb", "convlstm_rgb", "elegatt_rgb"}
    assert set(registry.kinds(lambda s: s.reads_flow)) == {
        "egornn_flow",
        "lsta_flow",
        "egornn_two_stream",
        "lsta_two_stream",
    }
    assert set(registry.kinds(lambda s: s.selector_from_init)) == {"lsta_flow", "lsta_two_stream"}
    assert set(registry.never_trained()) == {
        r"(?:.+/)?lsta_cell/coupling_fc/.*",
        r"(?:.+/)?resNet/fc/bias",
        r"(?:.+/)?resNet/fc_action/bias",
    }
    assert registry.model_kind("egornn_flow").attention == ()
    assert registry.input_names() == ("clip", "flow", "x")
    with pytest.raises(ValueError, match="unknown model kind 'nope'; known kinds: convlstm_rgb"):
        registry.model_kind("nope")


def test_register_refuses_inconsistent_fields():
    with pytest.raises(ValueError, match="init_role 'graft'"):
        registry.register("bad", "", init_role="graft")
    with pytest.raises(ValueError, match="attention over"):
        registry.register("bad", "", inputs=("flow",), attention=("clip",))
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("lsta_rgb", "")(lambda **c: None)


def test_a_new_kind_runs_through_the_generic_code(probe_kind, tmp_path):
    model = registry.create_model(PROBE, num_classes=3)
    variables = model.init(jax.random.PRNGKey(0), **registry.example_input(PROBE, {}))
    # the optimizer never trains the kind's registered parameters, also inside a bigger model
    mask = optimizer.trainable_mask({"head": variables["params"]["head"]}, "all")
    assert mask == {"head": {"kernel": True, "bias": False}}
    nested = optimizer.trainable_mask({"frameModel": {"head": variables["params"]["head"]}}, "all")
    assert nested["frameModel"]["head"] == {"kernel": True, "bias": False}
    # the trainer initialises it from the data's geometry
    config = ml_collections.ConfigDict(
        {"model": {"kind": PROBE, "num_classes": 3}, "data": {"num_frames": 2, "crop_size": 4}}
    )
    scratch = trainer.init_variables(model, config, jax.random.PRNGKey(1))
    assert scratch["params"]["head"]["kernel"].shape == (3, 3)
    # batched inference runs it and agrees with a direct apply
    clips = np.random.default_rng(0).normal(size=(2, 2, 4, 4, 3)).astype(np.float32)
    out = inference.BatchedForward(model, variables, batch_size=2)(clips)
    expected = model.apply(variables, jnp.asarray(clips))["logits"]
    np.testing.assert_allclose(out["logits"], np.asarray(expected), rtol=1e-5, atol=1e-6)
    # predict loads a checkpoint of it by default (a clip classifier)
    from lsta_jax.predict import load_checkpoint

    path = save_model(tmp_path / "probe", PROBE, {"num_classes": 3}, variables)
    loaded, _, meta = load_checkpoint(str(path), "latest")
    assert meta["kind"] == PROBE and isinstance(loaded, ProbeClassifier)


def _kind_literal_offences(tree: ast.AST, kinds: set[str]) -> list[int]:
    def is_kind(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and node.value in kinds

    lines = []
    for node in ast.walk(tree):
        operands = [node.left, *node.comparators] if isinstance(node, ast.Compare) else []
        if any(is_kind(o) for o in operands) and "kind" in ast.unparse(node):
            lines.append(node.lineno)  # meta["kind"] == "x" (a row named like a kind is not a kind)
        elif isinstance(node, ast.Tuple | ast.List | ast.Set) and sum(map(is_kind, node.elts)) >= 2:
            lines.append(node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "startswith"
            and any(isinstance(a, ast.Constant) and str(a.value).startswith("resnet") for a in node.args)
        ):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_no_kind_knowledge_outside_the_models():
    kinds = set(registry.kinds())
    # models/ registers the kinds; convert/ and compare.py produce or check a given PyTorch format's kind
    skipped = {PACKAGE / "models", PACKAGE / "convert", PACKAGE / "reference", PACKAGE / "compare.py"}
    offences = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if any(path == s or s in path.parents for s in skipped):
            continue
        lines = _kind_literal_offences(ast.parse(path.read_text()), kinds)
        if lines:
            offences[str(path.relative_to(PACKAGE))] = lines
    assert not offences, f"kind names compared or listed outside the registry: {offences}"


def test_the_scan_finds_kind_knowledge():
    kinds = {"lsta_rgb", "egornn_flow"}
    code = (
        'a = meta["kind"] == "egornn_flow"\nb = ("lsta_rgb", "egornn_flow")\nc = k.startswith("resnet")\n'
        'd = "lsta_rgb"\ne = row == "lsta_rgb"\n'
    )
    assert _kind_literal_offences(ast.parse(code), kinds) == [1, 2, 3]


def test_model_defaults_come_from_the_module():
    from lsta_jax.models.lsta import LSTAClassifier
    from lsta_jax.train.config import model_fields

    defaults = registry.defaults("lsta_rgb")
    assert defaults["dtype"] == "float32" and defaults["mem_size"] == LSTAClassifier.mem_size
    model = model_fields("lsta_rgb", "mem_size", "dropout_rate", num_classes=7)
    assert model.to_dict() == {
        "kind": "lsta_rgb",
        "mem_size": LSTAClassifier.mem_size,
        "dropout_rate": LSTAClassifier.dropout_rate,
        "num_classes": 7,
    }
    with pytest.raises(ValueError, match=r"model kind 'lsta_rgb' has no fields \['hidden_size'\]"):
        model_fields("lsta_rgb", "hidden_size")
