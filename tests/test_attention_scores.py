"""The attention scores of `lsta_jax.attention_scores` against hand-computed values on tiny maps and boxes;
`evaluate`'s summary holding the scores and the baselines, the frozen selector's CAM against a direct backbone
apply and numpy; the ablation table and the attention-memory comparison on hand-made inputs."""

import numpy as np
import pytest

from lsta_jax.attention_scores import (
    box_coverage,
    constant_cell_scores,
    energy_in_box_parts,
    hand_phases,
    null_baselines,
    report_lines,
    score_maps,
    strict_pointing_hits,
    target_over_confuser_wins,
    union_coverage,
)
from lsta_jax.pointing import box_cells

# a 4x4 grid (cells of 0.25): hand in cell (3, 0), target on cells (0, 0)-(0, 1), confuser in cell (0, 3)
HAND = [0.75, 0.0, 1.0, 0.25]
TARGET = [0.0, 0.0, 0.25, 0.5]
CONFUSER = [0.0, 0.75, 0.25, 1.0]
FRAME = [HAND, TARGET, CONFUSER]


def one_frame(boxes=FRAME):
    return np.array([[boxes]], np.float32)  # (1, 1, 3, 4)


def cell_map(i, j):
    m = np.zeros((1, 1, 4, 4))
    m[0, 0, i, j] = 1.0
    return m


def test_box_coverage_is_fractional_and_agrees_with_box_cells():
    # rows [0.3, 0.45) of a 4-row grid: 0.2 of row 1 ([0.25, 0.5) -> (0.45-0.3)*4 = 0.6); cols [0.5, 0.8):
    # all of col 2, 0.2 of col 3
    cover = box_coverage(np.array([0.3, 0.5, 0.45, 0.8]), 4, 4)
    want = np.zeros((4, 4))
    want[1, 2], want[1, 3] = 0.6, 0.6 * 0.2
    np.testing.assert_allclose(cover, want, atol=1e-12)
    # outside the crop or empty (the all-zero confuser box of num_confusers=0): nothing
    assert box_coverage(np.array([1.1, 0.2, 1.3, 0.4]), 4, 4).sum() == 0
    assert box_coverage(np.zeros(4), 4, 4).sum() == 0
    rng = np.random.default_rng(0)
    boxes = np.sort(rng.uniform(-0.2, 1.2, (50, 2, 2)), axis=1).transpose(0, 2, 1).reshape(50, 4)
    boxes = boxes[:, [0, 2, 1, 3]]  # (y0, x0, y1, x1)
    np.testing.assert_array_equal(box_coverage(boxes, 7, 7) > 0, box_cells(boxes, 7, 7))
    # a union counts overlapping cells once: two boxes sharing cell (0, 1)
    union = union_coverage(np.array([0.0, 0.0, 0.25, 0.5]), np.array([0.0, 0.25, 0.25, 0.75]), 4, 4)
    np.testing.assert_allclose(union[0], [1.0, 1.0, 1.0, 0.0])


def test_strict_pointing_has_no_tolerance():
    maps = np.zeros((1, 2, 4, 4))
    maps[0, 0, 0, 1] = 1.0  # on the target
    maps[0, 1, 1, 1] = 1.0  # one cell below the target: a pointing-game hit, not a strict one
    boxes = np.concatenate([one_frame(), one_frame()], axis=1)
    hits, counted = strict_pointing_hits(maps, boxes)
    assert hits.tolist() == [[True, False]] and counted.all()
    s = score_maps(maps, boxes)
    assert s["pointing_game"] == 1.0 and s["pointing_strict"] == 0.5


