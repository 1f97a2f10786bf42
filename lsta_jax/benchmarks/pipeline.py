"""Clips per second of the training input pipeline (decode + sample + augment + normalise + batch).

Builds a `synthetic_ego` dataset at the requested frame size (cached in --data-dir) and times the grain train
loader over it. Defaults are the reference geometry: frames with shorter side 256 stored as PNG, 25 frames
sampled per clip, multi-scale corner crop + flip to 224.

    python -m lsta_jax.benchmarks.pipeline                          # 256 px frames -> 25 x 224 x 224 clips
    python -m lsta_jax.benchmarks.pipeline --workers 0 2 --batches 6
    python -m lsta_jax.benchmarks.pipeline --frame-size 72 --num-frames 8 --crop-size 64   # the demo geometry
"""

from __future__ import annotations

import sys
import tempfile
import time

from lsta_jax import cli


def measure(loader, batches: int, warmup: int = 1) -> tuple[float, int]:
    """(clips/s, clips) over `batches` batches after `warmup` batches (worker start-up excluded)."""
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    start, clips = time.perf_counter(), 0
    for _ in range(batches):
        clips += len(next(it)["label"])
    return clips / (time.perf_counter() - start), clips


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m lsta_jax.benchmarks.pipeline",
        description=__doc__,
    )
    parser.add_argument(
        "--data-dir", default=None, help="tfds data_dir for the synthetic set (default: temp)"
    )
    parser.add_argument(
        "--frame-size", type=cli.positive_int, default=256, help="stored frame size (shorter side)"
    )
    parser.add_argument("--clip-frames", type=cli.positive_int, default=40, help="frames per stored clip")
    parser.add_argument(
        "--num-clips", type=cli.positive_int, default=32, help="clips in the synthetic train split"
    )
    parser.add_argument("--num-frames", type=cli.positive_int, default=25, help="frames sampled per clip")
    parser.add_argument("--crop-size", type=cli.positive_int, default=224)
    parser.add_argument("--batch-size", type=cli.positive_int, default=8)
    parser.add_argument("--batches", type=cli.positive_int, default=4, help="timed batches per setting")
    parser.add_argument(
        "--workers", type=cli.non_negative_int, nargs="+", default=[0, 2], help="grain worker counts to time"
    )
    args = parser.parse_args(argv)

    from lsta_jax.data import build, make_train_loader

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="lsta_bench_")
    start = time.perf_counter()
    builder = build(
        "synthetic_ego",
        data_dir,
        num_train=args.num_clips,
        num_test=0,
        num_frames=args.clip_frames,
        frame_size=args.frame_size,
    )
    print(
        f"synthetic_ego: {args.num_clips} clips of {args.clip_frames} frames at {args.frame_size} px "
        f"ready in {time.perf_counter() - start:.1f} s ({data_dir})",
        flush=True,
    )
    source = builder.as_data_source("train")
    for workers in args.workers:
        loader = make_train_loader(
            source,
            global_batch_size=args.batch_size,
            seed=0,
            num_frames=args.num_frames,
            crop_size=args.crop_size,
            resize_shorter=args.frame_size,
            process_index=0,
            process_count=1,
            worker_count=workers,
        )
        rate, clips = measure(loader, args.batches)
        print(
            f"workers={workers}: {rate:.1f} clips/s ({rate * args.num_frames:.0f} frames/s) over {clips} "
            f"clips of {args.num_frames}x{args.crop_size}x{args.crop_size}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
