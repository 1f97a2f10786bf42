"""Tiny fake raw datasets in the authors' layouts, written by the data tests (a few clips of small frames)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def frame(seed: int, height: int = 30, width: int = 40, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def write_frames(folder: Path, count: int, seed: int, pattern: str = "image_{:05d}.jpg", mode: str = "RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(1, count + 1):
        frame(seed * 1000 + k, mode=mode).save(folder / pattern.format(k))
    return folder


GTEA_CLASSES = ["close_jam", "open_jam", "pour_ketchup,hotdog,bread", "take_bread"]


def write_gtea(root: Path, missing=(("S3", "open_jam"),), short=(), corrupt=(), with_flow=True) -> Path:
    """frames/S?/<class>/<class>_1/image_%05d.jpg (6 frames, 7 for S2) + flow_x/flow_y with action_label.txt.

    `missing`: (subject, class) pairs without a folder; `short`: pairs with 3 frames; `corrupt`: pairs whose
    frame 2 is not an image.
    """
    for s_index, subject in enumerate(["S1", "S2", "S3", "S4"]):
        for c_index, name in enumerate(GTEA_CLASSES):
            if (subject, name) in missing:
                continue
            rel = Path(subject) / name / f"{name}_1"
            count = 3 if (subject, name) in short else 6 + (subject == "S2")
            seed = 10 * s_index + c_index
            folder = write_frames(root / "frames" / rel, count, seed)
            if (subject, name) in corrupt:
                (folder / "image_00002.jpg").write_bytes(b"broken")
            if with_flow:
                fx = write_frames(root / "flow_x" / rel, count - 1, seed + 500, "flow_x_{:05d}.jpg", "L")
                write_frames(root / "flow_y" / rel, count - 1, seed + 900, "flow_y_{:05d}.jpg", "L")
                (fx / "action_label.txt").write_text(f"{c_index + 10}\n")
    return root


def write_egtea(root: Path) -> Path:
    rows = {
        "train": [
            ("OP01-R01-PastaSalad-1", 3, 2, 5),
            ("OP01-R01-PastaSalad-2", 1, 1, 1),
            ("P02-R02-x-3", 106, 19, 53),
        ],
        "test": [("OP02-R03-Cheese-4", 2, 1, 4), ("OP02-R03-Cheese-5", 3, 2, 5)],
    }
    for split, entries in rows.items():
        lines = [f"{c} {a} {v} {n}" for c, a, v, n in entries]
        (root / f"{split}_split1.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{split}_split1.txt").write_text("\n".join(lines) + "\n")
        for i, (clip, *_) in enumerate(entries):
            write_frames(root / "frames" / clip, 5 + i, seed=100 + len(split) * 10 + i)
    (root / "verb_idx.txt").write_text("Take 1\nOpen 2\n")
    return root


EPIC_ROWS = [
    # uid, video, start, stop, verb_class, noun_class
    (0, "P01_01", 1, 6, 2, 10),
    (1, "P01_01", 8, 14, 0, 3),
    (2, "P01_02", 2, 8, 2, 10),
    (3, "P02_01", 3, 9, 1, 3),
]


def write_epic(root: Path) -> Path:
    header = [
        "uid",
        "video_id",
        "narration",
        "start_timestamp",
        "stop_timestamp",
        "start_frame",
        "stop_frame",
    ]
    header += ["participant_id", "verb", "verb_class", "noun", "noun_class", "all_nouns", "all_noun_classes"]
    root.mkdir(parents=True, exist_ok=True)
    with (root / "EPIC_train_action_labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for uid, video, start, stop, verb, noun in EPIC_ROWS:
            w.writerow([uid, video, "x", "", "", start, stop, video[:3], "v", verb, "n", noun, "", ""])
    (root / "EPIC_test_s1_timestamps.csv").write_text(
        "uid,participant_id,video_id,start_timestamp,stop_timestamp,start_frame,stop_frame\n"
        "9000,P01,P01_01,,,2,9\n"
    )
    (root / "EPIC_verb_classes.csv").write_text("verb_id,class_key,verbs\n0,take,[]\n1,put,[]\n2,open,[]\n")
    for i, (video, count) in enumerate((("P01_01", 16), ("P01_02", 10), ("P02_01", 10))):
        write_frames(root / "rgb" / video[:3] / video, count, seed=700 + i, pattern="frame_{:010d}.jpg")
    return root


EPIC100_ROWS = {
    # narration_id, video, start, stop, verb_class, noun_class
    "train": [
        ("P01_01_0", "P01_01", 1, 6, 2, 10),
        ("P01_01_1", "P01_01", 8, 14, 0, 3),
        ("P02_01_0", "P02_01", 3, 9, 1, 3),
    ],
    "validation": [("P01_101_0", "P01_101", 2, 8, 5, 7)],  # a pair seen only in validation
    "test": [("P01_101_1", "P01_101", 2, 9, None, None), ("P02_01_1", "P02_01", 1, 5, None, None)],
}


def write_epic100(root: Path) -> Path:
    """EPIC_100_{train,validation}.csv, EPIC_100_test_timestamps.csv, the class CSVs and
    <participant>/rgb_frames/<video>/frame_%010d.jpg, in the official column layout."""
    labelled = ["narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp"]
    labelled += ["stop_timestamp", "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun"]
    labelled += ["noun_class", "all_nouns", "all_noun_classes"]
    test = ["narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp"]
    test += ["stop_timestamp", "start_frame", "stop_frame"]
    root.mkdir(parents=True, exist_ok=True)
    for split, rows in EPIC100_ROWS.items():
        name = "EPIC_100_test_timestamps.csv" if split == "test" else f"EPIC_100_{split}.csv"
        with (root / name).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(test if split == "test" else labelled)
            for nid, video, start, stop, verb, noun in rows:
                times = ["00:00:01.000", "00:00:00.50", "00:00:02.00", start, stop]
                extra = [] if split == "test" else ["x y", "x", verb, "y", noun, "['y']", f"[{noun}]"]
                w.writerow([nid, video[:3], video, *times, *extra])
    (root / "EPIC_100_verb_classes.csv").write_text(
        "id,key,instances,category\n0,take,['take'],retrieve\n1,put,['put'],leave\n2,open,['open'],access\n"
    )
    for i, (video, count) in enumerate((("P01_01", 16), ("P01_101", 10), ("P02_01", 10))):
        write_frames(root / video[:3] / "rgb_frames" / video, count, 800 + i, pattern="frame_{:010d}.jpg")
    return root
