"""EPIC-KITCHENS-55 builder: action segments cut from the per-video frame folders (no reference code exists).

manual_dir layout (the official release):
    EPIC_train_action_labels.csv        uid, video_id, ..., start_frame, stop_frame, participant_id, verb,
                                         verb_class, noun, noun_class, ...
    EPIC_verb_classes.csv, EPIC_noun_classes.csv   optional (`<id>,<class_key>,...`): class names
    EPIC_test_s1_timestamps.csv, EPIC_test_s2_timestamps.csv   optional unlabelled challenge segments
    rgb/<participant>/<video>/frame_%010d.jpg                 frames of the whole video, numbered from 1
    flow/<participant>/<video>/{u,v}/frame_%010d.jpg          optional flow, at half the frame rate
A segment is frames start_frame..stop_frame (inclusive); its flow is flow frames start//2+1 .. stop//2.
Labels: `verb` = verb_class (125), `noun` = noun_class (352), `label` = the action: the index of the segment's
(verb_class, noun_class) pair in the sorted list of pairs seen in EPIC_train_action_labels.csv (name
'<verb>_<noun>').
Splits: 'validation' = the last video (sorted id) of every participant with at least two videos (a held-out
set of seen kitchens), 'train' = the rest; 'test_s1', 'test_s2' = the challenge segments with label -1.
A segment whose frames are missing raises an error naming the CSV row and the missing file.

    python -m lsta_jax.data epic_kitchens55 --manual-dir /data/EPIC_KITCHENS_2018 --data-dir DIR
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from lsta_jax.data import builder_base as B

NUM_VERBS, NUM_NOUNS = 125, 352


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing annotation file")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def require_columns(path: Path, rows: list[dict[str, str]], columns: Sequence[str]) -> list[dict[str, str]]:
    """`rows` when every row has every column (a short row lacks its last columns), else an error naming
    the file, the line and the missing columns."""
    for number, row in enumerate(rows, start=2):
        missing = [c for c in columns if row.get(c) in (None, "")]
        if missing:
            raise ValueError(f"{path}:{number}: missing columns {missing}")
    return rows


def read_class_names(path: Path, count: int, prefix: str) -> list[str]:
    names = [f"{prefix}_{i}" for i in range(count)]
    if path.is_file():
        for row in read_csv(path):
            key = next(k for k in row if k.endswith("_id") or k == "id")
            i = int(row[key])
            if i >= len(names):
                names += [f"{prefix}_{j}" for j in range(len(names), i + 1)]
            names[i] = row.get("class_key") or row.get("key") or names[i]
    return names


def segment_frames(video_dir: Path, start: int, stop: int, row_name: str, pattern: str) -> list[Path]:
    files = [video_dir / pattern.format(k) for k in range(start, stop + 1)]
    for f in (files[0], files[-1]):
        if not f.is_file():
            raise FileNotFoundError(f"{row_name}: frame {f} does not exist")
    return files


def segment_spec(
    row: dict[str, str], where: str, name: str, rgb_dir: Path, flow_dir: Path, action: int | None
) -> B.ClipSpec:
    """One segment of an EPIC annotation row (both releases): frames start_frame..stop_frame of `rgb_dir`,
    flow frames start//2+1..stop//2 of `flow_dir/{u,v}` when both exist; `action` None = unlabelled (-1)."""
    start, stop = int(row["start_frame"]), int(row["stop_frame"])
    frames = segment_frames(rgb_dir, start, stop, where, "frame_{:010d}.jpg")
    flow = {}
    if (flow_dir / "u").is_dir() and (flow_dir / "v").is_dir():
        lo, hi = start // 2 + 1, max(start // 2 + 1, stop // 2)
        for k in ("u", "v"):
            flow[k] = segment_frames(flow_dir / k, lo, hi, where, "frame_{:010d}.jpg")
    labelled = action is not None
    verb, noun = (int(row["verb_class"]), int(row["noun_class"])) if labelled else (-1, -1)
    return B.ClipSpec(
        name=name,
        frames=frames,
        label=action if labelled else -1,
        verb=verb,
        noun=noun,
        verb_label=verb,
        flow_x=flow.get("u", ()),
        flow_y=flow.get("v", ()),
    )


def action_pairs(rows: list[dict[str, str]]) -> dict[tuple[int, int], int]:
    """The action classes: the sorted (verb_class, noun_class) pairs of the labelled rows -> index."""
    pairs = sorted({(int(r["verb_class"]), int(r["noun_class"])) for r in rows})
    return {p: i for i, p in enumerate(pairs)}


def epic_clips(manual_dir: Path):
    train_csv = manual_dir / "EPIC_train_action_labels.csv"
    rows = require_columns(
        train_csv,
        read_csv(train_csv),
        ("uid", "video_id", "start_frame", "stop_frame", "verb_class", "noun_class"),
    )
    max_verb = max([NUM_VERBS - 1, *(int(r["verb_class"]) for r in rows)])
    max_noun = max([NUM_NOUNS - 1, *(int(r["noun_class"]) for r in rows)])
    verbs = read_class_names(manual_dir / "EPIC_verb_classes.csv", max_verb + 1, "verb")
    nouns = read_class_names(manual_dir / "EPIC_noun_classes.csv", max_noun + 1, "noun")
    action = action_pairs(rows)
    pairs = list(action)
    videos_by_participant: dict[str, set[str]] = {}
    for r in rows:
        videos_by_participant.setdefault(r["video_id"].split("_")[0], set()).add(r["video_id"])
    held_out = {sorted(v)[-1] for v in videos_by_participant.values() if len(v) >= 2}

    def spec(row: dict[str, str], where: str, labelled: bool) -> B.ClipSpec:
        video = row["video_id"]
        participant = row.get("participant_id") or video.split("_")[0]
        pair = (int(row["verb_class"]), int(row["noun_class"])) if labelled else None
        return segment_spec(
            row,
            where,
            row["uid"],
            manual_dir / "rgb" / participant / video,
            manual_dir / "flow" / participant / video,
            action[pair] if labelled else None,
        )

    splits: dict[str, list[B.ClipSpec]] = {"train": [], "validation": []}
    for number, row in enumerate(rows, start=2):
        split = "validation" if row["video_id"] in held_out else "train"
        splits[split].append(spec(row, f"{train_csv}:{number}", True))
    for name in ("s1", "s2"):
        test_csv = manual_dir / f"EPIC_test_{name}_timestamps.csv"
        if test_csv.is_file():
            splits[f"test_{name}"] = [
                spec(row, f"{test_csv}:{n}", False) for n, row in enumerate(read_csv(test_csv), start=2)
            ]
    names = {"label": [f"{verbs[v]}_{nouns[n]}" for v, n in pairs], "verb": verbs, "noun": nouns}
    return names, splits


class EpicKitchens55(B.FrameClipBuilder):
    """EPIC-KITCHENS-55 action segments: verb (125), noun (352) and action labels; see the module doc."""

    BUILDER_CONFIGS = [B.FrameClipConfig(name="default", description="RGB (and flow if present)")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put EPIC_train_action_labels.csv (and the class / test CSVs) and rgb/<participant>/<video>/"
        "frame_%010d.jpg under manual_dir (see lsta_jax/data/epic_kitchens.py)."
    )

    def _clips(self, manual_dir: Path):
        return epic_clips(manual_dir)
