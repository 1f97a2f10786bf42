"""Ground truth for attention: synthetic_ego's boxes through the eval loader, the pointing game by hand, and
the synthetic_objects pre-training images."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_train import tiny_config

import lsta_jax.data as D
from lsta_jax.benchmarks.selector_pointing import constant_map_scores, score_maps
from lsta_jax.benchmarks.selector_pointing import main as selector_pointing_main
from lsta_jax.data.clip_io import decode_image
from lsta_jax.data.synthetic import NOUN_STYLE, NOUNS, SKIN
from lsta_jax.data.synthetic_objects import COLOURS, render_image
from lsta_jax.pointing import (
    box_cells,
    dilate,
    hand_in_view,
    pointing_game,
    pointing_hits,
    pointing_per_frame,
)
from lsta_jax.viz import denormalize


def test_box_cells_and_dilation_by_hand():
    # a 4x4 grid; the box covers rows [0.3, 0.45) -> row 1, cols [0.5, 0.8) -> cols 2, 3
    cells = box_cells(np.array([0.3, 0.5, 0.45, 0.8]), 4, 4)
    assert np.argwhere(cells).tolist() == [[1, 2], [1, 3]]
    # touching a cell border does not count as overlapping it; outside the crop overlaps nothing
    assert np.argwhere(box_cells(np.array([0.25, 0.0, 0.5, 0.25]), 4, 4)).tolist() == [[1, 0]]
    assert not box_cells(np.array([1.1, 0.2, 1.3, 0.4]), 4, 4).any()
    grown = dilate(box_cells(np.array([0.0, 0.0, 0.2, 0.2]), 4, 4), 1)
    assert np.argwhere(grown).tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]


def test_pointing_hits_by_hand():
    attention = np.zeros((1, 4, 4, 4))
    boxes = np.zeros((1, 4, 3, 4))
    boxes[0, :, 1] = [0.3, 0.5, 0.45, 0.8]  # target: cells (1, 2), (1, 3)
    boxes[0, :, 0] = [1.2, 0.0, 1.4, 0.2]  # hand below the crop
    boxes[0, :, 2] = [0.8, 0.0, 1.0, 0.2]  # confuser: cell (3, 0), never a hit
    attention[0, 0, 2, 1] = 1  # one cell diagonal from (1, 2): hit
    attention[0, 1, 3, 3] = 1  # two rows below: miss
    attention[0, 2, 3, 0] = 1  # on the confuser: miss
    attention[0, 3] = 1 / 16  # uniform: argmax (0, 0), miss
    hits, counted = pointing_hits(attention, boxes)
    assert hits.tolist() == [[True, False, False, False]] and counted.all()
    boxes[0, 3, 1] = [1.1, 0.0, 1.2, 0.1]  # frame 3: hand and target outside the crop -> not counted
    hits, counted = pointing_hits(attention, boxes)
    assert counted.tolist() == [[True, True, True, False]]
    assert pointing_game(hits, counted) == pytest.approx(1 / 3)
    assert pointing_hits(attention, boxes, tolerance=0)[0].sum() == 0


def test_pointing_per_frame_and_with_the_hand_in_view_by_hand():
    # 2 clips x 3 frames; hits and counted as pointing_hits returns them
    hits = np.array([[True, False, True], [False, False, True]])
    counted = np.array([[True, True, True], [False, True, True]])
    assert pointing_per_frame(hits, counted) == [1.0, 0.0, 1.0]
    assert pointing_per_frame(hits, np.zeros_like(counted)) == [None, None, None]
    boxes = np.zeros((2, 3, 3, 4))
    boxes[:, :, 0] = [1.2, 0.0, 1.4, 0.2]  # hand below the 4x4 map ...
    boxes[0, 2, 0] = [0.7, 0.1, 1.1, 0.3]  # ... except clip 0, frame 2: it reaches row 3
    boxes[1, 1, 0] = [-0.3, 0.9, 0.01, 1.2]  # and clip 1, frame 1: a sliver of the top-right cell
    boxes[:, :, 2] = [0.0, 0.0, 0.5, 0.5]  # the confuser is not the hand
    in_view = hand_in_view(boxes, 4, 4)
    assert in_view.tolist() == [[False, False, True], [False, True, False]]
    assert pointing_game(hits & in_view, counted & in_view) == pytest.approx(1 / 2)


def test_eval_loader_boxes_sit_on_the_drawn_hand_and_confuser(tmp_path):
    builder = D.build(
        "synthetic_ego", tmp_path, num_train=0, num_test=6, num_frames=6, frame_size=48, num_distractors=0
    )
    geometry = dict(num_frames=3, crop_size=40, resize_shorter=48)
    loader = D.make_eval_loader(
        builder.as_data_source("test"), global_batch_size=6, **geometry, worker_count=0
    )
    batch = next(iter(loader))
    assert batch["boxes"].shape == (6, 3, 3, 4) and batch["boxes"].dtype == np.float32
    frames = denormalize(batch["clip"]).astype(np.float32)  # (6, 3, 40, 40, 3)
    nouns = D.class_names(builder, "noun")
    checked = {"hand": 0, "confuser": 0}
    for clip, boxes in zip(frames, batch["boxes"], strict=True):
        for frame, (hand, _, confuser) in zip(clip, boxes, strict=True):
            for name, b in (("hand", hand), ("confuser", confuser)):
                cy, cx = (b[0] + b[2]) / 2 * 40, (b[1] + b[3]) / 2 * 40
                if not (0 <= cy < 40 and 0 <= cx < 40):
                    continue
                pixel = frame[int(cy), int(cx)]
                if name == "hand":
                    assert np.abs(pixel - SKIN).max() <= 2, pixel
                else:  # the confuser is one of the noun colours (not skin: the hand may cover it)
                    colours = [np.array(NOUN_STYLE[n][0], np.float32) for n in NOUNS[: len(nouns)]] + [SKIN]
                    assert min(np.abs(pixel - c).max() for c in colours) <= 2, pixel
                checked[name] += 1
    assert checked["hand"] >= 6 and checked["confuser"] >= 12


def test_synthetic_objects_builder_balanced_and_drawn_in_the_class_colour(tmp_path):
    # without hands (a held object may be mostly hidden: the held images have their own test below)
    builder = D.build(
        "synthetic_objects", tmp_path, num_train=64, num_test=32, frame_size=32, seed=2, hand=0.0
    )
    names = D.class_names(builder)
    assert len(names) == 32 and names[:2] == ["red_square", "red_round"]
    source = builder.as_data_source("train")
    labels = np.array([r["label"] for r in source])
    assert np.bincount(labels, minlength=32).tolist() == [2] * 32
    loader = D.make_eval_loader(source, global_batch_size=64, num_frames=1, crop_size=32, resize_shorter=32)
    batch = next(iter(loader))
    assert batch["clip"].shape == (64, 1, 32, 32, 3)
    images = denormalize(batch["clip"][:, 0]).astype(np.float32)
    for image, label in zip(images, batch["label"], strict=True):
        colour = np.array(COLOURS[names[label].split("_")[0]], np.float32)
        assert (np.abs(image - colour).max(axis=-1) <= 2).sum() >= 10, names[label]


def test_export_writes_the_test_split_first_records(tmp_path):
    options = D.SyntheticOptions(num_train=0, num_test=9, num_frames=5, frame_size=24, seed=5)
    builder = D.build("synthetic_ego", tmp_path / "tfds", **vars(options))
    written = D.export_clips(options, tmp_path / "clips", "test", count=2, formats=("frames",))
    source = builder.as_data_source("test")
    for i, entry in enumerate(written):
        assert entry["label"] == source[i]["label"]
        stored = [np.asarray(decode_image(f)) for f in source[i]["frames"]]
        exported = [np.asarray(Image.open(f)) for f in sorted(Path(entry["frames"]).iterdir())]
        np.testing.assert_array_equal(np.stack(exported), np.stack(stored))


def _pixels_of(image: np.ndarray, box: list[float], colour) -> int:
    """How many pixels inside a (y0, x0, y1, x1) frame-unit box have exactly `colour` (+-2)."""
    size = image.shape[0]
    y0, x0, y1, x1 = (int(np.clip(round(v * size), 0, size)) for v in box)
    patch = image[y0:y1, x0:x1].astype(np.float32)
    return int((np.abs(patch - np.asarray(colour, np.float32)).max(axis=-1) <= 2).sum())


def test_synthetic_objects_held_images_show_the_hand_over_the_labelled_object():
    # every image held (hand=1, held=1) with a second object: check the stored geometry against the pixels
    options = D.SyntheticObjectsOptions(hand=1.0, held=1.0, second_object=1.0)
    rng = np.random.default_rng(3)
    names = options.class_names()
    for i in range(24):
        label = i % 32
        image, geometry = render_image(label, 48, rng, options)
        obj, hand, second = geometry["object"], geometry["hand"], geometry["second"]
        assert geometry["held"] == [1.0] and hand is not None and second is not None
        # the hand's box overlaps the object's box and the hand is drawn over it: skin inside the object box
        assert hand[0] < obj[2] and obj[0] < hand[2] and hand[1] < obj[3] and obj[1] < hand[3]
        colour = COLOURS[names[label].split("_")[0]]
        assert _pixels_of(image, obj, SKIN) > 0, names[label]
        # partly occluded, not hidden: some of the object's own colour is still visible
        assert _pixels_of(image, obj, colour) > 0, names[label]
        # the unheld object of another kind lies apart from the labelled one
        assert second[1] >= obj[3] or obj[1] >= second[3], (obj, second)


def test_synthetic_objects_without_hands_draw_no_skin():
    options = D.SyntheticObjectsOptions(hand=0.0, second_object=1.0)
    rng = np.random.default_rng(4)
    for label in range(8):
        image, geometry = render_image(label, 48, rng, options)
        assert geometry["hand"] is None and geometry["second"] is None and geometry["held"] == [0.0]
        assert _pixels_of(image, [0, 0, 1, 1], SKIN) == 0


def test_selector_pointing_scores_by_hand():
    # 4x4 grid: hand in cell (3, 0), target in (0, 0), confuser in (0, 3), the same in both frames
    frame = [[0.75, 0.0, 1.0, 0.25], [0.0, 0.0, 0.25, 0.25], [0.0, 0.75, 0.25, 1.0]]
    boxes = np.array([[frame, frame]], np.float32)
    maps = np.zeros((1, 2, 4, 4))
    maps[0, 0, 0, 3] = 1.0  # frame 0 on the confuser: no hit on hand or target (3 cells away)
    maps[0, 1, 1, 1] = 1.0  # frame 1 one cell from the target, two from the hand and the confuser
    scores = score_maps(maps, boxes)
    assert {k: v[0] for k, v in scores.items()} == {
        "hand|target": 0.5,
        "hand": 0.0,
        "target": 0.5,
        "confuser": 0.5,
    }
    assert scores["hand|target"][1].tolist() == [0.0, 1.0]
    constant = constant_map_scores(boxes, 4, 4)
    assert constant[(0, 0)] == 1.0 and constant[(2, 1)] == 1.0  # on the target; one cell from the hand
    assert constant[(0, 3)] == 0.0 and constant[(1, 3)] == 0.0


def test_selector_pointing_refuses_a_missing_pretrain_dir(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        selector_pointing_main(["--pretrain", str(tmp_path / "nope")])
    assert exit_info.value.code == 2 and "--pretrain" in capsys.readouterr().err


def test_evaluate_scores_the_attention_of_every_real_clip_once(tmp_path):
    import jax

    from lsta_jax.evaluate import attention_pointing
    from lsta_jax.models import create_model
    from lsta_jax.train import trainer

    config = tiny_config()
    model = create_model("lsta_rgb", **trainer.model_config(config))
    variables = trainer.init_variables(model, config, jax.random.PRNGKey(0))
    builder = D.build("synthetic_ego", tmp_path, num_train=0, num_test=6, num_frames=6, frame_size=48)
    loader = D.make_eval_loader(  # batches of 4: the second holds 2 clips and 2 padded slots
        builder.as_data_source("test"),
        global_batch_size=4,
        num_frames=3,
        crop_size=48,
        resize_shorter=48,
        worker_count=0,
    )
    batches = list(loader)
    summary = attention_pointing(model, variables, batches)

    real = [b["mask"].astype(bool) for b in batches]
    clips = np.concatenate([b["clip"][m] for b, m in zip(batches, real, strict=True)])
    boxes = np.concatenate([b["boxes"][m] for b, m in zip(batches, real, strict=True)])
    forward = jax.jit(lambda v, clip: model.apply(v, clip)["attention"])  # eager apply: 5x the time
    attention = np.asarray(forward(variables, clips))  # (6, 3, h, w)
    hits, counted = pointing_hits(attention, boxes)
    in_view = hand_in_view(boxes, *attention.shape[-2:])
    assert summary["pointing_frames"] == counted.sum() > 0
    assert summary["pointing_game"] == pytest.approx(pointing_game(hits, counted))
    assert summary["pointing_game_hand_in_view"] == pytest.approx(
        pointing_game(hits & in_view, counted & in_view), nan_ok=True
    )
    assert summary["pointing_per_frame"] == pytest.approx(pointing_per_frame(hits, counted))


def test_scattered_layout_puts_three_kinds_anywhere_apart_and_boxes_them():
    from lsta_jax.data.synthetic import (
        SCATTERED_COLS,
        SCATTERED_MIN_DISTANCE,
        SCATTERED_ROWS,
        SyntheticOptions,
        generate_with_boxes,
    )

    options = SyntheticOptions(
        layout="scattered", num_confusers=2, num_train=0, num_test=36, num_distractors=0
    )
    assert options.box_names() == ("hand", "target", "confuser", "confuser_2")
    frames, labels, boxes = generate_with_boxes(options, "test")
    assert boxes.shape == (36, 16, 4, 4)
    centres = (boxes[:, 0, 1:, :2] + boxes[:, 0, 1:, 2:]) / 2  # frame 0: target, confusers (y, x)
    # at frame 0 (no camera drift yet) the target stands at its place for take, shake and pour (open/close
    # add the lid to its box; put brings it in the hand)
    lidless = np.isin(labels // 3, [0, 4, 5])
    ys, xs = centres[..., 0], centres[..., 1]
    objects = np.concatenate([centres[lidless][:, 0], centres[:, 1:].reshape(-1, 2)])
    assert SCATTERED_ROWS[0] <= objects[:, 0].min() and objects[:, 0].max() <= SCATTERED_ROWS[1]
    assert SCATTERED_COLS[0] <= objects[:, 1].min() and objects[:, 1].max() <= SCATTERED_COLS[1]
    # spread over the table, not a middle band: the columns' spread is near a uniform's (0.7 / sqrt(12) = 0.2)
    assert xs[:, 1:].std() > 0.15 and ys[:, 1:].std() > 0.1
    # no two objects closer than the minimum distance (confuser-confuser, and target-confuser where the
    # target stands at its place)
    gap = np.linalg.norm(centres[:, 1] - centres[:, 2], axis=-1)
    assert gap.min() >= SCATTERED_MIN_DISTANCE - 1e-6
    near = np.linalg.norm(centres[lidless][:, 0, None] - centres[lidless][:, 1:], axis=-1)
    assert near.min() >= SCATTERED_MIN_DISTANCE - 1e-6
    # every clip shows all three kinds: the target's and two others, each drawn in its colour at its centre
    for clip, label, clip_centres in zip(frames, labels, centres, strict=True):
        noun = label % 3
        seen = set()
        for k, (cy, cx) in enumerate(clip_centres[1:]):
            pixel = clip[0, int(cy * 64), int(cx * 64)].astype(np.float32)
            kind = [n for n in NOUNS[:3] if np.abs(pixel - NOUN_STYLE[n][0]).max() <= 1]
            assert len(kind) == 1, (k, pixel)
            seen.add(NOUNS.index(kind[0]))
        assert seen == {0, 1, 2} - {noun}


def test_layouts_refuse_the_wrong_number_of_confusers():
    from lsta_jax.data.synthetic import SyntheticOptions

    with pytest.raises(ValueError, match="needs num_confusers"):
        SyntheticOptions(layout="scattered").validate()
    with pytest.raises(ValueError, match="needs num_confusers"):
        SyntheticOptions(num_confusers=2).validate()
    with pytest.raises(ValueError, match="layout must be one of"):
        SyntheticOptions(layout="corner").validate()
