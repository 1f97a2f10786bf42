"""EPIC-KITCHENS action-recognition challenge submissions (JSON) from a checkpoint with verb/noun heads.

    python -m lsta_jax.submission --checkpoint runs/epic_stage2 --config configs/epic.py:stage=2 \\
        --split test_s1 --output seen.json          # EPIC-55: seen kitchens (S1); test_s2 -> unseen.json
    python -m lsta_jax.submission --checkpoint runs/epic100_stage2 --config configs/epic100.py:stage=2 \\
        --split test --output test.json [--sls-pt 1 --sls-tl 3 --sls-td 3]     # EPIC-100

The segments are those of the built tfds split (`config.data`: `epic_kitchens55` splits `test_s1`/`test_s2`
from EPIC_test_s{1,2}_timestamps.csv, `epic_kitchens100` split `test`), preprocessed as the evaluation
(centre crop, `config.data` geometry), one pass in the builder's order. Output (the challenge's format):
  {"version": "0.1" (EPIC-55) | "0.2" (EPIC-100), "challenge": "action_recognition",
   ["sls_pt", "sls_tl", "sls_td": the supervision levels, EPIC-100 only],
   "results": {"<segment id>": {"verb": {"0": score, ..., "<V-1>": score}, "noun": {"0": ..., "<N-1>": ...}}}}
keyed by the EPIC-55 uid or the EPIC-100 narration_id, with a score for EVERY verb and noun class: the heads'
raw logits (the challenge ranks the scores and applies its own softmax). No "action" entry: it is optional and
the server then scores actions from the verb and noun scores. EPIC-55 submits a zip of `seen.json` (S1) and
`unseen.json` (S2). SLS defaults 1/3/3 = ImageNet pre-training (PT 1), start/end + verb/noun labels (TL 3),
the training split only (TD 3); declare what your run used. The written file is checked against the schema and
the split's segment list before the command reports success; exit status 2 on a usage, config or checkpoint
error. It runs in one process on its default device (test splits are a few thousand segments).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ChallengeFormat:
    version: str
    with_sls: bool  # EPIC-100 submissions declare their supervision levels (SLS)


FORMATS = {
    "epic_kitchens55": ChallengeFormat(version="0.1", with_sls=False),
    "epic_kitchens100": ChallengeFormat(version="0.2", with_sls=True),
}
CHALLENGE = "action_recognition"


def submission_dict(
    segment_ids: Sequence[str],
    verb_scores: np.ndarray,
    noun_scores: np.ndarray,
    fmt: ChallengeFormat,
    sls: tuple[int, int, int] = (1, 3, 3),
) -> dict[str, Any]:
    """The challenge JSON object of (N,) segment ids with (N, V) verb and (N, N_n) noun scores."""
    if len(segment_ids) != len(verb_scores) or len(segment_ids) != len(noun_scores):
        raise ValueError(
            f"{len(segment_ids)} segment ids for {len(verb_scores)} verb and {len(noun_scores)} noun "
            "score rows"
        )
    if len(set(segment_ids)) != len(segment_ids):
        raise ValueError("segment ids are not unique")
    out: dict[str, Any] = {"version": fmt.version, "challenge": CHALLENGE}
    if fmt.with_sls:
        if not all(0 <= level <= 5 for level in sls):
            raise ValueError(f"supervision levels (SLS) must be in 0..5, got {sls}")
        out.update(sls_pt=int(sls[0]), sls_tl=int(sls[1]), sls_td=int(sls[2]))

    def scores(row: np.ndarray) -> dict[str, float]:
        return {str(i): round(float(v), 6) for i, v in enumerate(row)}

    out["results"] = {
        str(sid): {"verb": scores(v), "noun": scores(n)}
        for sid, v, n in zip(segment_ids, verb_scores, noun_scores, strict=True)
    }
    return out


def check_submission(
    submission: dict[str, Any],
    segment_ids: Sequence[str],
    num_verbs: int,
    num_nouns: int,
    fmt: ChallengeFormat,
) -> None:
    """Raise ValueError unless `submission` has the format's fields and exactly the given segments, each
    with a finite score for every verb and noun class."""
    if submission.get("version") != fmt.version or submission.get("challenge") != CHALLENGE:
        raise ValueError(
            f"version/challenge are {submission.get('version')!r}/{submission.get('challenge')!r}, "
            f"expected {fmt.version!r}/{CHALLENGE!r}"
        )
    if fmt.with_sls and not all(isinstance(submission.get(k), int) for k in ("sls_pt", "sls_tl", "sls_td")):
        raise ValueError("sls_pt, sls_tl and sls_td must be integers")
    results = submission.get("results", {})
    missing, extra = set(segment_ids) - set(results), set(results) - set(segment_ids)
    if missing or extra:
        raise ValueError(f"segments missing: {sorted(missing)[:10]}, unexpected: {sorted(extra)[:10]}")
    want = {"verb": [str(i) for i in range(num_verbs)], "noun": [str(i) for i in range(num_nouns)]}
    for sid, entry in results.items():
        for task, keys in want.items():
            got = entry.get(task, {})
            if sorted(got) != sorted(keys) or not all(np.isfinite(float(v)) for v in got.values()):
                raise ValueError(
                    f"segment {sid}: {task} scores must be finite numbers for classes 0..{len(keys) - 1}"
                )


def segment_scores(
    model: Any, variables: Any, source: Any, config: Any, progress: bool = True
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ids, verb logits (N, V), noun logits (N, N_n)) of every record of `source`, in its order."""
    import jax

    from lsta_jax import data as data_lib

    d = config.data
    loader = data_lib.make_eval_loader(
        source,
        global_batch_size=config.eval_batch_size,
        num_frames=d.num_frames,
        crop_size=d.crop_size,
        resize_shorter=d.resize_shorter,
        process_index=0,
        process_count=1,
        worker_count=d.worker_count,
        with_index=True,
    )
    variables = {k: v for k, v in dict(variables).items() if k in ("params", "batch_stats")}
    forward = jax.jit(lambda v, clip: {k: model.apply(v, clip)[k] for k in ("verb_logits", "noun_logits")})
    rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    batches = iter(loader)
    if progress:
        from tqdm import tqdm

        total = data_lib.num_eval_batches(len(source), config.eval_batch_size, d.worker_count)
        batches = tqdm(batches, total=total, unit="batch", desc="submission", dynamic_ncols=True)
    for batch in batches:
        out = jax.device_get(forward(variables, batch["clip"]))
        for j in np.flatnonzero(batch["mask"]):
            rows[int(batch["index"][j])] = (out["verb_logits"][j], out["noun_logits"][j])
    if sorted(rows) != list(range(len(source))):
        raise RuntimeError(f"the loader returned {len(rows)} of {len(source)} segments")
    ids = []
    for i in range(len(source)):
        name = source[i]["name"]
        ids.append(name.decode() if isinstance(name, bytes) else str(name))
    verbs = np.stack([rows[i][0] for i in range(len(source))])
    nouns = np.stack([rows[i][1] for i in range(len(source))])
    return ids, verbs, nouns


