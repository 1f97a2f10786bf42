"""`python -m lsta_jax.data flow`: TV-L1 flow images of frame folders and videos, in the authors' layout.

    python -m lsta_jax.data flow --frames /data/gtea_61/frames --output /data/gtea_61
    python -m lsta_jax.data flow --frames /data/egtea_gaze+/frames --output /data/egtea_gaze+ --workers 16
    python -m lsta_jax.data flow --frames videos/ --output /tmp/flow    # flow_x/<video name>/flow_x_00001.jpg
    python -m lsta_jax.data flow --frames clip.mp4 --output /tmp/clip_flow --resize-shorter 256

Input (--frames): a tree of clips, a single clip folder, or a single video. In a tree, every folder that holds
images is one clip (its frames in natural order, as the builders read them; its subfolders are not searched)
and every video file elsewhere is one clip. Hidden folders and the output's own flow_x/, flow_y/ are skipped.
Output (--output): for a clip at relative path REL (a folder, or a video without its suffix; '.' for a single
clip), `OUTPUT/flow_x/REL/flow_x_%05d.jpg` and `OUTPUT/flow_y/REL/flow_y_%05d.jpg`, numbered from 1: image k
is the flow from frame k to frame k + 1, so a clip of N frames gets N - 1 of each. That is the layout the
gtea61/gtea71/egtea_gaze_plus builders read as provided flow (`--frames DATA/frames --output DATA`). A clip
folder's `action_label.txt` (GTEA verb id) is copied next to its x-flow, where the builders look for it.
Each image: TV-L1 flow clipped to +-bound px (default 20) and mapped linearly to 0..255, rounded half to even
(128 ~ no motion: 0 to +0.157 px; `lsta_jax.data.flow.quantize_flow`), grayscale JPEG quality 95.
With --warp, the *warped* flow (dense_flow's warp tool, the variant the ego-rnn README names for its GTEA61
archive): the camera motion, a homography fitted to the flow, is removed and the flow computed again (a
second, faster TV-L1 pass).

Work runs in a pool of --workers processes (default: all cores), one clip per task, with a progress bar
(clips, flow frames/s). Resumable: a clip whose flow_x/REL and flow_y/REL both exist is skipped. Each clip is
written under OUTPUT/.flow_tmp/ and renamed into place when complete, flow_y first and flow_x last, so an
interrupted run never leaves a clip that looks finished; a rerun redoes it. A corrupt frame or an unreadable
video fails its clip (nothing written for it), is reported by name, and the run goes on; the summary lists
the failures and the exit code is 1 if there were any (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from lsta_jax.data import flow as F
from lsta_jax.data.clip_io import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    is_video,
    iter_video_frames,
    list_frames,
    natural_key,
    open_image,
)

TMP_DIR = ".flow_tmp"
LABEL_FILE = "action_label.txt"  # GTEA's per-instance verb id, read by the builders from flow_x/REL


@dataclasses.dataclass(frozen=True)
class FlowJob:
    """One clip to compute: `source` (a frames folder or a video) -> OUTPUT/flow_{x,y}/`rel`."""

    source: Path
    rel: Path
    output: Path
    bound: float = F.DEFAULT_BOUND
    resize_shorter: int | None = None
    warp: bool = False


@dataclasses.dataclass(frozen=True)
class FlowResult:
    """What one clip gave: its flow frame count, or the error that failed it (one line, naming the file)."""

    rel: Path
    flow_frames: int = 0
    error: str | None = None


@dataclasses.dataclass
class FlowSummary:
    """A run: clips written, skipped as already finished, failed (rel -> error); frames and seconds."""

    written: list[Path] = dataclasses.field(default_factory=list)
    skipped: list[Path] = dataclasses.field(default_factory=list)
    failed: dict[Path, str] = dataclasses.field(default_factory=dict)
    flow_frames: int = 0
    seconds: float = 0.0

    @property
    def frames_per_second(self) -> float:
        return self.flow_frames / self.seconds if self.seconds > 0 else 0.0


def _has_images(names: Sequence[str]) -> bool:
    return any(Path(n).suffix.lower() in IMAGE_SUFFIXES for n in names)


def discover_clips(root: str | Path, exclude: Sequence[Path] = ()) -> list[tuple[Path, Path]]:
    """[(source, rel)] of the clips under `root` (see the module docstring), in natural sorted order."""
    root = Path(root)
    if root.is_file():
        if not is_video(root):
            raise ValueError(f"{root}: not a video file (known suffixes: {', '.join(VIDEO_SUFFIXES)})")
        return [(root, Path("."))]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder or video")
    excluded = {p.resolve() for p in exclude}
    clips: list[tuple[Path, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):  # trees are often assembled by links
        here = Path(dirpath)
        if _has_images(filenames):
            clips.append((here, here.relative_to(root)))
            dirnames[:] = []  # a clip's subfolders are not clips (their flow would nest inside its own)
            continue
        dirnames[:] = sorted(
            (d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in excluded),
            key=natural_key,
        )
        for name in sorted(filenames, key=natural_key):
            if is_video(name):
                clips.append((here / name, (here / name).relative_to(root).with_suffix("")))
    first: dict[Path, Path] = {}
    for source, rel in clips:
        if rel in first:
            raise ValueError(f"{first[rel]} and {source} would both write flow_x/{rel}; rename or move one")
        first[rel] = source
    return clips


def output_dirs(output: Path, rel: Path) -> tuple[Path, Path]:
    """The final flow_x and flow_y folders of the clip at `rel`."""
    return output / "flow_x" / rel, output / "flow_y" / rel


def is_finished(output: Path, rel: Path) -> bool:
    """A clip is finished when both of its final folders exist (they only appear by a complete rename)."""
    return all(d.is_dir() for d in output_dirs(output, rel))


def source_frames(source: Path) -> Iterator[np.ndarray]:
    """RGB uint8 frames of a frames folder (natural order) or a video, one at a time; errors name the file."""
    if source.is_dir():
        for path in list_frames(source):
            yield np.asarray(open_image(path))
    else:
        for frame in iter_video_frames(source):
            yield frame.to_ndarray(format="rgb24")


def _temp_dir(job: FlowJob) -> Path:
    return job.output / TMP_DIR / ("_clip" if job.rel == Path(".") else job.rel)


def _remove_partial(folder: Path) -> None:
    """Remove a final folder left by an interrupted rename (flow_y renamed, flow_x not); never a tree."""
    if not folder.exists():
        return
    if any(p.is_dir() for p in folder.iterdir()):
        raise ValueError(f"{folder}: exists without its partner flow folder and holds folders; not replaced")
    shutil.rmtree(folder)


def extract_clip(job: FlowJob) -> FlowResult:
    """Compute, encode and write one clip (temporary folder, then rename); errors become the result's text."""
    tmp = _temp_dir(job)
    try:
        shutil.rmtree(tmp, ignore_errors=True)  # a leftover of an interrupted run
        tmp_x, tmp_y = tmp / "flow_x", tmp / "flow_y"
        tmp_x.mkdir(parents=True)
        tmp_y.mkdir()
        count = 0
        flows = F.iter_tvl1_flow(source_frames(job.source), job.resize_shorter, job.warp)
        for count, flow in enumerate(flows, 1):
            q = F.quantize_flow(flow, job.bound)
            (tmp_x / f"flow_x_{count:05d}.jpg").write_bytes(F.encode_flow_image(q[..., 0]))
            (tmp_y / f"flow_y_{count:05d}.jpg").write_bytes(F.encode_flow_image(q[..., 1]))
            if _on_frame is not None:
                _on_frame()
        if count == 0:
            raise ValueError(f"{job.source}: fewer than 2 frames, no flow to compute")
        if job.source.is_dir() and (job.source / LABEL_FILE).is_file():
            shutil.copy2(job.source / LABEL_FILE, tmp_x / LABEL_FILE)
        final_x, final_y = output_dirs(job.output, job.rel)
        for final in (final_x, final_y):
            _remove_partial(final)
            final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_y, final_y)
        os.replace(tmp_x, final_x)  # last: the clip counts as finished from here on
        tmp.rmdir()
        return FlowResult(job.rel, count)
    except Exception as err:  # noqa: BLE001 - any failure of one clip is reported, the run goes on
        shutil.rmtree(tmp, ignore_errors=True)
        message = str(err) if str(job.source) in str(err) else f"{job.source}: {err}"
        return FlowResult(job.rel, error=message.splitlines()[0] if message else type(err).__name__)


