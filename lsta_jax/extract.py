"""Extract LSTA features of videos / frame folders for users who train their own heads.

    python -m lsta_jax.extract --checkpoint MODEL_DIR_OR_WORKDIR clip1.mp4 frames_dir/ ... \\
        --output-dir feats/ [--frame-features] [--batch-size 8]

writes to `feats/`:
  `features.npy`        (N, K) float32: the clip feature, spatial mean of the LSTA memory c_T (the input of
                        the classifier, docs/differences.md §2.1 `feats`), one row per input that succeeded;
  `frame_features.npy`  (N, T, K) float32 with `--frame-features`: each sampled frame's pooled backbone
                        feature (spatial mean of the BN'd `layer4`, the input of the backbone's ImageNet fc);
  `index.jsonl`         one line per input, in input order: `{"source", "row"}` (row of the .npy files) or
                        `{"source", "row": null, "error"}` for an input that failed;
  `meta.json`           checkpoint, kind, geometry, shapes.
The forward is `lsta_jax.inference` (the same jitted, batched, sharded function as `predict`); inputs stream,
rows are appended to the .npy files as batches finish, so memory does not grow with the number of inputs.
Models that read optical flow (`predict.flow_input_kinds()`: `egornn_flow`, `lsta_flow`, `egornn_two_stream`,
`lsta_two_stream`) go through `predict.iter_predict_with_flow` instead (one input at a time, flow from the
authors' layout or `--flow-root`): `features.npy` is the model's `features` output; they have no
`frame_features`.
Exit status 1 when any input failed (summary on stderr), 2 on a usage or checkpoint error.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import IO

import numpy as np

from lsta_jax import cli, inference
from lsta_jax.models import registry
from lsta_jax.predict import (
    add_common_arguments,
    input_geometry,
    iter_input_paths,
    iter_predict_with_flow,
    parse_command,
    report_failures,
    runnable_kinds,
)


class NpyAppender:
    """Write an .npy file row by row without knowing the row count in advance (bounded memory).

    Rows go to `<path>.rows` as raw bytes; `close()` writes the header for the final count and streams the
    rows after it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw_path = path.with_name(path.name + ".rows")
        self.raw: IO[bytes] = open(self.raw_path, "wb")  # noqa: SIM115
        self.row_shape: tuple[int, ...] | None = None
        self.rows = 0

    def append(self, row: np.ndarray) -> None:
        row = np.ascontiguousarray(row, np.float32)
        if self.row_shape is None:
            self.row_shape = row.shape
        elif row.shape != self.row_shape:
            raise ValueError(f"{self.path}: row of shape {row.shape}, earlier rows have {self.row_shape}")
        self.raw.write(row.tobytes())
        self.rows += 1

    def close(self) -> None:
        self.raw.close()
        header = {
            "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
            "fortran_order": False,
            "shape": (self.rows, *(self.row_shape or (0,))),
        }
        with open(self.path, "wb") as out, open(self.raw_path, "rb") as raw:
            np.lib.format.write_array_header_1_0(out, header)
            shutil.copyfileobj(raw, out, length=1 << 22)
        self.raw_path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m lsta_jax.extract",
        description="Write LSTA clip features (and optionally per-frame backbone features) of videos / frame "
        "folders as .npy files with an index, using an lsta_jax checkpoint.",
        formatter_class=cli.HelpFormatter,
    )
    add_common_arguments(parser)
    positive = ("batch_size", "num_frames", "size", "resize_shorter", "min_frames")
    cli.retype(
        parser,
        which=cli.checkpoint_choice,
        workers=cli.non_negative_int,
        **dict.fromkeys(positive, cli.positive_int),
    )
    parser.add_argument("--output-dir", required=True, help="directory for features.npy, index.jsonl, ...")
    parser.add_argument(
        "--frame-features", action="store_true", help="also write frame_features.npy (N, T, K)"
    )
    args, loaded = parse_command(parser, argv, runnable_kinds())
    if loaded is None:
        return 2
    model, variables, meta = loaded
    reads_flow = registry.model_kind(meta["kind"]).reads_flow
    if reads_flow and args.frame_features:
        print(f"error: kind {meta['kind']} has no per-frame features; drop --frame-features", file=sys.stderr)
        return 2
    num_frames, size, resize_shorter = input_geometry(meta, args)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    inputs = args.inputs if not args.input_list else iter_input_paths(args.inputs, args.input_list)
    if reads_flow:  # one input at a time, as predict: clip and/or the centre flow stack
        outcomes = (
            inference.Outcome(p.index, p.source, outputs={"features": p.features}, error=p.error)
            for p in iter_predict_with_flow(
                model,
                variables,
                inputs,
                kind=meta["kind"],
                num_frames=num_frames,
                size=size,
                resize_shorter=resize_shorter,
                min_frames=args.min_frames,
                flow_root=args.flow_root,
            )
        )
    else:
        engine = inference.BatchedForward(
            model, variables, args.batch_size, return_frame_features=args.frame_features
        )
        outcomes = inference.stream(
            engine,
            inputs,
            inference.default_loader(num_frames, size, resize_shorter, args.min_frames),
            expected_shape=(num_frames, size, size, 3),
            workers=args.workers,
        )
    if not args.no_progress:
        from tqdm import tqdm

        total = len(inputs) if isinstance(inputs, list) else None
        outcomes = tqdm(outcomes, total=total, unit="clip", desc="extract", dynamic_ncols=True)

    features = NpyAppender(output_dir / "features.npy")
    frame_features = NpyAppender(output_dir / "frame_features.npy") if args.frame_features else None
    failures: list[tuple[str, str]] = []
    total = 0
    with open(output_dir / "index.jsonl", "w") as index:
        for outcome in outcomes:
            total += 1
            if not outcome.ok:
                failures.append((outcome.source, outcome.error))
                index.write(
                    json.dumps({"source": outcome.source, "row": None, "error": outcome.error}) + "\n"
                )
                continue
            index.write(json.dumps({"source": outcome.source, "row": features.rows}) + "\n")
            features.append(outcome.outputs["features"])
            if frame_features is not None:
                frame_features.append(outcome.outputs["frame_features"])
    features.close()
    if frame_features is not None:
        frame_features.close()
    shapes = {"features": [features.rows, *(features.row_shape or ())]}
    if frame_features is not None:
        shapes["frame_features"] = [frame_features.rows, *(frame_features.row_shape or ())]
    (output_dir / "meta.json").write_text(
        json.dumps(
            {
                "checkpoint": str(args.checkpoint),
                "kind": meta["kind"],
                "num_frames": num_frames,
                "size": size,
                "resize_shorter": resize_shorter,
                "shapes": shapes,
                "inputs": total,
                "failed": len(failures),
            },
            indent=2,
        )
        + "\n"
    )
    report_failures(failures, total, "extract")
    print(f"wrote {features.rows} rows to {output_dir}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