def test_target_over_confuser_by_density_with_ties_half():
    boxes = one_frame()
    # target covers 2 cells, confuser 1. Mass 0.3 on the target's two cells (density 0.15), 0.2 on the
    # confuser's cell (density 0.2): the confuser wins by density though the target holds more mass
    m = np.full((4, 4), 0.5 / 13)
    m[0, 0] = m[0, 1] = 0.15
    m[0, 3] = 0.2
    wins, counted = target_over_confuser_wins(m[None, None], boxes)
    assert counted.all() and wins.tolist() == [[0.0]]
    m[0, 3] = 0.1  # now 0.15 > 0.1 (the rest renormalises both alike)
    assert target_over_confuser_wins(m[None, None], boxes)[0].tolist() == [[1.0]]
    # a constant map ties on every frame: exactly 0.5
    assert score_maps(np.full((1, 1, 4, 4), 3.0), boxes)["target_over_confuser"] == 0.5
    # no confuser in view (all-zero box): the frame does not count
    _, counted = target_over_confuser_wins(np.ones((1, 1, 4, 4)), one_frame([HAND, TARGET, [0, 0, 0, 0]]))
    assert not counted.any()
    assert np.isnan(
        score_maps(np.ones((1, 1, 4, 4)), one_frame([HAND, TARGET, [0, 0, 0, 0]]))["target_over_confuser"]
    )


def test_energy_in_box_uniform_is_one_and_all_on_the_target_is_one_over_the_share():
    boxes = one_frame()  # hand ∪ target: 3 of 16 cells
    assert score_maps(np.ones((1, 1, 4, 4)), boxes)["energy_in_box"] == pytest.approx(1.0)
    on_target = np.zeros((1, 1, 4, 4))
    on_target[0, 0, 0, :2] = 0.5
    assert score_maps(on_target, boxes)["energy_in_box"] == pytest.approx(16 / 3)
    # a half-covered cell: hand box (0.75, 0, 1, 0.125) covers half of cell (3, 0); all mass on that cell
    half = one_frame([[0.75, 0.0, 1.0, 0.125], TARGET, CONFUSER])
    mass, share = energy_in_box_parts(cell_map(3, 0), half)
    assert mass[0, 0] == pytest.approx(0.5) and share[0, 0] == pytest.approx(2.5 / 16)
    # a ratio of totals over frames: (1 + 0.5) / (3/16 + 2.5/16)
    maps = np.concatenate([on_target, cell_map(3, 0)], axis=1)
    both = np.concatenate([boxes, half], axis=1)
    assert score_maps(maps, both)["energy_in_box"] == pytest.approx(1.5 / (5.5 / 16))


def test_null_baselines_by_hand():
    boxes = one_frame()
    base = null_baselines(boxes, 4, 4)
    # uniform: argmax is cell (0, 0), on the target: a hit in both pointing games; ties; energy 1
    assert base["uniform"]["pointing_strict"] == 1.0
    assert base["uniform"]["target_over_confuser"] == 0.5
    assert base["uniform"]["energy_in_box"] == pytest.approx(1.0)
    # one-cell maps: strict hits on the 3 cells of hand ∪ target; the pointing game on the cells within one
    # cell of them: rows 0-1 x cols 0-2 (6) and rows 2-3 x cols 0-1 (4) -> 10 of 16
    assert base["random_cell"]["pointing_strict"] == pytest.approx(3 / 16)
    assert base["random_cell"]["pointing_game"] == pytest.approx(10 / 16)
    # target over confuser: the target's 2 cells win, the confuser's cell loses, the other 13 tie
    assert base["random_cell"]["target_over_confuser"] == pytest.approx((2 + 13 * 0.5) / 16)
    # energy: the expectation of a random one-cell map is the uniform map's, 1.0
    assert base["random_cell"]["energy_in_box"] == pytest.approx(1.0)
    best = base["best_constant_cell"]
    assert best["pointing_strict"] == 1.0 and best["target_over_confuser"] == 1.0
    assert best["energy_in_box"] == pytest.approx(16 / 3)
    assert best["cells"]["target_over_confuser"] in ([0, 0], [0, 1])
    assert constant_cell_scores(boxes, 4, 4)[(0, 3)]["target_over_confuser"] == 0.0


