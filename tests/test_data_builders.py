"""The tfds builders on fake trees in each layout: labels, counts, order, stored frames, flow, bad input."""

import logging
import math

import numpy as np
import pytest
from data_fixtures import (
    EPIC100_ROWS,
    EPIC_ROWS,
    GTEA_CLASSES,
    write_egtea,
    write_epic,
    write_epic100,
    write_gtea,
)
from PIL import Image

import lsta_jax.data as D
from lsta_jax.data.clip_io import decode_image
from lsta_jax.data.pipeline import ClipGeometry, eval_example


@pytest.fixture(scope="module")
def gtea(tmp_path_factory):
    root = tmp_path_factory.mktemp("gtea")
    raw = write_gtea(root / "raw", short=(("S4", "take_bread"),), corrupt=(("S1", "close_jam"),))
    return raw, D.build("gtea61", root / "tfds", manual_dir=raw, config="split2")


def test_gtea_labels_from_one_global_class_list(gtea):
    raw, builder = gtea
    assert D.class_names(builder) == sorted(GTEA_CLASSES)
    assert D.class_names(builder, "verb") == ["close", "open", "pour", "take"]
    assert D.class_names(builder, "noun") == ["bread", "jam", "ketchup,hotdog,bread"]
    train = builder.as_data_source("train")
    names = [r["name"].decode() for r in train]
    # reference order (subject, class, instance); S1 close_jam (corrupt) and S4 take_bread (3 frames) skipped
    assert names == [
        "S1/open_jam/open_jam_1",
        "S1/pour_ketchup,hotdog,bread/pour_ketchup,hotdog,bread_1",
        "S1/take_bread/take_bread_1",
        "S3/close_jam/close_jam_1",
        "S3/pour_ketchup,hotdog,bread/pour_ketchup,hotdog,bread_1",
        "S3/take_bread/take_bread_1",  # S3 has no open_jam folder: take_bread must keep label 3
        "S4/close_jam/close_jam_1",
        "S4/open_jam/open_jam_1",
        "S4/pour_ketchup,hotdog,bread/pour_ketchup,hotdog,bread_1",
    ]
    for record in train:
        class_name = record["name"].decode().split("/")[1]
        assert record["label"] == sorted(GTEA_CLASSES).index(class_name)
        verb, noun = class_name.split("_", 1)
        assert D.class_names(builder, "verb")[record["verb"]] == verb
        assert D.class_names(builder, "noun")[record["noun"]] == noun
        assert record["verb_label"] == GTEA_CLASSES.index(class_name) + 10  # action_label.txt, as is
    test = builder.as_data_source("test")
    assert [r["name"].decode().split("/")[0] for r in test] == ["S2"] * 4
    assert [r["num_frames"] for r in test] == [7] * 4 and [len(r["flow_x"]) for r in test] == [6] * 4


def test_gtea_frames_stored_at_scale_256(gtea):
    raw, builder = gtea
    record = builder.as_data_source("test")[2]
    original = raw / "frames" / record["name"].decode() / "image_00003.jpg"
    expected = Image.open(original).convert("RGB").resize((341, 256), Image.BILINEAR)  # int(256 * 40 / 30)
    assert np.array_equal(np.asarray(decode_image(record["frames"][2])), np.asarray(expected))


def test_gtea_flow_eval_stack_at_the_temporal_centre(gtea):
    raw, builder = gtea
    record = builder.as_data_source("test")[0]
    got = eval_example(record, ClipGeometry(crop_size=224, resize_shorter=256, modality="flow"))["flow"]
    n = 6  # flow frames of an S2 clip
    start = math.ceil((n - 5) / 2)
    channels = []
    for k in range(start, start + 5):
        for axis in ("x", "y"):
            path = raw / f"flow_{axis}" / record["name"].decode() / f"flow_{axis}_{k:05d}.jpg"
            img = Image.open(path).convert("L").resize((341, 256), Image.BILINEAR)
            x1 = int(round((341 - 224) / 2))
            channels.append(np.asarray(img.crop((x1, 16, x1 + 224, 240)), np.float32))
    expected = (np.stack(channels, -1) / np.float32(255) - np.float32(0.449)) / np.float32(0.226)
    assert got.shape == (224, 224, 10)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_gtea_logs_skips_and_missing_class_folders(tmp_path, caplog):
    raw = write_gtea(tmp_path / "raw", short=(("S2", "open_jam"),), with_flow=False)
    with caplog.at_level(logging.INFO, logger="lsta_jax.data"):
        builder = D.build("gtea71", tmp_path / "tfds", manual_dir=raw, config="split1")
    text = caplog.text
    assert "S3" in text and "open_jam" in text and "labels unaffected" in text
    assert "1 clips with fewer than 5 frames" in text
    assert "found 4 classes, expected 71" in text
    assert len(builder.as_data_source("test")) == 4 and len(builder.as_data_source("train")) == 10


