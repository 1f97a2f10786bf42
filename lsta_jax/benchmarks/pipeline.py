"""Clips per second of the training input: the authors' transform chain against this project's pipeline.

Draws JPEG frames in the GTEA61 layout (`frames/S?/<class>/<instance>/image_%05d.jpg`, 400x225 like GTEA's
frames: colour fields, moving shapes, noise), builds the `gtea61` tfds dataset from them (frames stored as
PNG, the default config, and as JPEG, the `_jpeg` config) and times, interleaved in each repeat, on the
paper's geometry (25 frames, multi-scale corner crop + flip to 224):
  authors   the authors' training chain on the raw files, in plain PIL/numpy (`authors_clip`): Scale(256) ->
            RandomHorizontalFlip -> MultiScaleCornerCrop -> ToTensor -> Normalize, one process;
  project   the project's training loader end to end (decode, sample, augment, batch, `jax.device_put`), for
            each frame encoding x host/device normalisation at 0 workers, and the chosen setting with more
            grain workers.
clips/s per core divides by the worker processes (the main process only gathers batches when workers run);
the ratio is project per core / authors per core, the authors' chain timed right before and right after each
project setting (on a shared machine the load drifts), medians over repeats.

    python -m lsta_jax.benchmarks.pipeline                        # table + pipeline_benchmark.json
    python -m lsta_jax.benchmarks.pipeline --repeats 5 --workers 0 1 2 --json /tmp/pipeline.json
"""

from __future__ import annotations

import datetime
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lsta_jax import cli

GTEA_SIZE = (400, 225)  # width, height of GTEA's frames
CLASSES = ("close_jam", "open_jam", "pour_ketchup,hotdog,bread", "take_bread", "scoop_peanut,spoon")
SUBJECTS = ("S1", "S2", "S3", "S4")
MEAN = np.float32([0.485, 0.456, 0.406])
STD = np.float32([0.229, 0.224, 0.225])
SCALES = (1.0, 0.875, 0.75, 0.65625)
POSITIONS = ("c", "tl", "tr", "bl", "br")


def draw_frame(rng: np.random.Generator, t: int, size: tuple[int, int] = GTEA_SIZE) -> Image.Image:
    """One frame: a colour field with a gradient, three shapes that move with `t`, sensor-like noise."""
    w, h = size
    base = rng.integers(40, 200, 3)
    yy, xx = np.mgrid[0:h, 0:w]
    field = (
        base[None, None, :] + 40 * np.sin((xx[..., None] + 3 * t) / 37.0 + np.arange(3)) + yy[..., None] / 4
    )
    image = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for k in range(3):
        cx, cy = (60 + 110 * k + 4 * t) % w, (50 + 60 * k + 2 * t) % h
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if k % 2 else draw.rectangle
        shape((cx - 30, cy - 20, cx + 30, cy + 20), fill=colour)
    noisy = np.asarray(image, np.int16) + rng.normal(0, 6, (h, w, 3)).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def write_gtea_frames(root: Path, num_clips: int, frames_per_clip: int, seed: int = 0) -> Path:
    """`num_clips` clips over the 4 subjects (S1, the split1 test subject, gets one) as JPEG quality 90."""
    rng = np.random.default_rng(seed)
    subjects = ["S1"] + [SUBJECTS[1 + k % 3] for k in range(num_clips - 1)]
    for k, subject in enumerate(subjects):
        name = CLASSES[k % len(CLASSES)]
        folder = root / "frames" / subject / name / f"{name}_{k + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        for t in range(1, frames_per_clip + 1):
            draw_frame(rng, t).save(folder / f"image_{t:05d}.jpg", quality=90)
    for subject in SUBJECTS:  # the builder wants every subject folder
        (root / "frames" / subject).mkdir(parents=True, exist_ok=True)
    return root


