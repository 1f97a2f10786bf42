"""Attention overlays like the paper's Fig. 2: where LSTA looks, frame by frame.

The map shown is u_t, the softmax over the h x w positions that the LSTA cell multiplies into the features
(paper eq. 6; `docs/differences.md` §2.3, the `attention` output of the model). As in the authors'
visualisation snippet (ego-rnn#5) each map is min-max normalised to [0, 1], upsampled to the frame, coloured
and blended over the frame. We differ in two presentation choices: bilinear upsampling of the normalised map
(a smooth map instead of blocks) and a perceptual colormap (`inferno` by default: dark = little attention,
bright yellow = most) instead of JET. The frames shown are the sampled frames as the model saw them, with the
ImageNet normalisation undone.

- `overlay_clip(frames, attention)` -> (T, H, W, 3) uint8 blended frames;
- `save_strip(path, frames, overlays)`: a PNG, top row evenly spaced frames, bottom row their overlays;
- `save_gif(path, overlays)`: an animated GIF over all sampled frames;
- `write_overlays(directory, stem, frames, attention, boxes=None, selector_attention=None)`: both, for
  `predict`; with `boxes` (T, K, 4) ground-truth boxes (y0, x0, y1, x1) in units of the frame
  (`synthetic_ego`: hand, target, confuser) are outlined on the frames and the overlays (`draw_boxes`,
  colours `BOX_COLOURS`); with `selector_attention` the strip gets a third row, the frozen selector's map
  softmax(ν_a) before the attention memory (the demo shows what LSTA changed);
- `write_two_stream_overlays(directory, stem, frames, attention, stack_frames, flow_attention)`: the paper's
  Fig. 2 rows 5-6 for a two-stream model: the RGB stream's maps on its frames and the motion stream's map on
  the RGB frames of its flow stack, one PNG.
A constant map (e.g. the `convlstm` variant's uniform attention) normalises to 0 everywhere: no highlight.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw

DEFAULT_COLORMAP = "inferno"
DEFAULT_ALPHA = 0.5
STRIP_GAP = 4
TITLE_HEIGHT = 16
MIN_TILE = 128
BOX_COLOURS = ((255, 255, 255), (0, 230, 0), (255, 40, 40))  # hand white, target green, confuser red


def denormalize(
    clip: np.ndarray, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None
) -> np.ndarray:
    """Undo `(x / 255 - mean) / std` (default: the ImageNet values of `lsta_jax.data.transforms`) -> uint8."""
    if mean is None or std is None:
        from lsta_jax.data.transforms import IMAGENET_MEAN, IMAGENET_STD

        mean = IMAGENET_MEAN if mean is None else mean
        std = IMAGENET_STD if std is None else std
    pixels = (np.asarray(clip, np.float32) * np.asarray(std, np.float32) + np.asarray(mean, np.float32)) * 255
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def normalize_map(attention: np.ndarray) -> np.ndarray:
    """Min-max normalise one map to [0, 1] (ego-rnn#5); a constant map becomes all zeros."""
    attention = np.asarray(attention, np.float32)
    low, high = float(attention.min()), float(attention.max())
    if high - low <= 0:
        return np.zeros_like(attention)
    return (attention - low) / (high - low)


def upsample_map(attention: np.ndarray, height: int, width: int) -> np.ndarray:
    """Min-max normalise an (h, w) map, then resize it bilinearly (pixel centres aligned) to the frame."""
    image = Image.fromarray(normalize_map(attention), mode="F")
    resized = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), np.float32)
    return np.clip(resized, 0.0, 1.0)