_on_frame: Callable[[], None] | None = None  # called after each flow frame: the live frames/s of the bar


def _count_into(counter) -> Callable[[], None]:
    def count() -> None:
        with counter.get_lock():
            counter.value += 1

    return count


def _init_worker(counter) -> None:
    import cv2

    global _on_frame
    _on_frame = _count_into(counter)
    cv2.setNumThreads(1)  # one clip per process: the pool, not OpenCV, uses the cores


def _results(jobs: list[FlowJob], workers: int, counter, show: Callable[[], None]) -> Iterator[FlowResult]:
    """The clips' results as they finish (in this process for one worker, else a spawn pool); `show` runs
    after each flow frame (one worker) or every second (pool) to refresh the frames/s."""
    global _on_frame
    if workers == 1:
        count = _count_into(counter)
        _on_frame = lambda: (count(), show())
        try:
            yield from map(extract_clip, jobs)
        finally:
            _on_frame = None
        return
    # spawn: a clean interpreter per worker (no fork of a process that imported jax)
    pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(counter,))
    try:
        results = pool.imap_unordered(extract_clip, jobs)
        while True:
            try:
                yield results.next(timeout=1.0)
            except multiprocessing.TimeoutError:
                show()
            except StopIteration:
                return
    finally:
        pool.terminate()
        pool.join()


