"""EGTEA Gaze+ builder: the official split files and per-clip frame folders (docs/differences.md §6).

manual_dir layout:
    train_split{1,2,3}.txt, test_split{1,2,3}.txt   lines `<clip_name> <action> <verb> <noun>`, 1-based ids
    action_idx.txt, verb_idx.txt, noun_idx.txt      optional official name lists (`<name> <1-based id>`)
    frames/<clip_name>/image_%05d.jpg              RGB frames numbered from 1
    flow_x/<clip_name>/*.jpg, flow_y/<clip_name>/*.jpg   optional flow
Config `splitK` (K = 1..3; `splitK_jpeg` stores the frames as JPEG, builder_base): splits 'train' and 'test'
from the two files. label = action - 1 (106 classes), verb = verb - 1, noun = noun - 1; `verb_label` =
verb - 1 (the flow verb pretraining label). Without the name lists, names are `action_<id>` etc. A split line
naming a clip without a frames folder raises an error naming the split file, line and the missing folder; a
malformed line raises naming the file and line.

    python -m lsta_jax.data egtea_gaze_plus --config split1 --manual-dir /data/egtea_gaze+ --data-dir DIR
"""

from __future__ import annotations

from pathlib import Path

from lsta_jax.data import builder_base as B
from lsta_jax.data.clip_io import list_frames

NUM_ACTIONS, NUM_VERBS, NUM_NOUNS = 106, 19, 53


def read_split_file(path: Path) -> list[tuple[str, int, int, int]]:
    """[(clip, action, verb, noun)] with the file's 1-based ids; errors name the file and line."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing split file")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 4:
                raise ValueError
            rows.append((parts[0], int(parts[1]), int(parts[2]), int(parts[3])))
        except ValueError:
            raise ValueError(
                f"{path}:{number}: expected '<clip> <action> <verb> <noun>', got {line.strip()!r}"
            ) from None
    return rows


def read_names(path: Path, count: int, prefix: str) -> list[str]:
    """Names from an official `<name> <1-based id>` list, else `<prefix>_<id>` for ids 1..count."""
    names = [f"{prefix}_{i}" for i in range(1, count + 1)]
    if path.is_file():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            *words, ident = line.split()
            try:
                i = int(ident)
            except ValueError:
                raise ValueError(f"{path}:{number}: expected '<name> <id>', got {line.strip()!r}") from None
            if not 1 <= i <= count:
                raise ValueError(f"{path}:{number}: id {i} outside 1..{count}")
            names[i - 1] = " ".join(words)
    return names


def egtea_clips(manual_dir: Path, split: int):
    frames_root = B.require_dir(manual_dir / "frames", "frames")
    rows = {name: read_split_file(manual_dir / f"{name}_split{split}.txt") for name in ("train", "test")}
    all_rows = rows["train"] + rows["test"]
    counts = [
        max([NUM_ACTIONS, *(r[1] for r in all_rows)]),
        max([NUM_VERBS, *(r[2] for r in all_rows)]),
        max([NUM_NOUNS, *(r[3] for r in all_rows)]),
    ]
    names = {
        key: read_names(manual_dir / f"{key if key != 'label' else 'action'}_idx.txt", n, prefix)
        for key, n, prefix in zip(("label", "verb", "noun"), counts, ("action", "verb", "noun"), strict=True)
    }
    splits = {}
    for name, split_rows in rows.items():
        file = manual_dir / f"{name}_split{split}.txt"
        clips = []
        for number, (clip, action, verb, noun) in enumerate(split_rows, start=1):
            folder = frames_root / clip
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"{file}: entry {number} names clip {clip}, but {folder} does not exist"
                )
            if min(action, verb, noun) < 1:
                raise ValueError(f"{file}: entry {number} ({clip}) has an id < 1 (ids are 1-based)")
            fx, fy = manual_dir / "flow_x" / clip, manual_dir / "flow_y" / clip
            has_flow = fx.is_dir() and fy.is_dir()
            clips.append(
                B.ClipSpec(
                    name=clip,
                    frames=list_frames(folder),
                    label=action - 1,
                    verb=verb - 1,
                    noun=noun - 1,
                    verb_label=verb - 1,
                    flow_x=list_frames(fx) if has_flow else (),
                    flow_y=list_frames(fy) if has_flow else (),
                )
            )
        splits[name] = clips
    return names, splits


class EgteaGazePlus(B.FrameClipBuilder):
    """EGTEA Gaze+ (106 actions, 19 verbs, 53 nouns), the 3 official splits."""

    BUILDER_CONFIGS = B.frame_clip_configs({f"split{k}": f"official train/test split {k}" for k in (1, 2, 3)})
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put train_split{1,2,3}.txt, test_split{1,2,3}.txt and frames/<clip>/image_%05d.jpg (optional "
        "flow_x/<clip>, flow_y/<clip>) under manual_dir (see lsta_jax/data/egtea.py)."
    )

    def _clips(self, manual_dir: Path):
        return egtea_clips(
            manual_dir, int(self.builder_config.name.removeprefix("split").removesuffix("_jpeg"))
        )