def test_hand_phases_and_restricted_scores():
    hand_away = [1.1, 0.0, 1.3, 0.25]
    clip = np.array([[[hand_away, TARGET, CONFUSER], FRAME, FRAME, [hand_away, TARGET, CONFUSER]]])
    phases = hand_phases(clip, 4, 4)
    assert phases["before"].tolist() == [[True, False, False, False]]
    assert phases["acting"].tolist() == [[False, True, True, False]]
    assert phases["after"].tolist() == [[False, False, False, True]]
    maps = np.ones((1, 4, 4, 4))
    maps[0, 0, 0, 3] = 9.0  # on the confuser before the hand arrives
    s = score_maps(maps, clip, phases["before"])
    assert s["target_over_confuser"] == 0.0 and s["target_confuser_frames"] == 1
    assert score_maps(maps, clip, phases["acting"])["target_over_confuser"] == 0.5


def test_report_lines_list_the_model_and_each_baseline():
    boxes = one_frame()
    scores = score_maps(np.ones((1, 1, 4, 4)), boxes)
    lines = report_lines(scores, null_baselines(boxes, 4, 4))
    assert len(lines) == 5 and "energy" in lines[0] and "oracle" in lines[-1]
    assert lines[2].split()[-4:] == ["1.000", "1.000", "0.500", "1.000"]  # uniform: argmax (0, 0) on target


def test_scores_refuse_negative_maps():
    with pytest.raises(ValueError, match="softmax"):
        score_maps(-np.ones((1, 1, 4, 4)), one_frame())


def _numpy_selector_cam(model, variables, clips):
    """softmax over positions of the top class's CAM (eq. 3), from a direct backbone apply and numpy."""
    import jax

    from lsta_jax.models.resnet import ResNet

    backbone = ResNet(
        stage_sizes=model.backbone_stage_sizes,
        widths=model.backbone_widths,
        num_classes=model.attention_classes,
        stage_strides=model.backbone_stage_strides,
        max_pool=model.backbone_max_pool,
    )
    resnet_vars = {k: variables[k]["resNet"] for k in ("params", "batch_stats")}
    frames = clips.reshape(-1, *clips.shape[2:])
    out = jax.jit(lambda v, x: backbone.apply(v, x, False))(resnet_vars, frames)
    layer4, logits = np.asarray(out["layer4"], np.float64), np.asarray(out["logits"])
    kernel = np.asarray(variables["params"]["resNet"]["fc"]["kernel"], np.float64)
    cam = np.einsum("nhwk,kn->nhw", layer4, kernel[:, logits.argmax(-1)])
    flat = np.exp(cam.reshape(len(cam), -1) - cam.reshape(len(cam), -1).max(-1, keepdims=True))
    cam = (flat / flat.sum(-1, keepdims=True)).reshape(cam.shape)
    return cam.reshape(*clips.shape[:2], *cam.shape[1:])