def _prune_tmp(output: Path) -> None:
    tmp = output / TMP_DIR
    if not tmp.is_dir():
        return
    for dirpath, _, _ in sorted(os.walk(tmp), key=lambda entry: len(entry[0]), reverse=True):
        try:
            Path(dirpath).rmdir()
        except OSError:
            pass  # not empty: another run may be using it


def compute_flow(
    frames: str | Path,
    output: str | Path,
    *,
    workers: int | None = None,
    bound: float = F.DEFAULT_BOUND,
    resize_shorter: int | None = None,
    warp: bool = False,
    progress: bool = True,
) -> FlowSummary:
    """Write the flow images of every clip under `frames` into `output` (module docstring); -> a summary."""
    from tqdm import tqdm

    frames, output = Path(frames), Path(output)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    F.quantize_flow(np.zeros(1), bound)  # checks the bound
    if resize_shorter is not None and resize_shorter < 2:
        raise ValueError(f"--resize-shorter must be >= 2 px, got {resize_shorter}")
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output}: --output exists and is not a folder")
    clips = discover_clips(frames, exclude=[output / "flow_x", output / "flow_y", output / TMP_DIR])
    if not clips:
        raise ValueError(f"{frames}: no clips found (no folder with images and no video file)")
    if all(rel.parts[:1] == ("frames",) for _, rel in clips):
        inner = frames / "frames"
        print(
            f"note: every clip is under {inner}, so the flow goes to {output / 'flow_x' / 'frames'}; "
            f"the builders expect --frames {inner} --output {frames}",
            file=sys.stderr,
        )
    summary = FlowSummary()
    jobs = []
    for source, rel in clips:
        if is_finished(output, rel):
            summary.skipped.append(rel)
        else:
            jobs.append(FlowJob(source, rel, output, bound, resize_shorter, warp))
    output.mkdir(parents=True, exist_ok=True)
    start = time.time()
    bar = tqdm(total=len(jobs), unit="clip", desc="flow", disable=not progress, dynamic_ncols=True)
    if summary.skipped:
        bar.write(f"{len(summary.skipped)} clips already finished in {output}, skipped")
    counter = multiprocessing.get_context("spawn").Value("q", 0)  # flow frames so far, clips in progress too

    def show() -> None:
        bar.set_postfix_str(f"{counter.value / max(time.time() - start, 1e-9):.1f} frames/s")

    results = _results(jobs, min(workers, len(jobs)) or 1, counter, show)
    try:
        for result in results:
            if result.error:
                summary.failed[result.rel] = result.error
                bar.write(f"error: {result.error}", file=sys.stderr)
            else:
                summary.written.append(result.rel)
                summary.flow_frames += result.flow_frames
            show()
            bar.update()
    finally:
        results.close()  # stops the pool now, also on an error or Ctrl-C
        bar.close()
        _prune_tmp(output)
    summary.seconds = time.time() - start
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lsta_jax.data flow",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", required=True, help="a tree of clips, one clip folder, or one video")
    parser.add_argument("--output", required=True, help="folder that receives flow_x/ and flow_y/")
    parser.add_argument(
        "--workers", type=int, default=None, help=f"processes, one clip each (default {os.cpu_count()})"
    )
    parser.add_argument(
        "--bound", type=float, default=F.DEFAULT_BOUND, help="clip flow to +-BOUND px before 0..255 (20)"
    )
    parser.add_argument(
        "--resize-shorter",
        type=int,
        default=None,
        help="resize frames to this shorter side before the flow (default: native size)",
    )
    parser.add_argument(
        "--warp",
        action="store_true",
        help="warped flow: the camera motion (a homography fitted to the flow) removed, as dense_flow's",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        summary = compute_flow(
            args.frames,
            args.output,
            workers=args.workers,
            bound=args.bound,
            resize_shorter=args.resize_shorter,
            warp=args.warp,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"flow: {len(summary.written)} clips written ({summary.flow_frames} flow frames, "
        f"{summary.frames_per_second:.1f} frames/s), {len(summary.skipped)} already finished, "
        f"{len(summary.failed)} failed -> {args.output}"
    )
    if summary.failed:
        print(f"{len(summary.failed)} clips failed and were skipped:", file=sys.stderr)
        for rel, error in summary.failed.items():
            print(f"  {rel}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
