"""Ground truth for attention: synthetic_ego's boxes through the eval loader, the pointing game by hand, and
the synthetic_objects pre-training images."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lsta_jax.data as D
from lsta_jax.data.clip_io import decode_image
from lsta_jax.data.synthetic import NOUN_STYLE, NOUNS, SKIN
from lsta_jax.data.synthetic_objects import COLOURS
from lsta_jax.pointing import box_cells, dilate, pointing_game, pointing_hits
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
    builder = D.build("synthetic_objects", tmp_path, num_train=64, num_test=32, frame_size=32, seed=2)
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
