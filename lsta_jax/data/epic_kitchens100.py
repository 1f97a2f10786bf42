"""EPIC-KITCHENS-100 builder: action segments of the official annotations (epic-kitchens-100-annotations).

manual_dir layout (the official release: annotation CSVs next to the per-participant frame folders):
    EPIC_100_train.csv, EPIC_100_validation.csv   narration_id, participant_id, video_id, narration_timestamp,
                                                   start_timestamp, stop_timestamp, start_frame, stop_frame,
                                                   narration, verb, verb_class, noun, noun_class, all_nouns,
                                                   all_noun_classes (uid first in some versions)
    EPIC_100_test_timestamps.csv                  optional unlabelled challenge segments (narration_id, ...,
                                                   start_frame, stop_frame)
    EPIC_100_verb_classes.csv, EPIC_100_noun_classes.csv   optional `id,key,instances,category`: class names
    <participant>/rgb_frames/<video>/frame_%010d.jpg      frames of the whole video
    <participant>/flow_frames/<video>/{u,v}/frame_%010d.jpg  optional flow, half the frame rate (as EPIC-55)
A segment is frames start_frame..stop_frame (inclusive, as `epic_kitchens.segment_spec`); the record's `name`
is the narration_id (the key of the challenge submission). Labels: `verb` = verb_class (97), `noun` =
noun_class (300), `label` = the action: the index of the segment's (verb_class, noun_class) pair in the sorted
list of the pairs of the train AND validation files (so every labelled segment has an action class; pairs seen
only in validation are classes without training examples). Splits: 'train', 'validation' (the official ones)
and 'test' (label, verb and noun -1) when the test file is there. A segment whose first or last frame is
missing raises an error naming the CSV row and the file.

    python -m lsta_jax.data epic_kitchens100 --manual-dir /data/EPIC-KITCHENS-100 --data-dir DIR
"""

from __future__ import annotations

from pathlib import Path

from lsta_jax.data import builder_base as B
from lsta_jax.data.epic_kitchens import (
    action_pairs,
    read_class_names,
    read_csv,
    require_columns,
    segment_spec,
)

NUM_VERBS, NUM_NOUNS = 97, 300
SEGMENT_COLUMNS = ("narration_id", "video_id", "start_frame", "stop_frame")
LABEL_COLUMNS = ("verb_class", "noun_class")


def epic100_clips(manual_dir: Path):
    labelled = {}
    for split in ("train", "validation"):
        path = manual_dir / f"EPIC_100_{split}.csv"
        labelled[split] = (path, require_columns(path, read_csv(path), SEGMENT_COLUMNS + LABEL_COLUMNS))
    all_rows = [row for _, rows in labelled.values() for row in rows]
    max_verb = max([NUM_VERBS - 1, *(int(r["verb_class"]) for r in all_rows)])
    max_noun = max([NUM_NOUNS - 1, *(int(r["noun_class"]) for r in all_rows)])
    verbs = read_class_names(manual_dir / "EPIC_100_verb_classes.csv", max_verb + 1, "verb")
    nouns = read_class_names(manual_dir / "EPIC_100_noun_classes.csv", max_noun + 1, "noun")
    action = action_pairs(all_rows)

    def specs(path: Path, rows: list[dict[str, str]], with_labels: bool) -> list[B.ClipSpec]:
        out = []
        for number, row in enumerate(rows, start=2):
            video = row["video_id"]
            participant = row.get("participant_id") or video.split("_")[0]
            pair = (int(row["verb_class"]), int(row["noun_class"])) if with_labels else None
            out.append(
                segment_spec(
                    row,
                    f"{path}:{number}",
                    row["narration_id"],
                    manual_dir / participant / "rgb_frames" / video,
                    manual_dir / participant / "flow_frames" / video,
                    action[pair] if with_labels else None,
                )
            )
        return out

    splits = {split: specs(path, rows, True) for split, (path, rows) in labelled.items()}
    test_csv = manual_dir / "EPIC_100_test_timestamps.csv"
    if test_csv.is_file():
        splits["test"] = specs(
            test_csv, require_columns(test_csv, read_csv(test_csv), SEGMENT_COLUMNS), False
        )
    names = {"label": [f"{verbs[v]}_{nouns[n]}" for v, n in action], "verb": verbs, "noun": nouns}
    return names, splits


class EpicKitchens100(B.FrameClipBuilder):
    """EPIC-KITCHENS-100 action segments: verb (97), noun (300) and action labels; see the module doc."""

    BUILDER_CONFIGS = [B.FrameClipConfig(name="default", description="RGB (and flow if present)")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put EPIC_100_train.csv, EPIC_100_validation.csv (and the class / test CSVs) and "
        "<participant>/rgb_frames/<video>/frame_%010d.jpg under manual_dir (see "
        "lsta_jax/data/epic_kitchens100.py)."
    )

    def _clips(self, manual_dir: Path):
        return epic100_clips(manual_dir)
