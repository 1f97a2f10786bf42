"""Predict activity classes of videos and frame folders, with attention overlays.

Command line:
    python -m lsta_jax.predict --checkpoint MODEL_DIR_OR_WORKDIR clip1.mp4 frames_dir/ ... \\
        [--batch-size 8] [--top-k 5] [--output preds.jsonl] [--attention-dir overlays/]

Python:
    for p in lsta_jax.predict("model_dir", ["a.mp4", "frames/"], top_k=3, attention_dir="overlays"):
        print(p.source, p.label, p.score, p.top_k, p.overlay)
    # or, with a loaded model: lsta_jax.predict(model, variables, inputs, checkpoint="model_dir")

Both run the same code: inputs are streamed through `lsta_jax.inference.stream` (bounded memory, fixed-size
padded batches, one compiled `inference.forward`, sharded over all local devices). Preprocessing is
`lsta_jax.data.load_clip`, the evaluation transform (docs/differences.md §5: Scale(256), CenterCrop(224), 25
frames sampled uniformly, ImageNet normalisation). The geometry is the checkpoint's (its JSON's `"input":
{"num_frames", "size", "resize_shorter"}`, else those of the reference); a flag or argument the model was not
trained with is refused in one line unless `--force` (`force=True`). Class names are the checkpoint's.
A PyTorch file is refused with the command that converts it (`python -m lsta_jax.convert`).

Each input gives one JSON line: `{"source", "ok": true, "label", "score", "top_k": [{"label", "index",
"score"}, ...], "overlay": [png, gif]}` with softmax probabilities as scores (+ `"verb"`, `"noun"`: the
top-1 class indices of a multi-task model's heads), or `{"source", "ok": false, "error"}`. A failing input
(unreadable video, folder without frames, clip with fewer frames than the model samples) is reported and
skipped; the command exits with status 1 when any input failed, 2 on a usage or checkpoint error.

Checkpoints of the kinds that read optical flow (registered with a `flow` input: `egornn_flow`, `lsta_flow`,
`egornn_two_stream`, `lsta_two_stream`) run through `iter_predict_with_flow`, one input at a time: each
input's centre flow stack (and its clip for the two-stream kinds), flow from the authors' layout or
`--flow-root`.

Modules: `api` (Prediction, iter_predict, predict, the geometry rules), `flow` (flow inputs, late fusion),
`cli` (the command and the flags shared with `extract`).
"""

from lsta_jax.predict.api import (
    REFERENCE_GEOMETRY,
    GeometryError,
    Prediction,
    checkpoint_geometry,
    iter_predict,
    predict,
    ranked,
    resolve_geometry,
    top_classes,
)
from lsta_jax.predict.cli import (
    add_common_arguments,
    input_geometry,
    iter_input_paths,
    load_checkpoint,
    main,
    parse_command,
    report_failures,
    runnable_kinds,
)
from lsta_jax.predict.flow import flow_input_kinds, fuse_with_flow, iter_predict_with_flow

__all__ = [
    "REFERENCE_GEOMETRY",
    "GeometryError",
    "Prediction",
    "add_common_arguments",
    "checkpoint_geometry",
    "flow_input_kinds",
    "fuse_with_flow",
    "input_geometry",
    "iter_input_paths",
    "iter_predict",
    "iter_predict_with_flow",
    "load_checkpoint",
    "main",
    "parse_command",
    "predict",
    "ranked",
    "report_failures",
    "resolve_geometry",
    "runnable_kinds",
    "top_classes",
]