def test_gtea_missing_subject_folder_is_an_error(tmp_path):
    raw = write_gtea(tmp_path / "raw", with_flow=False)
    for p in sorted((raw / "frames" / "S4").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (raw / "frames" / "S4").rmdir()
    with pytest.raises(FileNotFoundError, match=r"frames: missing subject folders \['S4'\]"):
        D.build("gtea61", tmp_path / "tfds", manual_dir=raw, config="split1")
    with pytest.raises(FileNotFoundError, match="manual_dir"):
        D.build("gtea61", tmp_path / "tfds2", manual_dir=tmp_path / "nowhere", config="split1")


def test_egtea_labels_are_one_based_in_the_files(tmp_path):
    raw = write_egtea(tmp_path / "raw")
    builder = D.build("egtea_gaze_plus", tmp_path / "tfds", manual_dir=raw, config="split1")
    train, test = builder.as_data_source("train"), builder.as_data_source("test")
    assert [(r["label"], r["verb"], r["noun"], r["verb_label"]) for r in train] == [
        (2, 1, 4, 1),
        (0, 0, 0, 0),
        (105, 18, 52, 18),
    ]
    assert [r["name"].decode() for r in test] == ["OP02-R03-Cheese-4", "OP02-R03-Cheese-5"]
    assert [r["num_frames"] for r in test] == [5, 6]
    names = D.class_names(builder)
    assert len(names) == 106 and names[0] == "action_1"
    assert D.class_names(builder, "verb")[:3] == ["Take", "Open", "verb_3"]


def test_egtea_split_file_naming_a_missing_clip(tmp_path):
    raw = write_egtea(tmp_path / "raw")
    with (raw / "test_split1.txt").open("a") as f:
        f.write("OP09-ghost-1 1 1 1\n")
    with pytest.raises(FileNotFoundError, match=r"test_split1.txt: entry 3 names clip OP09-ghost-1"):
        D.build("egtea_gaze_plus", tmp_path / "tfds", manual_dir=raw, config="split1")
    (raw / "test_split1.txt").write_text("OP02-R03-Cheese-4 2 1\n")
    with pytest.raises(ValueError, match=r"test_split1.txt:1: expected"):
        D.build("egtea_gaze_plus", tmp_path / "tfds", manual_dir=raw, config="split1")


def test_epic_segments_actions_and_held_out_videos(tmp_path):
    raw = write_epic(tmp_path / "raw")
    builder = D.build("epic_kitchens55", tmp_path / "tfds", manual_dir=raw)
    pairs = sorted({(v, n) for *_, v, n in EPIC_ROWS})  # [(0, 3), (1, 3), (2, 10)]
    train, val = builder.as_data_source("train"), builder.as_data_source("validation")
    # P01_02 is P01's last video -> validation; P02 has one video -> train
    assert [r["name"].decode() for r in train] == ["0", "1", "3"]
    assert [r["name"].decode() for r in val] == ["2"]
    rows = {str(r[0]): r for r in EPIC_ROWS}
    for record in list(train) + list(val):
        _, _, start, stop, verb, noun = rows[record["name"].decode()]
        assert record["num_frames"] == stop - start + 1
        assert (record["verb"], record["noun"]) == (verb, noun)
        assert record["label"] == pairs.index((verb, noun))
    assert D.class_names(builder)[pairs.index((2, 10))] == "open_noun_10"
    assert len(D.class_names(builder, "verb")) == 125 and len(D.class_names(builder, "noun")) == 352
    test = builder.as_data_source("test_s1")
    assert len(test) == 1 and test[0]["label"] == -1 and test[0]["num_frames"] == 8


def test_epic_missing_frames_name_the_row(tmp_path):
    raw = write_epic(tmp_path / "raw")
    (raw / "rgb" / "P02" / "P02_01" / "frame_0000000009.jpg").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"EPIC_train_action_labels.csv:5: frame .*frame_0000000009.jpg"
    ):
        D.build("epic_kitchens55", tmp_path / "tfds", manual_dir=raw)