def colorize(values: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """Values in [0, 1] -> float RGB in [0, 1] through a matplotlib colormap."""
    return np.asarray(matplotlib.colormaps[colormap](values)[..., :3], np.float32)


def overlay_clip(
    frames: np.ndarray,
    attention: np.ndarray,
    alpha: float = DEFAULT_ALPHA,
    colormap: str = DEFAULT_COLORMAP,
) -> np.ndarray:
    """Blend each frame with its coloured map: (1 - alpha) * frame + alpha * colormap(map).

    frames: (T, H, W, 3) uint8; attention: (T, h, w) maps (any scale, each min-max normalised here).
    Returns (T, H, W, 3) uint8.
    """
    frames = np.asarray(frames)
    attention = np.asarray(attention)
    if frames.ndim != 4 or attention.ndim != 3 or frames.shape[0] != attention.shape[0]:
        raise ValueError(
            f"need frames (T, H, W, 3) and maps (T, h, w), got {frames.shape} and {attention.shape}"
        )
    height, width = frames.shape[1:3]
    out = np.empty(frames.shape, np.uint8)
    for t in range(frames.shape[0]):
        heat = colorize(upsample_map(attention[t], height, width), colormap) * 255.0
        blended = (1.0 - alpha) * frames[t].astype(np.float32) + alpha * heat
        out[t] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return out


def tile_factor(height: int, width: int, min_tile: int = MIN_TILE) -> int:
    """Integer enlargement making the smaller frame side at least `min_tile` pixels (1 if it already is)."""
    return max(1, -(-min_tile // max(1, min(height, width))))


def strip_indices(num_frames: int, count: int) -> np.ndarray:
    """`count` evenly spaced frame indices from the first to the last (all frames when there are fewer)."""
    count = max(1, min(count, num_frames))
    return np.unique(np.round(np.linspace(0, num_frames - 1, count)).astype(int))


def save_strip(
    path: str | Path,
    frames: np.ndarray,
    overlays: np.ndarray,
    count: int = 5,
    title: str | None = None,
) -> Path:
    """PNG strip: evenly spaced frames on top, their overlays below, `STRIP_GAP` white pixels between tiles.

    Size: width n*W + (n-1)*gap, height 2*H + gap (+ TITLE_HEIGHT with a title), n = min(count, T).
    """
    indices = strip_indices(len(frames), count)
    n = len(indices)
    height, width = frames.shape[1:3]
    top = TITLE_HEIGHT if title else 0
    canvas = np.full((top + 2 * height + STRIP_GAP, n * width + (n - 1) * STRIP_GAP, 3), 255, np.uint8)
    for column, t in enumerate(indices):
        x = column * (width + STRIP_GAP)
        canvas[top : top + height, x : x + width] = frames[t]
        canvas[top + height + STRIP_GAP : top + 2 * height + STRIP_GAP, x : x + width] = overlays[t]
    image = Image.fromarray(canvas)
    if title:
        ImageDraw.Draw(image).text((2, 2), title, fill=(0, 0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


def save_gif(path: str | Path, overlays: np.ndarray, duration_ms: int = 160) -> Path:
    """Animated GIF over all frames (loops forever).

    Each frame gets its own 256-colour palette by fast octree quantisation: about 100x faster than PIL's
    default (median cut with dithering, seconds per clip at 224 px and 25 frames) and visually the same here.
    """
    images = [Image.fromarray(frame).quantize(method=Image.Quantize.FASTOCTREE) for frame in overlays]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(
        path, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0, disposal=1
    )
    return path


def draw_boxes(
    frames: np.ndarray, boxes: np.ndarray, colours: tuple[tuple[int, int, int], ...] = BOX_COLOURS
) -> np.ndarray:
    """Outline boxes on frames: frames (T, H, W, 3) uint8, boxes (T, K, 4) as (y0, x0, y1, x1) in units of
    the frame (parts outside it are clipped; an all-zero box is skipped). Box k gets colours[k]."""
    frames = np.asarray(frames)
    boxes = np.asarray(boxes, np.float64)
    if boxes.ndim != 3 or boxes.shape[0] != frames.shape[0] or boxes.shape[-1] != 4:
        raise ValueError(f"need boxes (T, K, 4) for {frames.shape[0]} frames, got {boxes.shape}")
    height, width = frames.shape[1:3]
    out = []
    for frame, frame_boxes in zip(frames, boxes, strict=True):
        image = Image.fromarray(frame)
        draw = ImageDraw.Draw(image)
        for k, (y0, x0, y1, x1) in enumerate(frame_boxes):
            if not np.any(frame_boxes[k]) or y1 <= 0 or x1 <= 0 or y0 >= 1 or x0 >= 1:
                continue
            corners = [x0 * width, y0 * height, x1 * width - 1, y1 * height - 1]
            corners = [
                float(np.clip(v, 0, (width if i % 2 == 0 else height) - 1)) for i, v in enumerate(corners)
            ]
            draw.rectangle(corners, outline=colours[k % len(colours)])
        out.append(np.asarray(image))
    return np.stack(out)


def write_overlays(
    directory: str | Path,
    stem: str,
    frames: np.ndarray,
    attention: np.ndarray,
    *,
    boxes: np.ndarray | None = None,
    selector_attention: np.ndarray | None = None,
    title: str | None = None,
    count: int = 5,
    alpha: float = DEFAULT_ALPHA,
    colormap: str = DEFAULT_COLORMAP,
    min_tile: int = MIN_TILE,
) -> tuple[Path, Path]:
    """`<directory>/<stem>.png` (strip) and `<stem>.gif` (all frames) from uint8 frames (T, H, W, 3) and maps.

    For a clip as the model saw it pass `denormalize(clip)`; a model on other inputs (e.g. a motion stream on
    flow) passes the RGB frames its inputs come from. Frames smaller than `min_tile` pixels are first
    enlarged by the integer factor `tile_factor(H, W, min_tile)` (nearest neighbour), so that small clips
    stay visible; the map is then upsampled to the enlarged frame. `boxes` (T, K, 4), if given, are drawn
    on every row (`draw_boxes`). `selector_attention` (T, h, w), if given, adds a third row to the strip:
    the frozen selector's map softmax(ν_a) (`lsta_jax.selector_cam`) on the same frames, what u_t would be
    without the attention memory (eq. 6 with s_t = 0).
    """
    factor = tile_factor(*frames.shape[1:3], min_tile)
    if factor > 1:
        frames = np.repeat(np.repeat(frames, factor, axis=1), factor, axis=2)
    overlays = overlay_clip(frames, attention, alpha=alpha, colormap=colormap)
    rows = [frames, overlays]
    if selector_attention is not None:
        rows.append(overlay_clip(frames, selector_attention, alpha=alpha, colormap=colormap))
    if boxes is not None:
        rows = [draw_boxes(row, boxes) for row in rows]
    directory = Path(directory)
    if selector_attention is None:
        png = save_strip(directory / f"{stem}.png", *rows, count=count, title=title)
    else:
        indices = strip_indices(len(frames), count)
        png = save_rows(directory / f"{stem}.png", [row[indices] for row in rows], title=title)
    gif = save_gif(directory / f"{stem}.gif", rows[1])
    return png, gif


def save_rows(path: str | Path, rows: list[np.ndarray], title: str | None = None) -> Path:
    """PNG of image rows (each (n_i, H, W, 3) uint8, same H and W), left-aligned, `STRIP_GAP` white pixels
    between tiles and rows, an optional title line on top."""
    height, width = rows[0].shape[1:3]
    columns = max(len(row) for row in rows)
    top = TITLE_HEIGHT if title else 0
    canvas = np.full(
        (top + len(rows) * (height + STRIP_GAP) - STRIP_GAP, columns * (width + STRIP_GAP) - STRIP_GAP, 3),
        255,
        np.uint8,
    )
    for r, row in enumerate(rows):
        y = top + r * (height + STRIP_GAP)
        for c, tile in enumerate(row):
            x = c * (width + STRIP_GAP)
            canvas[y : y + height, x : x + width] = tile
    image = Image.fromarray(canvas)
    if title:
        ImageDraw.Draw(image).text((2, 2), title, fill=(0, 0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


def write_two_stream_overlays(
    directory: str | Path,
    stem: str,
    frames: np.ndarray,
    attention: np.ndarray,
    stack_frames: np.ndarray,
    flow_attention: np.ndarray,
    *,
    title: str | None = None,
    count: int = 5,
    alpha: float = DEFAULT_ALPHA,
    colormap: str = DEFAULT_COLORMAP,
    min_tile: int = MIN_TILE,
) -> Path:
    """`<directory>/<stem>.png` with three rows, as the paper's Fig. 2 shows a two-stream model:
    `count` evenly spaced RGB frames, their RGB attention overlays (`attention` (T, h, w)), and the motion
    stream's map (`flow_attention` (1, h, w) or (h, w): one map per stack) over each RGB frame of the flow
    stack (`stack_frames` (L, H, W, 3) uint8, the frames the stack's flow was computed between).
    """
    factor = tile_factor(*frames.shape[1:3], min_tile)

    def enlarge(x: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(x, factor, axis=1), factor, axis=2) if factor > 1 else x

    frames, stack_frames = enlarge(np.asarray(frames)), enlarge(np.asarray(stack_frames))
    if stack_frames.shape[1:] != frames.shape[1:]:
        raise ValueError(f"stack frames {stack_frames.shape} and frames {frames.shape} differ in size")
    flow_map = np.asarray(flow_attention).reshape(-1, *np.shape(flow_attention)[-2:])[-1]
    indices = strip_indices(len(frames), count)
    rgb_overlays = overlay_clip(frames, attention, alpha=alpha, colormap=colormap)
    flow_maps = np.broadcast_to(flow_map, (len(stack_frames), *flow_map.shape))
    flow_overlays = overlay_clip(stack_frames, flow_maps, alpha=alpha, colormap=colormap)
    rows = [frames[indices], rgb_overlays[indices], flow_overlays]
    return save_rows(Path(directory) / f"{stem}.png", rows, title=title)
