"""GTEA 61 and GTEA 71 builders: the authors' frame layout, subject-wise splits (docs/differences.md §6).

manual_dir layout (the authors' GTEA61 archive, ego-rnn#4):
    frames/S{1,2,3,4}/<class_name>/<instance>/image_%05d.jpg      RGB frames numbered from 1
    flow_x/S?/<class_name>/<instance>/flow_x_%05d.jpg            optional x flow (grayscale)
    flow_y/S?/<class_name>/<instance>/flow_y_%05d.jpg            optional y flow
    flow_x/S?/<class_name>/<instance>/action_label.txt           optional verb id (first line, int, as is)
Config `splitK` (K = 1..4; `splitK_jpeg`: the same clips with JPEG frames, builder_base): test = subject S_K,
train = the other three, in the reference's order (subject,
sorted class, sorted instance). Labels index ONE sorted global class list (the union over all subjects), so a
class folder missing in one subject does not shift the labels (the authors' `gen_split` restarts its counter
per subject and silently would). Verb and noun names: the class name split at its first '_' (LSTA#1).

    python -m lsta_jax.data gtea61 --config split2 --manual-dir /data/gtea_61 --data-dir DIR
or  lsta_jax.data.build('gtea61', data_dir, manual_dir='/data/gtea_61', config='split2')
"""

from __future__ import annotations

from pathlib import Path

from lsta_jax.data import builder_base as B
from lsta_jax.data.clip_io import list_frames, natural_key

SUBJECTS = ("S1", "S2", "S3", "S4")


def split_class_name(name: str) -> tuple[str, str]:
    """'pour_ketchup,hotdog,bread' -> ('pour', 'ketchup,hotdog,bread') (split at the first '_')."""
    verb, _, noun = name.partition("_")
    return verb, noun


def _sorted_dirs(path: Path) -> list[Path]:
    return sorted((p for p in path.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))


def read_verb_label(instance: Path) -> int:
    """First line of `action_label.txt` as int (-1 when the file is absent); a bad file names itself."""
    file = instance / "action_label.txt"
    if not file.is_file():
        return -1
    text = file.read_text().strip().splitlines()
    try:
        return int(text[0].strip())
    except (IndexError, ValueError) as err:
        raise ValueError(f"{file}: expected an integer verb id on the first line") from err


def gtea_clips(manual_dir: Path, test_subject: str, expected_classes: int | None = None):
    """(names, {'train', 'test'} -> [ClipSpec]) for a GTEA tree; see the module docstring."""
    frames_root = B.require_dir(manual_dir / "frames", "frames")
    subjects = [s for s in SUBJECTS if (frames_root / s).is_dir()]
    missing = [s for s in SUBJECTS if s not in subjects]
    if missing:
        raise FileNotFoundError(f"{frames_root}: missing subject folders {missing} (expected {SUBJECTS})")
    per_subject = {s: [p.name for p in _sorted_dirs(frames_root / s)] for s in subjects}
    classes = sorted(set().union(*per_subject.values()))
    for s, present in per_subject.items():
        absent = sorted(set(classes) - set(present))
        if absent:
            B.log.warning("%s: no folder for classes %s (labels unaffected)", frames_root / s, absent)
    if expected_classes is not None and len(classes) != expected_classes:
        B.log.warning("%s: found %d classes, expected %d", frames_root, len(classes), expected_classes)
    index = {c: i for i, c in enumerate(classes)}
    verbs = sorted({split_class_name(c)[0] for c in classes})
    nouns = sorted({split_class_name(c)[1] for c in classes})
    splits: dict[str, list[B.ClipSpec]] = {"train": [], "test": []}
    for s in subjects:
        split = "test" if s == test_subject else "train"
        for class_dir in _sorted_dirs(frames_root / s):
            verb, noun = split_class_name(class_dir.name)
            for inst in _sorted_dirs(class_dir):
                rel = inst.relative_to(frames_root)
                flow_dirs = [manual_dir / k / rel for k in ("flow_x", "flow_y")]
                has_flow = all(d.is_dir() for d in flow_dirs)
                splits[split].append(
                    B.ClipSpec(
                        name=str(rel),
                        frames=list_frames(inst),
                        label=index[class_dir.name],
                        verb=verbs.index(verb),
                        noun=nouns.index(noun),
                        verb_label=read_verb_label(flow_dirs[0] if has_flow else inst),
                        flow_x=list_frames(flow_dirs[0], "flow_x") if has_flow else (),
                        flow_y=list_frames(flow_dirs[1], "flow_y") if has_flow else (),
                    )
                )
    return {"label": classes, "verb": verbs, "noun": nouns}, splits


def _configs() -> list[B.FrameClipConfig]:
    return B.frame_clip_configs(
        {f"split{k}": f"test = subject S{k}, train = the others" for k in range(1, 5)}
    )


class _Gtea(B.FrameClipBuilder, skip_registration=True):
    BUILDER_CONFIGS = _configs()
    EXPECTED_CLASSES: int | None = None
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put the frames (and optional flow) in the authors' layout under manual_dir: "
        "frames/S{1..4}/<class>/<instance>/image_%05d.jpg, flow_x/..., flow_y/...."
    )

    def _clips(self, manual_dir: Path):
        test_subject = "S" + self.builder_config.name.removeprefix("split").removesuffix("_jpeg")
        return gtea_clips(manual_dir, test_subject, self.EXPECTED_CLASSES)


class Gtea61(_Gtea):
    """GTEA 61 activities (Georgia Tech Egocentric Activities), 4 subject-wise splits; split2 = GTEA61*."""

    EXPECTED_CLASSES = 61


class Gtea71(_Gtea):
    """GTEA 71 activities (the extended GTEA Gaze set), 4 subject-wise splits."""

    EXPECTED_CLASSES = 71
