"""The opt-in `selector_map` field of the LSTA classifier: how the cell receives the selector's CAM ν_a.

'logits' (the default) is the authors' code, checked against the torch reference by the parity tests in
test_lsta.py, which build the model with the default. 'standardized' is a departure (docs/differences.md
§10): ν_a per frame to zero mean and unit standard deviation over the positions.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_lsta import SMALL, jit_apply, random_variables

from lsta_jax.models import selector
from lsta_jax.models.lsta import LSTAClassifier


def test_rescale_selector_map_by_hand():
    cam = jnp.asarray([[[1.0, 3.0], [5.0, 7.0]]])  # mean 4, population std sqrt(5)
    np.testing.assert_allclose(
        selector.rescale_selector_map(cam, "standardized"), [[[-3, -1], [1, 3]]] / np.sqrt(5.0), rtol=1e-6
    )
    assert selector.rescale_selector_map(cam, "logits") is cam
    np.testing.assert_array_equal(
        selector.rescale_selector_map(jnp.full((1, 2, 2), 4.0), "standardized"), 0.0
    )
    with pytest.raises(ValueError, match="selector_map must be one of logits, standardized"):
        selector.rescale_selector_map(cam, "softmax")


def test_default_is_the_authors_form():
    assert LSTAClassifier().selector_map == "logits"


def _scaled_selector(variables, factor):
    """The selector fc's kernel and bias times `factor`: the scores, hence every argmax class, scale alike;
    the CAM (no bias, eq. 3) is multiplied by `factor`."""
    params = jax.tree_util.tree_map(lambda x: x, variables["params"])
    fc = dict(params["resNet"]["fc"])
    fc = {k: v * factor for k, v in fc.items()}
    params["resNet"] = {**params["resNet"], "fc": fc}
    return {**variables, "params": params}


def test_standardized_map_ignores_the_cam_scale_and_logits_do_not():
    clip = jnp.asarray(np.random.default_rng(1).normal(size=(2, 4, 96, 96, 3)), jnp.float32)  # 3x3 maps
    outputs = {}
    for scale in ("logits", "standardized"):
        model = LSTAClassifier(**SMALL, selector_map=scale)
        variables = random_variables(model, clip)
        apply = jit_apply(model)
        base = apply(variables, clip, return_selections=True)
        scaled = apply(_scaled_selector(variables, 4.0), clip, return_selections=True)
        np.testing.assert_array_equal(base["attention_class"], scaled["attention_class"])
        outputs[scale] = (base, scaled)
    base, scaled = outputs["standardized"]
    np.testing.assert_allclose(scaled["attention"], base["attention"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(scaled["logits"], base["logits"], rtol=1e-4, atol=1e-6)
    base, scaled = outputs["logits"]  # the authors' form: a 4x larger CAM makes u_t peakier
    assert np.abs(np.asarray(scaled["attention"]) - np.asarray(base["attention"])).max() > 1e-2


def test_resuming_a_workdir_written_before_a_field_existed(tmp_path):
    from lsta_jax.checkpoint import CheckpointError
    from lsta_jax.train.config import load_config
    from lsta_jax.train.trainer import check_model_fields

    config = load_config("configs/synthetic.py")
    saved = json.loads(config.to_json_best_effort())
    del saved["model"]["selector_map"]  # a config.json from before the field: its default, 'logits'
    (tmp_path / "config.json").write_text(json.dumps(saved))
    check_model_fields(config, tmp_path)  # no refusal
    config.model.selector_map = "standardized"
    with pytest.raises(
        CheckpointError, match="model.selector_map: 'logits' in the workdir, 'standardized' now"
    ):
        check_model_fields(config, tmp_path)