def test_evaluate_summary_holds_the_scores_and_the_baselines(tmp_path):
    import json

    import jax

    from lsta_jax.checkpoint import save_model
    from lsta_jax.evaluate import attention_report, evaluate_checkpoint
    from lsta_jax.models import create_model
    from lsta_jax.selector_cam import selector_cam_fn
    from lsta_jax.train import trainer
    from lsta_jax.train.config import load_config
    from lsta_jax.train.input_pipeline import make_data

    config = load_config("configs/synthetic.py")
    config.data.synthetic.update(num_train=2, num_test=5, num_frames=6, frame_size=48)
    config.data.update(data_dir=str(tmp_path / "tfds"), num_frames=3, crop_size=48, resize_shorter=48)
    config.global_batch_size = 2
    config.eval_batch_size = 4  # 5 clips: the second batch holds 1 clip and 3 padded slots
    model = create_model("lsta_rgb", **trainer.model_config(config))
    variables = trainer.init_variables(model, config, jax.random.PRNGKey(1))
    data = make_data(config)
    save_model(tmp_path / "model", "lsta_rgb", trainer.model_config(config), variables, data.class_names)
    summary = evaluate_checkpoint(tmp_path / "model", config, output=tmp_path / "out")

    batches = list(data.make_eval())
    real = [b["mask"].astype(bool) for b in batches]
    clips = np.concatenate([b["clip"][m] for b, m in zip(batches, real, strict=True)])
    boxes = np.concatenate([b["boxes"][m] for b, m in zip(batches, real, strict=True)])
    attention = np.asarray(jax.jit(lambda v, c: model.apply(v, c)["attention"])(variables, clips))
    h, w = attention.shape[-2:]
    want = score_maps(attention, boxes)
    for key in ("pointing_game", "pointing_strict", "target_over_confuser", "energy_in_box"):
        assert summary[key] == pytest.approx(want[key], nan_ok=True)
    assert summary["target_confuser_frames"] == want["target_confuser_frames"] > 0
    base = summary["attention_baselines"]
    assert set(base) == {"uniform", "random_cell", "best_constant_cell", "selector_cam"}
    assert base["uniform"]["target_over_confuser"] == 0.5
    assert base["uniform"]["energy_in_box"] == pytest.approx(1.0)
    assert base["random_cell"] == pytest.approx(null_baselines(boxes, h, w)["random_cell"])
    # the selector's map: softmax(ν_a) of the backbone's top class (eq. 3, eq. 6 with s_t = 0)
    cam = _numpy_selector_cam(model, variables, clips)
    selector, _ = selector_cam_fn(model, variables)
    np.testing.assert_allclose(np.asarray(selector(clips)), cam, rtol=1e-4, atol=1e-7)
    assert base["selector_cam"] == pytest.approx(score_maps(cam, boxes), rel=1e-6)
    assert selector_cam_fn(model, {"params": {}}) is None  # no `resNet` backbone: no selector row
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk["attention_baselines"] == json.loads(json.dumps(base))  # nested: baselines and cells
    assert on_disk["energy_in_box"] == pytest.approx(summary["energy_in_box"])
    lines = attention_report(summary)
    assert len(lines) == 7 and "frozen selector" in lines[-1]


def test_attention_memory_recovers_s_t_range_and_compares_the_maps_by_hand():
    from lsta_jax.benchmarks.attention_memory import compare_maps, memory_offsets, report_lines, softmax_maps

    rng = np.random.default_rng(5)
    cam = rng.normal(scale=8.0, size=(2, 4, 4, 4))
    s_t = np.tanh(rng.normal(size=cam.shape))  # bounded in (-1, 1), as o_a * tanh(a_t)
    attention = softmax_maps(s_t + cam)  # eq. 6
    offsets = memory_offsets(attention, cam)
    np.testing.assert_allclose(np.ptp(offsets.reshape(2, 4, -1), -1), np.ptp(s_t.reshape(2, 4, -1), -1))
    # the same map twice: identical argmax, zero distance, s_t range 0
    boxes = np.repeat(np.repeat(one_frame(), 2, axis=0), 4, axis=1)
    same = compare_maps(softmax_maps(cam), cam, boxes)
    assert same["all"]["same_argmax"] == 1.0 and same["all"]["total_variation"] == pytest.approx(0, abs=1e-12)
    assert same["magnitudes"]["s_t_range"]["max"] == pytest.approx(0, abs=1e-9)
    assert same["magnitudes"]["cam_range"]["max"] == pytest.approx(np.ptp(cam.reshape(8, -1), -1).max())
    # u_t all on the target, the selector all on the confuser: distance 1, argmax never agrees
    on_target, on_confuser = np.full((2, 4, 4, 4), -30.0), np.full((2, 4, 4, 4), -30.0)
    on_target[..., 0, 0] = on_confuser[..., 0, 3] = 0.0
    r = compare_maps(softmax_maps(on_target), on_confuser, boxes)
    assert r["all"]["same_argmax"] == 0.0 and r["all"]["total_variation"] == pytest.approx(1.0)
    assert r["all"]["lsta"]["target_over_confuser"] == 1.0
    assert r["all"]["selector_cam"]["target_over_confuser"] == 0.0
    assert r["frames"] == {"all": 8, "before": 0, "acting": 8, "after": 0}  # the hand is in every frame
    assert r["per_frame_position"]["target_over_confuser_lsta"] == [1.0] * 4
    assert any("before (0 frames)" in line for line in report_lines(r))


