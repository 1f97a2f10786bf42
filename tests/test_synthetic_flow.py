"""`synthetic_ego` with TV-L1 flow (`flow=True`) and the synthetic configs of the two-stream chain."""

from __future__ import annotations

import io
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from lsta_jax import data as D
from lsta_jax.data.flow import dequantize_flow, quantize_flow, tvl1_flow
from lsta_jax.models.registry import create_model
from lsta_jax.train import trainer
from lsta_jax.train.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = dict(num_train=0, num_test=3, num_frames=8, frame_size=48, num_distractors=0)  # >= 6 flow images


def _gray(encoded: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(encoded)).convert("L"))


def _rgb(encoded: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))


def test_flow_build_stores_the_tvl1_flow_of_the_same_clips(tmp_path):
    plain = D.build("synthetic_ego", tmp_path, **TINY)
    with_flow = D.build("synthetic_ego", tmp_path, flow=1, **TINY)
    assert with_flow.builder_config.name == plain.builder_config.name + "_flow"
    records = with_flow.as_data_source("test")
    for flow_record, rgb_record in zip(records, plain.as_data_source("test"), strict=True):
        # the clips are the same: frames, label and boxes of the build without flow
        assert flow_record["frames"] == rgb_record["frames"] and flow_record["label"] == rgb_record["label"]
        assert np.array_equal(flow_record["boxes"], rgb_record["boxes"])
        assert len(rgb_record["flow_x"]) == 0
        frames = np.stack([_rgb(f) for f in flow_record["frames"]])
        assert len(flow_record["flow_x"]) == len(flow_record["flow_y"]) == TINY["num_frames"] - 1
        pairs = zip(flow_record["flow_x"], flow_record["flow_y"], strict=True)
        stored = np.stack([np.stack([_gray(x), _gray(y)], -1) for x, y in pairs])
        # the authors' storage of the TV-L1 flow of those frames: quantized (bound 20 px), JPEG quality 95
        expected = quantize_flow(tvl1_flow(frames)).astype(np.int32)
        error = np.abs(stored.astype(np.int32) - expected)
        assert error.mean() < 0.25 and error.max() <= 8, (error.mean(), error.max())
        # the table is static, the hand moves: zero flow on most pixels, a large flow on the hand
        flow = dequantize_flow(stored)
        assert np.median(np.abs(flow)) < 0.2
        hand = np.clip(flow_record["boxes"][:-1, 0] * TINY["frame_size"], 0, None).astype(int)  # frame t
        on_hand = [np.abs(flow[t, y0:y1, x0:x1]).max(initial=0) for t, (y0, x0, y1, x1) in enumerate(hand)]
        assert max(on_hand) > 1.0, on_hand


@pytest.mark.parametrize(
    "spec, num_classes",
    [
        ("lsta_flow.py:stage=verb,dataset=synthetic", 6),
        ("lsta_flow.py:stage=activity,dataset=synthetic", 18),
        ("lsta_two_stream.py:dataset=synthetic", 18),
    ],
)
def test_synthetic_stream_configs_give_the_rgb_streams_7x7_maps(spec, num_classes):
    """The motion stream and the two-stream model on the synthetic flow build use the small backbone of the
    RGB stream (`configs/synthetic.py`) with its downsampling, so both streams' maps are the 7x7 of its
    attention (the fusion adds flow maps to the RGB gates position by position)."""
    config = load_config(str(CONFIGS / spec))
    assert config.data.name == "synthetic_ego" and config.data.synthetic.flow
    assert config.model.backbone_stage_strides == (1, 2, 2, 1) and not config.model.backbone_max_pool
    model_config = dict(trainer.model_config(config))
    model_config["num_classes"] = num_classes  # 0 in the verb config: the number of verbs of the data
    if "verb_classes" in model_config:
        model_config["verb_classes"] = 6
    model = create_model(config.model.kind, **model_config)
    inputs = trainer.example_inputs(config)
    if "clip" in inputs:
        inputs["clip"] = inputs["clip"][:, :2]
    out = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), **inputs)[0])
    assert out["logits"].shape == (1, num_classes)
    maps = [out[k].shape[-2:] for k in ("attention", "flow_attention") if k in out]
    assert maps == ([(7, 7), (7, 7)] if "two_stream" in spec else [(7, 7)] if "activity" in spec else [])
    if "layer4" in out:
        assert out["layer4"].shape[1:3] == (7, 7)


def test_evaluate_scores_a_two_stream_models_rgb_maps(tmp_path):
    """`evaluate`'s pointing game feeds a model every input of the batch (`clip` and `flow`): a two-stream
    model is scored on its RGB maps u_t, the same numbers as a direct forward."""
    from lsta_jax.evaluate import attention_pointing
    from lsta_jax.pointing import pointing_game, pointing_hits

    builder = D.build("synthetic_ego", tmp_path, flow=1, **TINY)
    loader = D.make_eval_loader(  # batches of 2: the second holds 1 clip and 1 padded slot
        builder.as_data_source("test"),
        global_batch_size=2,
        num_frames=3,
        crop_size=48,
        resize_shorter=48,
        modality="rgb+flow",
        worker_count=0,
    )
    batches = list(loader)
    config = load_config(str(CONFIGS / "lsta_two_stream.py:dataset=synthetic"))
    config.data.update(num_frames=3, crop_size=48)
    config.model.verb_classes = 6
    model = create_model(config.model.kind, **trainer.model_config(config))
    variables = trainer.init_variables(model, config, jax.random.PRNGKey(0))
    summary = attention_pointing(model, variables, batches)

    real = [b["mask"].astype(bool) for b in batches]

    def gather(key: str) -> np.ndarray:
        return np.concatenate([b[key][m] for b, m in zip(batches, real, strict=True)])

    boxes = gather("boxes")
    forward = jax.jit(lambda v, clip, flow: model.apply(v, clip=clip, flow=flow)["attention"])  # eager: 5x
    attention = np.asarray(forward(variables, gather("clip"), gather("flow")))
    assert attention.shape == (3, 3, 6, 6)  # 48 px at output stride 8
    hits, counted = pointing_hits(attention, boxes)
    assert summary["pointing_frames"] == counted.sum() > 0
    assert summary["pointing_game"] == pytest.approx(pointing_game(hits, counted))
