"""The reference's frame sampling and spatial transforms, one function per rule (docs/differences.md §4.2,
§5).

Everything works on PIL images so resizing is PIL's (antialiased) bilinear filter, exactly as the authors'
`spatial_transforms.py`; crops and flips are plain pixel copies. The order of the training transform is the
reference's: `Scale` -> `RandomHorizontalFlip` -> `MultiScaleCornerCrop` (flip BEFORE the crop, which matters
because of the off-by-one 'tr'/'bl' boxes) -> ToTensor (/255) -> Normalize.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FLOW_MEAN = 0.449  # mean of the ImageNet means (docs/differences.md §4.2, `Normalize(..., flow=True)`)
FLOW_STD = 0.226  # mean of the ImageNet stds
CORNER_CROP_SCALES = (1.0, 0.875, 0.75, 0.65625)  # TSN multi-scale corner crop (docs/differences.md §5)
CROP_POSITIONS = ("c", "tl", "tr", "bl", "br")
FLOW_STACK = 5  # flow frames per stack (docs/differences.md §4.2)
# videos with fewer frames are dropped by the reference's split builders (docs/differences.md §5)
MIN_FRAMES = 5


def sample_indices(num_available: int, num_frames: int) -> np.ndarray:
    """1-based frame numbers floor(linspace(1, N, T)) (docs/differences.md §5); repeats frames when N < T."""
    if num_available < 1:
        raise ValueError(f"cannot sample {num_frames} frames from a clip with {num_available} frames")
    return np.floor(np.linspace(1, num_available, num_frames, endpoint=True)).astype(np.int64)


def scale_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """(width, height) after `Scale(shorter)`: shorter side -> `shorter`, other int(shorter*long/short)."""
    if width < height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def scale(image: Image.Image, shorter: int) -> Image.Image:
    """`Scale(shorter)` with PIL bilinear; the image itself when its shorter side already has that length."""
    width, height = image.size
    if (width <= height and width == shorter) or (height <= width and height == shorter):
        return image
    return image.resize(scale_size(width, height, shorter), Image.BILINEAR)


def center_crop_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """`CenterCrop(size)` box (x1, y1, x2, y2): x1 = round((w - size) / 2) with Python-3 (banker's) round."""
    x1 = int(round((width - size) / 2.0))
    y1 = int(round((height - size) / 2.0))
    return x1, y1, x1 + size, y1 + size


def corner_crop_box(width: int, height: int, scale_factor: float, position: str) -> tuple[int, int, int, int]:
    """`MultiScaleCornerCrop` box for one scale and position (docs/differences.md §5), quirks included.

    side s = int(min(w, h) * scale); 'c' is centred at (w // 2, h // 2) with half side s // 2; 'tl' and 'br'
    are the exact corners; 'tr' is (w - s, 1, w, s) and 'bl' is (1, h - s, s, h): one pixel short.
    """
    side = int(min(width, height) * scale_factor)
    if position == "c":
        cx, cy, half = width // 2, height // 2, side // 2
        return cx - half, cy - half, cx + half, cy + half
    if position == "tl":
        return 0, 0, side, side
    if position == "tr":
        return width - side, 1, width, side
    if position == "bl":
        return 1, height - side, side, height
    if position == "br":
        return width - side, height - side, width, height
    raise ValueError(f"unknown crop position {position!r}; expected one of {CROP_POSITIONS}")


@dataclass(frozen=True)
class TrainDraw:
    """One random draw per clip of the training augmentation, applied to every frame of the clip."""

    flip: bool
    scale: float
    position: str


def draw_train_params(rng: np.random.Generator) -> TrainDraw:
    """Flip with probability 0.5, a scale and a position uniformly from the reference's lists."""
    flip = bool(rng.random() < 0.5)
    scale_factor = CORNER_CROP_SCALES[int(rng.integers(len(CORNER_CROP_SCALES)))]
    position = CROP_POSITIONS[int(rng.integers(len(CROP_POSITIONS)))]
    return TrainDraw(flip, scale_factor, position)


def train_transform(
    image: Image.Image, draw: TrainDraw, crop_size: int, resize_shorter: int, invert_on_flip: bool = False
) -> Image.Image:
    """Scale -> horizontal flip (x-flow also inverted, v -> 255 - v) -> corner crop -> resize to crop_size."""
    image = scale(image, resize_shorter)
    if draw.flip:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
        if invert_on_flip:
            image = ImageOps.invert(image)
    box = corner_crop_box(*image.size, draw.scale, draw.position)
    return image.crop(box).resize((crop_size, crop_size), Image.BILINEAR)


def eval_transform(image: Image.Image, crop_size: int, resize_shorter: int) -> Image.Image:
    """Scale -> CenterCrop (docs/differences.md §5, test transform)."""
    image = scale(image, resize_shorter)
    return image.crop(center_crop_box(*image.size, crop_size))


def eval_transform_boxes(
    boxes: np.ndarray, width: int, height: int, crop_size: int, resize_shorter: int
) -> np.ndarray:
    """Boxes (..., 4) as (y0, x0, y1, x1) in units of a (width, height) frame -> the same boxes in units of
    the `eval_transform` crop (Scale(resize_shorter), CenterCrop(crop_size)); they may leave [0, 1]."""
    new_w, new_h = scale_size(width, height, resize_shorter)  # the size itself when already scaled
    x1, y1, _, _ = center_crop_box(new_w, new_h, crop_size)
    boxes = np.asarray(boxes, np.float32)
    ys = (boxes[..., 0::2] * new_h - y1) / crop_size
    xs = (boxes[..., 1::2] * new_w - x1) / crop_size
    return np.stack([ys[..., 0], xs[..., 0], ys[..., 1], xs[..., 1]], axis=-1).astype(np.float32)


def normalize_rgb(frames: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) -> float32 (x / 255 - mean) / std with the ImageNet mean/std, in float32 like torch."""
    x = np.asarray(frames).astype(np.float32) / np.float32(255.0)
    return (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)


def normalize_flow(frames: np.ndarray) -> np.ndarray:
    """uint8 flow images -> float32 (x / 255 - 0.449) / 0.226 on every channel (docs/differences.md §4.2)."""
    x = np.asarray(frames).astype(np.float32) / np.float32(255.0)
    return (x - np.float32(FLOW_MEAN)) / np.float32(FLOW_STD)


def flow_train_start(num_flow: int, rng: np.random.Generator, stack: int = FLOW_STACK) -> int:
    """Training stack start s ~ randint(1, N - stack) inclusive (docs/differences.md §4.2); frames s .. s +
    stack - 1."""
    if num_flow < stack + 1:
        raise ValueError(f"a flow stack of {stack} needs at least {stack + 1} flow frames, got {num_flow}")
    return int(rng.integers(1, num_flow - stack + 1))


def flow_eval_start(num_flow: int, stack: int = FLOW_STACK) -> int:
    """Evaluation stack start s = ceil((N - stack) / 2), the temporal centre (docs/differences.md §4.2)."""
    if num_flow < stack + 1:
        raise ValueError(f"a flow stack of {stack} needs at least {stack + 1} flow frames, got {num_flow}")
    return int(math.ceil((num_flow - stack) / 2))


def interleave_flow(x_frames: list[np.ndarray], y_frames: list[np.ndarray]) -> np.ndarray:
    """(H, W) x and y flow images -> (H, W, 2L) with channels [x_1, y_1, ..., x_L, y_L] (docs/differences.md
    §4.2)."""
    channels = [c for pair in zip(x_frames, y_frames, strict=True) for c in pair]
    return np.stack(channels, axis=-1)


def flow_segment_starts(num_flow: int, segments: int, stack: int = FLOW_STACK) -> np.ndarray:
    """Starts of the `segments` flow stacks of ego-rnn's late fusion (`makeDatasetTwoStream`,
    docs/differences.md §4.4): int(linspace(1, N - stack, segments)) with the endpoint, 1-based; all 1 when N
    <= stack. Stack s covers frames start_s .. start_s + stack - 1 (so the last one ends at frame N - 1, as in
    ego-rnn)."""
    if segments < 1:
        raise ValueError(f"segments must be >= 1, got {segments}")
    if num_flow < stack:
        raise ValueError(f"a flow stack of {stack} needs at least {stack} flow frames, got {num_flow}")
    if num_flow <= stack:
        return np.ones(segments, np.int64)
    return np.linspace(1, num_flow - stack, segments).astype(np.int64)