def test_synthetic_is_deterministic_and_balanced(tmp_path):
    options = dict(num_train=24, num_test=12, num_frames=6, frame_size=32, num_nouns=2, seed=3)
    a = D.build("synthetic_ego", tmp_path / "a", **options)
    b = D.build("synthetic_ego", tmp_path / "b", **options)
    c = D.build("synthetic_ego", tmp_path / "c", **dict(options, seed=4))
    ra, rb, rc = (x.as_data_source("train") for x in (a, b, c))
    assert all(ra[i]["frames"] == rb[i]["frames"] for i in range(len(ra)))
    assert ra[0]["frames"] != rc[0]["frames"]
    names = D.class_names(a)
    assert len(names) == 12 and names[:3] == ["take_cup", "take_jar", "put_cup"]
    labels = np.array([r["label"] for r in ra])
    assert np.bincount(labels, minlength=12).tolist() == [2] * 12
    for r in ra:
        assert (
            names[r["label"]]
            == f"{D.class_names(a, 'verb')[r['verb']]}_{D.class_names(a, 'noun')[r['noun']]}"
        )
        assert decode_image(r["frames"][0]).size == (32, 32) and len(r["frames"]) == 6


def test_synthetic_export_and_command_line(tmp_path, capsys):
    from lsta_jax.data.build import main

    written = D.export_clips(D.SyntheticOptions(frame_size=48, num_frames=7), tmp_path / "clips", count=2)
    assert len(written) == 2
    for entry in written:
        clip = D.load_clip(entry["frames"], num_frames=7, size=48, resize_shorter=48)
        video = D.load_clip(entry["mp4"], num_frames=7, size=48, resize_shorter=48)
        assert clip.shape == video.shape == (7, 48, 48, 3)
        assert np.abs(clip - video).mean() < 0.2  # same content, lossy mpeg4
    assert (
        main(["synthetic_ego", "--data_dir", str(tmp_path / "tfds"), "--num-train", "12", "--num-test", "6"])
        == 0
    )
    assert "'train': 12" in capsys.readouterr().out
    assert main(["nope", "--data_dir", str(tmp_path)]) == 2


def test_epic100_splits_labels_and_narration_ids(tmp_path):
    raw = write_epic100(tmp_path / "raw")
    builder = D.build("epic_kitchens100", tmp_path / "tfds", manual_dir=raw)
    labelled = EPIC100_ROWS["train"] + EPIC100_ROWS["validation"]
    pairs = sorted(
        {(v, n) for *_, v, n in labelled}
    )  # train + validation pairs: [(0,3), (1,3), (2,10), (5,7)]
    for split in ("train", "validation"):
        records = list(builder.as_data_source(split))
        assert [r["name"].decode() for r in records] == [row[0] for row in EPIC100_ROWS[split]]
        for record, (_, _, start, stop, verb, noun) in zip(records, EPIC100_ROWS[split], strict=True):
            assert record["num_frames"] == stop - start + 1
            assert (record["verb"], record["noun"], record["label"]) == (
                verb,
                noun,
                pairs.index((verb, noun)),
            )
    assert len(D.class_names(builder, "verb")) == 97 and len(D.class_names(builder, "noun")) == 300
    assert D.class_names(builder)[pairs.index((2, 10))] == "open_noun_10"
    test = list(builder.as_data_source("test"))
    assert [r["name"].decode() for r in test] == ["P01_101_1", "P02_01_1"]
    assert all(r["label"] == -1 and r["verb"] == -1 for r in test) and test[1]["num_frames"] == 5


def test_epic100_errors_name_the_file_and_row(tmp_path):
    raw = write_epic100(tmp_path / "raw")
    (raw / "P01" / "rgb_frames" / "P01_101" / "frame_0000000008.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"EPIC_100_validation.csv:2: frame .*frame_0000000008.jpg"):
        D.build("epic_kitchens100", tmp_path / "tfds", manual_dir=raw)
    text = (raw / "EPIC_100_train.csv").read_text().splitlines()
    (raw / "EPIC_100_train.csv").write_text("\n".join(text[:2] + [text[2].rsplit(",", 6)[0]]) + "\n")
    with pytest.raises(
        ValueError, match=r"EPIC_100_train.csv:3: missing columns \['verb_class', 'noun_class'\]"
    ):
        D.build("epic_kitchens100", tmp_path / "tfds2", manual_dir=raw)