def write_submission(
    checkpoint: str | Path,
    config: Any,
    split: str,
    output: str | Path,
    which: str = "latest",
    sls: tuple[int, int, int] = (1, 3, 3),
    progress: bool = True,
) -> dict[str, Any]:
    """Score `split` of `config`'s dataset with `checkpoint`, write and check the JSON; returns a summary."""
    from lsta_jax.checkpoint import load_model
    from lsta_jax.train.tfds_input import dataset_builder

    name = config.data.name
    if name not in FORMATS:
        raise ValueError(f"config.data.name is {name!r}; submissions exist for {', '.join(FORMATS)}")
    fmt = FORMATS[name]
    model, variables = load_model(checkpoint, which=which)
    if not getattr(model, "verb_classes", 0):
        raise ValueError(f"{checkpoint}: the model has no verb/noun heads (model config verb_classes = 0)")
    builder = dataset_builder(config)
    if split not in builder.info.splits:
        raise ValueError(f"{name} has no split {split!r}; it has {sorted(builder.info.splits)}")
    num_verbs, num_nouns = len(builder.info.features["verb"].names), len(builder.info.features["noun"].names)
    if (model.verb_classes, model.noun_classes) != (num_verbs, num_nouns):
        raise ValueError(
            f"{checkpoint}: heads of {model.verb_classes} verbs / {model.noun_classes} nouns, but {name} has "
            f"{num_verbs} / {num_nouns}"
        )
    source = builder.as_data_source(split=split)
    ids, verbs, nouns = segment_scores(model, variables, source, config, progress)
    submission = submission_dict(ids, verbs, nouns, fmt, sls)
    check_submission(submission, ids, num_verbs, num_nouns, fmt)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(submission))
    return {"output": str(output), "segments": len(ids), "version": fmt.version, "split": split}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lsta_jax.submission",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, help="training workdir or model directory")
    parser.add_argument("--config", required=True, help="configs/X.py[:arg] (dataset and preprocessing)")
    parser.add_argument("--split", required=True, help="test_s1 / test_s2 (EPIC-55), test (EPIC-100)")
    parser.add_argument("--output", required=True, help="the JSON file to write")
    parser.add_argument("--which", default="latest", help="'latest', 'best' or a step (training workdirs)")
    for level, default, what in (("pt", 1, "pre-training"), ("tl", 3, "training labels"), ("td", 3, "data")):
        parser.add_argument(f"--sls-{level}", type=int, default=default, help=f"EPIC-100 SLS {what} level")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args, rest = parser.parse_known_args(argv)
    unknown = [r for r in rest if not r.startswith("--config.")]
    if unknown:
        parser.error(f"unrecognised arguments {unknown}")
    from lsta_jax.train.config import apply_overrides, load_config

    try:
        config = apply_overrides(load_config(args.config), rest)
        summary = write_submission(
            args.checkpoint,
            config,
            args.split,
            args.output,
            args.which,
            (args.sls_pt, args.sls_tl, args.sls_td),
            progress=not args.no_progress,
        )
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"wrote {summary['output']}: {summary['segments']} segments of {summary['split']} "
        f"(format {summary['version']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