def authors_clip(files: list[Path], rng: np.random.Generator, num_frames: int, crop: int) -> np.ndarray:
    """The authors' training transform of one clip (docs/differences.md §5), written out: frames
    floor(linspace(1, N, T)); per frame Scale(256) -> flip (one draw per clip) -> MultiScaleCornerCrop
    (their 'tr'/'bl' boxes) -> resize to `crop` -> ToTensor (C, H, W) / 255 -> Normalize.
    Returns float32 (T, 3, crop, crop)."""
    flip = rng.random() < 0.5
    scale = SCALES[int(rng.integers(len(SCALES)))]
    position = POSITIONS[int(rng.integers(len(POSITIONS)))]
    numbers = np.floor(np.linspace(1, len(files), num_frames)).astype(int)
    out = []
    for n in numbers:
        image = Image.open(files[n - 1]).convert("RGB")
        w, h = image.size
        size = (256, int(256 * h / w)) if w < h else (int(256 * w / h), 256)
        image = image.resize(size, Image.BILINEAR)
        if flip:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        w, h = image.size
        s = int(min(w, h) * scale)
        box = {
            "c": (w // 2 - s // 2, h // 2 - s // 2, w // 2 + s // 2, h // 2 + s // 2),
            "tl": (0, 0, s, s),
            "tr": (w - s, 1, w, s),
            "bl": (1, h - s, s, h),
            "br": (w - s, h - s, w, h),
        }[position]
        image = image.crop(box).resize((crop, crop), Image.BILINEAR)
        tensor = np.asarray(image, np.float32).transpose(2, 0, 1) / np.float32(255)
        out.append((tensor - MEAN[:, None, None]) / STD[:, None, None])
    return np.stack(out)


def time_authors(
    clips: list[list[Path]], count: int, batch: int, num_frames: int, crop: int, seed: int
) -> float:
    """clips/s of the authors' chain over `count` clips (cycling the list), batched like their DataLoader."""
    rng = np.random.default_rng(seed)
    start, done = time.perf_counter(), 0
    while done < count:
        np.stack([authors_clip(clips[(done + i) % len(clips)], rng, num_frames, crop) for i in range(batch)])
        done += batch
    return done / (time.perf_counter() - start)


def time_project(loader, batches: int) -> tuple[float, int]:
    """(clips/s, bytes of the model input per clip) over `batches` batches after one warm-up batch, each batch
    put on the first device (`jax.device_put`, waited for)."""
    import jax

    device = jax.devices()[0]
    it = iter(loader)
    jax.device_put(next(it)["clip"], device).block_until_ready()
    start, clips, nbytes = time.perf_counter(), 0, 0
    for _ in range(batches):
        batch = next(it)
        jax.device_put(batch["clip"], device).block_until_ready()
        clips += len(batch["label"])
        nbytes = batch["clip"][0].nbytes
    return clips / (time.perf_counter() - start), nbytes


def settings(workers: list[int]) -> list[dict]:
    """The project's settings timed: every encoding x normalisation at 0 workers, the fast one with more."""
    rows = [
        dict(encoding=e, normalize="host" if host else "device", workers=0)
        for e in ("png", "jpeg")
        for host in (True, False)
    ]
    rows += [dict(encoding="jpeg", normalize="device", workers=w) for w in workers if w > 0]
    if 0 not in workers:
        rows = [r for r in rows if r["workers"] > 0 or (r["encoding"], r["normalize"]) == ("png", "host")]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m lsta_jax.benchmarks.pipeline", description=__doc__)
    parser.add_argument("--work-dir", default=None, help="folder for the drawn frames and tfds data (temp)")
    parser.add_argument(
        "--clips", type=cli.positive_int, default=24, help="drawn clips (one is the test subject's)"
    )
    parser.add_argument(
        "--frames-per-clip", type=cli.positive_int, default=40, help="frames of each drawn clip"
    )
    parser.add_argument(
        "--num-frames", type=cli.positive_int, default=25, help="frames sampled per training clip"
    )
    parser.add_argument("--crop-size", type=cli.positive_int, default=224)
    parser.add_argument("--batch-size", type=cli.positive_int, default=4)
    parser.add_argument(
        "--batches", type=cli.positive_int, default=4, help="timed batches per setting and repeat"
    )
    parser.add_argument(
        "--repeats", type=cli.positive_int, default=3, help="interleaved rounds over all settings"
    )
    parser.add_argument(
        "--workers", type=cli.non_negative_int, nargs="+", default=[0, 1, 2], help="grain worker counts"
    )
    parser.add_argument("--json", default="pipeline_benchmark.json", help="where to write the results")
    args = parser.parse_args(argv)
    if args.clips < 2 or args.frames_per_clip < 5:
        parser.error("--clips must be >= 2 and --frames-per-clip >= 5 (the builders skip shorter clips)")
    if args.batch_size > args.clips - 1:
        parser.error(f"--batch-size {args.batch_size} is larger than the {args.clips - 1} training clips")

    import jax

    from lsta_jax.data import build, make_train_loader

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="lsta_pipeline_bench_"))
    start = time.perf_counter()
    raw = work / "raw"
    if not (raw / "frames").is_dir():
        write_gtea_frames(raw, args.clips, args.frames_per_clip)
    sources = {
        encoding: build("gtea61", work / "tfds", manual_dir=raw, config=config).as_data_source("train")
        for encoding, config in (("png", "split1"), ("jpeg", "split1_jpeg"))
    }
    train_dirs = sorted(p for s in SUBJECTS[1:] for p in (raw / "frames" / s).glob("*/*") if p.is_dir())
    clips = [sorted(d.glob("image_*.jpg")) for d in train_dirs]
    print(
        f"{len(clips)} training clips of {args.frames_per_clip} frames {GTEA_SIZE[0]}x{GTEA_SIZE[1]} "
        f"drawn and built (PNG and JPEG) in {time.perf_counter() - start:.0f} s under {work}",
        flush=True,
    )
    rows = settings(args.workers)
    count = args.batches * args.batch_size
    results: dict[str, list] = {"authors": []} | {_key(r): [] for r in rows}
    ratios: dict[str, list] = {_key(r): [] for r in rows}
    nbytes: dict[str, int] = {}
    half = max(1, args.batches // 2) * args.batch_size

    def authors_now(seed: int) -> float:
        return time_authors(clips, half, args.batch_size, args.num_frames, args.crop_size, seed=seed)

    for repeat in range(args.repeats):
        for i, r in enumerate(rows):
            before = authors_now(seed=repeat * 100 + i)
            loader = make_train_loader(
                sources[r["encoding"]],
                global_batch_size=args.batch_size,
                seed=repeat,
                num_frames=args.num_frames,
                crop_size=args.crop_size,
                resize_shorter=256,
                process_index=0,
                process_count=1,
                worker_count=r["workers"],
                normalize_on_host=r["normalize"] == "host",
            )
            rate, nbytes[_key(r)] = time_project(loader, args.batches)
            authors = (before + authors_now(seed=repeat * 100 + i + 50)) / 2  # around the project's timing
            results["authors"].append(authors)
            results[_key(r)].append(rate)
            ratios[_key(r)].append(rate / max(1, r["workers"]) / authors)
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)

    authors_rate = statistics.median(results["authors"])
    table = [
        dict(
            pipeline="authors (PIL/numpy, raw JPEG)",
            workers=0,
            clips_per_s=authors_rate,
            per_core=authors_rate,
            ratio=1.0,
            bytes=args.num_frames * args.crop_size**2 * 3 * 4,
        )
    ]
    for r in rows:
        rate = statistics.median(results[_key(r)])
        table.append(
            dict(
                pipeline=f"project {r['encoding']}, normalise on {r['normalize']}",
                workers=r["workers"],
                clips_per_s=rate,
                per_core=rate / max(1, r["workers"]),
                ratio=statistics.median(ratios[_key(r)]),
                bytes=nbytes[_key(r)],
            )
        )
    lines = [
        f"{'pipeline':42s} {'workers':>7s} {'clips/s':>8s} {'per core':>8s} {'x authors':>9s} {'MB/clip':>8s}"
    ]
    for row in table:
        lines.append(
            f"{row['pipeline']:42s} {row['workers']:7d} {row['clips_per_s']:8.1f} {row['per_core']:8.1f} "
            f"{row['ratio']:9.2f} {row['bytes'] / 2**20:8.2f}"
        )
    print("\n".join(lines))
    report = dict(
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        machine=f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
        cpu_count=__import__("os").cpu_count(),
        device=str(jax.devices()[0]),
        geometry=dict(
            frame=GTEA_SIZE, num_frames=args.num_frames, crop_size=args.crop_size, batch_size=args.batch_size
        ),
        clips=len(clips),
        repeats=args.repeats,
        timed_clips_per_setting=count,
        table=table,
        raw=results,
        ratios=ratios,
    )
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(f"written {args.json}")
    return 0


def _key(row: dict) -> str:
    return f"{row['encoding']}/{row['normalize']}/w{row['workers']}"


if __name__ == "__main__":
    sys.exit(main())
