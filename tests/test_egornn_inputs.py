"""`lsta_jax.benchmarks.egornn_inputs`: its frame-by-frame pass reproduces the models' own outputs."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from test_lsta import SMALL, random_variables

from lsta_jax.benchmarks.egornn_inputs import _cell_pass, _groups
from lsta_jax.models import create_model


@pytest.mark.parametrize("kind", ["convlstm_rgb", "lsta_rgb"])
def test_cell_pass_reproduces_the_models_features_and_attention(kind):
    """The stepped backbone + attention + cell gives the model's own c_T features (mean |.| and spread over
    clips), its attention maps' largest values and its logits' spread: the measured inputs are the model's."""
    model_config = {k: v for k, v in SMALL.items() if kind == "lsta_rgb" or k != "c_cam_classes"}
    model_config.update(backbone_stage_strides=(1, 2, 2, 1), backbone_max_pool=False)
    if kind == "lsta_rgb":
        model_config["variant"] = "attention_pooling"
    model = create_model(kind, **model_config)
    clip = np.random.default_rng(0).normal(size=(3, 4, 32, 32, 3)).astype(np.float32)
    variables = random_variables(model, jnp.asarray(clip[:1]), seed=2)
    out = model.apply(variables, jnp.asarray(clip))
    config = ml_collections.ConfigDict(dict(model=dict(kind=kind, **model_config)))
    got = _cell_pass(config, variables, clip)
    features = np.asarray(out["features"])
    assert got["features into fc: mean |.|"] == pytest.approx(np.abs(features).mean(), rel=1e-4)
    assert got["features into fc: std over clips"] == pytest.approx(features.std(0).mean(), rel=1e-4)
    assert got["logits: std over clips"] == pytest.approx(np.asarray(out["logits"]).std(0).mean(), rel=1e-4)
    maps = np.asarray(out["attention"]).reshape(3, 4, -1)
    assert got["softmax max"] == pytest.approx(maps.max(-1).mean(), rel=1e-4)
    assert 0 < got["mass share of argmax cell"] <= 1 and len(got["mean |x| into cell, per frame"]) == 4
    groups = set(
        _groups(variables["params"], "lstm_cell" if kind == "convlstm_rgb" else "lsta_cell").values()
    )
    want = {"cell input convs (x)", "cell hidden convs (h)", "fc"}
    assert groups == (want if kind == "convlstm_rgb" else want | {"attention convs (s, cam)"})
