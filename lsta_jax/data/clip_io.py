"""Reading frames from disk (frame folders, videos, encoded bytes) and `load_clip`, the eval preprocessing.

Frame numbering follows the reference: frame k (1-based) of a folder is its k-th image in natural order, so a
folder of `image_00001.jpg .. image_N.jpg` gives `image_k` for frame k exactly as the authors' loader does.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from lsta_jax.data import transforms as T

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")


def natural_key(name: str) -> list:
    """Sort key so that 'image_2' < 'image_10' (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frames(directory: str | Path, prefix: str = "") -> list[Path]:
    """Image files of a folder (optionally only names starting with `prefix`), in natural order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such frames directory")
    files = [
        p
        for p in directory.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and p.name.startswith(prefix) and p.is_file()
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def open_image(path: str | Path, mode: str = "RGB") -> Image.Image:
    """Fully decoded PIL image converted to `mode`; an unreadable file raises an error naming it."""
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such frame file") from None
    except Exception as err:  # PIL raises several types for corrupt data
        raise ValueError(f"{path}: cannot read image ({err})") from err


def decode_image(data: bytes, mode: str = "RGB", name: str = "frame") -> Image.Image:
    """Encoded image bytes (as stored by the builders) -> decoded PIL image in `mode` (the decoded image
    itself when it already has that mode: no copy)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode == mode:
                image.load()
                return image
            return image.convert(mode)
    except Exception as err:
        raise ValueError(f"{name}: cannot decode image bytes ({err})") from err


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def iter_video_frames(path: str | Path) -> Iterator:
    """Decode a video with PyAV, one `av.VideoFrame` at a time (nothing else is kept in memory).

    A missing file, a file without a video stream or undecodable data raises an error naming the file.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: the file has no video stream")
            yield from container.decode(video=0)
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot decode video ({err})") from err


def read_video(path: str | Path, wanted: np.ndarray | None = None) -> tuple[list[Image.Image], int]:
    """Decode a video with PyAV -> (RGB frames, number of frames in the video).

    With `wanted` (0-based positions) only those frames are kept (in the order of `wanted`, repeats allowed).
    """
    keep = None if wanted is None else set(int(i) for i in wanted)
    frames: dict[int, Image.Image] = {}
    count = 0
    for frame in iter_video_frames(path):
        if keep is None or count in keep:
            frames[count] = frame.to_image().convert("RGB")
        count += 1
    if count == 0:
        raise ValueError(f"{path}: the video has no frames")
    order = range(count) if wanted is None else [int(i) for i in wanted if int(i) < count]
    return [frames[i] for i in order], count


def video_frame_count(path: str | Path) -> int:
    """Frames in a video as PyAV decodes them (the container's count is not trusted)."""
    return read_video(path, wanted=np.zeros(0, np.int64))[1]


def _check_count(source: Path, count: int, min_frames: int) -> None:
    if count == 0:
        raise ValueError(f"{source}: no frames found (no image files in the folder)")
    if count < min_frames:
        raise ValueError(
            f"{source}: has {count} frames, fewer than {min_frames} (the reference drops such videos)"
        )


def sampled_frames(source: str | Path, num_frames: int, min_frames: int = T.MIN_FRAMES) -> list[Image.Image]:
    """The `num_frames` RGB frames floor(linspace(1, N, T)) of a frames folder or a video (docs/differences.md
    §5)."""
    source = Path(source)
    if source.is_dir():
        files = list_frames(source)
        _check_count(source, len(files), min_frames)
        return [open_image(files[k - 1]) for k in T.sample_indices(len(files), num_frames)]
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or directory")
    if not is_video(source) and source.suffix.lower() in IMAGE_SUFFIXES:
        raise ValueError(f"{source}: is a single image; give a folder of frames or a video")
    count = video_frame_count(source)
    _check_count(source, count, min_frames)
    wanted = T.sample_indices(count, num_frames) - 1
    frames, _ = read_video(source, wanted)
    if len(frames) != num_frames:  # the second decode ended early: the file changed or is inconsistent
        raise ValueError(f"{source}: decoding gave a different number of frames on a second pass")
    return frames


def load_clip(
    source: str | Path,
    num_frames: int = 25,
    size: int = 224,
    resize_shorter: int = 256,
    min_frames: int = T.MIN_FRAMES,
) -> np.ndarray:
    """The reference's evaluation preprocessing of one clip -> float32 (T, size, size, 3) (docs/differences.md
    §5).

    `source` is a frames folder (`image_%05d.jpg` numbered from 1, or any naturally sorted images) or a
    video file (decoded with PyAV). Frames floor(linspace(1, N, T)) (N < T repeats frames) -> `Scale`
    (shorter side `resize_shorter`, PIL bilinear) -> `CenterCrop(size)` (Python-3 round) -> /255 ->
    ImageNet mean/std. Errors name the file: a corrupt frame, an empty folder, a video without frames, or a
    clip with fewer than `min_frames` frames (5, the reference's rule).
    """
    frames = sampled_frames(source, num_frames, min_frames)
    crops = [np.asarray(T.eval_transform(f, size, resize_shorter)) for f in frames]
    return T.normalize_rgb(np.stack(crops))


def flow_dirs_for(source: str | Path, flow_root: str | Path | None = None) -> tuple[Path, Path]:
    """The `flow_x` and `flow_y` folders of an RGB input, in the authors' layout (docs/differences.md §6).

    With `flow_root`: FLOW_ROOT/flow_x/<name> and FLOW_ROOT/flow_y/<name>, <name> the input's folder name or
    video stem. Without: the input's path with its last `frames` component replaced by `flow_x` / `flow_y`
    (`.../frames/S2/<class>/<instance>` -> `.../flow_x/S2/<class>/<instance>`); a flow clip folder itself
    (`.../flow_x/...` or `.../flow_y/...`, for flow-only models) gives itself and its sibling. Missing folders
    raise an error naming the input and where its flow was looked for.
    """
    source = Path(source)
    parts = source.parts
    if flow_root is not None:
        name = source.name if source.is_dir() else source.stem
        dirs = (Path(flow_root) / "flow_x" / name, Path(flow_root) / "flow_y" / name)
    else:
        layout = next((part for part in ("frames", "flow_x", "flow_y") if part in parts), None)
        if layout is None:
            raise ValueError(
                f"{source}: cannot find its optical flow: not under a 'frames' (or 'flow_x') folder of the "
                "authors' layout "
                "(give --flow-root FLOW_ROOT holding flow_x/<name>/ and flow_y/<name>/)"
            )
        at = len(parts) - 1 - parts[::-1].index(layout)
        dirs = tuple(Path(*parts[:at], kind, *parts[at + 1 :]) for kind in ("flow_x", "flow_y"))
    for folder in dirs:
        if not folder.is_dir():
            raise FileNotFoundError(f"{source}: no optical flow folder {folder}")
    return dirs[0], dirs[1]


def load_flow_stacks(
    source: str | Path,
    segments: int = 10,
    size: int = 224,
    resize_shorter: int = 256,
    stack: int = T.FLOW_STACK,
    flow_root: str | Path | None = None,
) -> np.ndarray:
    """The evaluation flow input of one clip: `segments` stacks (S, size, size, 2 * stack) at ego-rnn's
    late-fusion starts (`transforms.flow_segment_starts`), each `Scale` -> `CenterCrop` -> interleaved x/y ->
    flow normalisation, as the eval pipeline's `flow_segments` (docs/differences.md §4.2, §4.4). `source` is
    the RGB input; its flow folders come from `flow_dirs_for`."""
    xs, ys = _flow_files(source, flow_root)
    starts = [int(s) for s in T.flow_segment_starts(len(xs), segments, stack)]
    return np.stack([_eval_stack(xs, ys, s, stack, size, resize_shorter) for s in starts])


def _flow_files(source: str | Path, flow_root: str | Path | None) -> tuple[list[Path], list[Path]]:
    fx, fy = flow_dirs_for(source, flow_root)
    xs, ys = list_frames(fx, "flow_x"), list_frames(fy, "flow_y")
    if len(xs) != len(ys):
        raise ValueError(f"{source}: {fx} has {len(xs)} flow_x images but {fy} has {len(ys)} flow_y images")
    return xs, ys


def _eval_stack(
    xs: list[Path], ys: list[Path], start: int, stack: int, size: int, resize_shorter: int
) -> np.ndarray:
    def crops(files: list[Path]) -> list[np.ndarray]:
        return [
            np.asarray(T.eval_transform(open_image(files[k - 1], "L"), size, resize_shorter))
            for k in range(start, start + stack)
        ]

    return T.normalize_flow(T.interleave_flow(crops(xs), crops(ys)))


def load_centre_flow_stack(
    source: str | Path,
    size: int = 224,
    resize_shorter: int = 256,
    stack: int = T.FLOW_STACK,
    flow_root: str | Path | None = None,
) -> tuple[np.ndarray, int]:
    """The motion stream's evaluation input of one clip (paper 5.2, docs/differences.md §4.2): the stack of
    `stack` flow frames at the temporal centre, start s = ceil((N - stack) / 2), preprocessed as
    `load_flow_stacks`. Returns ((size, size, 2 * stack), s); flow frame k lies between RGB frames k and k +
    1."""
    xs, ys = _flow_files(source, flow_root)
    start = T.flow_eval_start(len(xs), stack)
    return _eval_stack(xs, ys, start, stack, size, resize_shorter), start


def frames_at(source: str | Path, numbers: list[int]) -> list[Image.Image]:
    """The RGB frames with the 1-based `numbers` of a frames folder or a video."""
    source = Path(source)
    if source.is_dir():
        files = list_frames(source)
        return [open_image(files[k - 1]) for k in numbers]
    frames, _ = read_video(source, np.asarray(numbers, np.int64) - 1)
    return frames
