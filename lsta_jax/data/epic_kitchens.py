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

    python -m lsta_jax.data epic_kitchens55 --manual_dir /data/EPIC_KITCHENS_2018 --data_dir DIR
"""

from __future__ import annotations

import csv
from pathlib import Path

from lsta_jax.data import builder_base as B

NUM_VERBS, NUM_NOUNS = 125, 352


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing annotation file")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def read_class_names(path: Path, count: int, prefix: str) -> list[str]:
    names = [f"{prefix}_{i}" for i in range(count)]
    if path.is_file():
        for row in read_csv(path):
            key = next(k for k in row if k.endswith("_id") or k == "id")
            i = int(row[key])
            if i >= len(names):
                names += [f"{prefix}_{j}" for j in range(len(names), i + 1)]
            names[i] = row.get("class_key") or names[i]
    return names


def segment_frames(video_dir: Path, start: int, stop: int, row_name: str, pattern: str) -> list[Path]:
    files = [video_dir / pattern.format(k) for k in range(start, stop + 1)]
    for f in (files[0], files[-1]):
        if not f.is_file():
            raise FileNotFoundError(f"{row_name}: frame {f} does not exist")
    return files


def epic_clips(manual_dir: Path):
    train_csv = manual_dir / "EPIC_train_action_labels.csv"
    rows = read_csv(train_csv)
    for number, row in enumerate(rows, start=2):
        missing = {"uid", "video_id", "start_frame", "stop_frame", "verb_class", "noun_class"} - set(row)
        if missing:
            raise ValueError(f"{train_csv}:{number}: missing columns {sorted(missing)}")
    max_verb = max([NUM_VERBS - 1, *(int(r["verb_class"]) for r in rows)])
    max_noun = max([NUM_NOUNS - 1, *(int(r["noun_class"]) for r in rows)])
    verbs = read_class_names(manual_dir / "EPIC_verb_classes.csv", max_verb + 1, "verb")
    nouns = read_class_names(manual_dir / "EPIC_noun_classes.csv", max_noun + 1, "noun")
    pairs = sorted({(int(r["verb_class"]), int(r["noun_class"])) for r in rows})
    action = {p: i for i, p in enumerate(pairs)}
    videos_by_participant: dict[str, set[str]] = {}
    for r in rows:
        videos_by_participant.setdefault(r["video_id"].split("_")[0], set()).add(r["video_id"])
    held_out = {sorted(v)[-1] for v in videos_by_participant.values() if len(v) >= 2}

    def spec(row: dict[str, str], where: str, labelled: bool) -> B.ClipSpec:
        video = row["video_id"]
        participant = row.get("participant_id") or video.split("_")[0]
        start, stop = int(row["start_frame"]), int(row["stop_frame"])
        frames = segment_frames(
            manual_dir / "rgb" / participant / video, start, stop, where, "frame_{:010d}.jpg"
        )
        flow_root = manual_dir / "flow" / participant / video
        flow = {}
        if (flow_root / "u").is_dir() and (flow_root / "v").is_dir():
            lo, hi = start // 2 + 1, max(start // 2 + 1, stop // 2)
            for k in ("u", "v"):
                flow[k] = segment_frames(flow_root / k, lo, hi, where, "frame_{:010d}.jpg")
        verb, noun = (int(row["verb_class"]), int(row["noun_class"])) if labelled else (-1, -1)
        return B.ClipSpec(
            name=row["uid"],
            frames=frames,
            label=action[(verb, noun)] if labelled else -1,
            verb=verb,
            noun=noun,
            verb_label=verb,
            flow_x=flow.get("u", ()),
            flow_y=flow.get("v", ()),
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