def test_ablation_table_has_the_scores_and_the_baselines_rows():
    from lsta_jax.benchmarks.ablation import table_lines

    def run(top1, strict, selector_strict):
        scores = {"pointing_game": 0.8, "pointing_strict": strict, "target_over_confuser": 0.75}
        base = {k: {"pointing_game": 0.9, "pointing_strict": 0.2, "energy_in_box": 1.0} for k in ("uniform",)}
        base["random_cell"] = {"pointing_strict": 0.1, "energy_in_box": 1.0}
        base["best_constant_cell"] = {"pointing_strict": 0.6, "energy_in_box": 3.0, "cells": {}}
        base["selector_cam"] = {"pointing_strict": selector_strict, "energy_in_box": 2.5}
        return {"top1": top1, "mean_class_accuracy": top1, "verb_accuracy": top1, **scores,
                "energy_in_box": 2.0, "attention_baselines": base}  # fmt: skip

    results = {"lsta": [run(0.9, 0.5, 0.4), run(0.7, 0.3, 0.6)], "lsta_flow": [{"top1": 0.2}]}
    lines = table_lines(results, "stage 1", 2)
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ")}
    lsta = (
        "| lsta | 80.0 ± 10.0 | 80.0 ± 10.0 | 80.0 ± 10.0 | n/a | 80.0 ± 0.0 | 40.0 ± 10.0 | 75.0 ± 0.0 "
        "| 2.00 ± 0.00 | 74.14 |"
    )
    assert rows["lsta"] == lsta  # energy stays a ratio (1.00 = uniform), the other scores in percent
    assert rows["lsta_flow"] == "| lsta_flow | 20.0 ± 0.0 | n/a | n/a | n/a | n/a | n/a | n/a | n/a | 40.52 |"
    assert rows["uniform map"].endswith(
        "| n/a | n/a | n/a | n/a | 90.0 ± 0.0 | 20.0 ± 0.0 | n/a | 1.00 ± 0.00 | |"
    )
    assert "3.00 ± 0.00" in rows["best constant cell (oracle: upper bound)"]
    assert "50.0 ± 10.0" in rows["frozen selector's CAM, softmaxed, 2 runs"]


def test_benchmark_commands_refuse_a_missing_checkpoint(tmp_path, capsys):
    from lsta_jax.benchmarks.attention_memory import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint", str(tmp_path / "nope")])
    assert exit_info.value.code == 2 and "--checkpoint" in capsys.readouterr().err


def test_target_over_confuser_counts_each_visible_confuser_of_the_scattered_layout():
    # a second confuser in cell (3, 3); the map's densities: target 0.15, confuser 0.1, second confuser 0.2
    second = [0.75, 0.75, 1.0, 1.0]
    boxes = one_frame([HAND, TARGET, CONFUSER, second])  # (1, 1, 4, 4)
    m = np.full((4, 4), 0.45 / 12)
    m[0, 0] = m[0, 1] = 0.15
    m[0, 3], m[3, 3] = 0.1, 0.2
    wins, counted = target_over_confuser_wins(m[None, None], boxes)
    assert counted.tolist() == [[2]] and wins.tolist() == [[1.0]]  # beats one of the two
    assert score_maps(m[None, None], boxes)["target_over_confuser"] == 0.5
    # out of view, the second confuser does not count: one pair, won
    hidden = one_frame([HAND, TARGET, CONFUSER, [0.0, 0.0, 0.0, 0.0]])
    assert score_maps(m[None, None], hidden)["target_over_confuser"] == 1.0
    # a constant map ties with both: 0.5
    assert score_maps(np.ones((1, 1, 4, 4)), boxes)["target_over_confuser"] == 0.5
