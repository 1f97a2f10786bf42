"""TV-L1 optical flow in memory, and its 8-bit storage as the authors' flow images.

The authors' GTEA flow is TV-L1 flow saved by the dense_flow tools (docs/differences.md §6): one grayscale
JPEG per component and frame pair. This module computes the same thing without files:

- `tvl1_flow(frames)`: (T, H, W, 3) uint8 RGB (or (T, H, W) gray) -> (T - 1, H, W, 2) float32, the flow from
  frame t to frame t + 1 by OpenCV's Dual TV-L1 (`cv2.optflow.DualTVL1OpticalFlow_create()`, default
  parameters: tau 0.25, lambda 0.15, theta 0.3, 5 scales of factor 0.8, 5 warps, epsilon 0.01, 10 x 30
  iterations, median filter 5) on the grayscale frames (`cv2.COLOR_RGB2GRAY`, the dense_flow tools' BGR2GRAY
  on BGR frames).
  `iter_tvl1_flow` is the same one pair at a time, for long videos. `warp=True` gives dense_flow's *warped*
  flow (the camera motion, a homography fitted to a first flow, removed before a second flow; the variant the
  ego-rnn README names for its GTEA61 archive), from flow matches only (dense_flow adds SURF matches).
- Sign convention (tested): channel 0 is the horizontal component x, positive when the content moves to the
  right (towards larger column index); channel 1 is the vertical component y, positive when it moves down
  (towards larger row index). In formulas: frame_{t+1}(p + flow_t(p)) ~ frame_t(p), p = (x, y) in pixels.
- `quantize_flow(flow, bound)`: the dense_flow mapping v = round(255 * (f + b) / (2 b)) for -b <= f <= b,
  0 below -b, 255 above b, with b = 20 px by default (dense_flow's `build_of.py` passes 20) and round half to
  even (OpenCV's `cvRound`, numpy's `rint`). One level is 40 / 255 = 0.157 px; zero motion is 127.5 -> 128,
  so 128 means 0 <= f <= 0.157 px and 127 means -0.157 < f < 0 (not symmetric about 0).
  `dequantize_flow` is the inverse up to one level (v * 40 / 255 - 20: 128 -> +0.078 px).
  A horizontally flipped x-flow image is `255 - v` (ego-rnn's rule), which is `quantize_flow(-f)` except at
  exact ties (zero motion: 128 -> 127).
- `encode_flow_image(v)`: grayscale JPEG bytes, quality 95 (OpenCV's default, what dense_flow writes).

`python -m lsta_jax.data flow` (`lsta_jax.data.flow_extract`) writes these images for folders and videos.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import cv2
import numpy as np

DEFAULT_BOUND = 20.0  # px; the bound dense_flow's build_of.py passes (docs/differences.md §6)
JPEG_QUALITY = 95  # OpenCV's default JPEG quality, what dense_flow's imencode writes


def tvl1_estimator() -> cv2.optflow.DualTVL1OpticalFlow:
    """OpenCV's Dual TV-L1 with its default parameters (the ones listed in the module docstring)."""
    return cv2.optflow.DualTVL1OpticalFlow_create()


def to_gray(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 luma (0.299 R + 0.587 G + 0.114 B); (H, W) passes through."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frame.dtype}")
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[-1] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"a frame must be (H, W, 3) RGB or (H, W) gray, got shape {frame.shape}")


def resize_shorter_side(frame: np.ndarray, shorter: int | None) -> np.ndarray:
    """Resize (bilinear, aspect kept, longer side int(shorter * long / short)) so the shorter side is
    `shorter`; None or an already matching frame passes through."""
    if not shorter:
        return frame
    h, w = frame.shape[:2]
    if min(h, w) == shorter:
        return frame
    size = (shorter, int(shorter * h / w)) if w < h else (int(shorter * w / h), shorter)
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)


def camera_homography(previous: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """The 3x3 homography H (previous frame -> next frame) of the dominant (camera) motion in `flow`.

    The matches are the previous frame's corners (`goodFeaturesToTrack`: at most 1000, quality 0.001, 3 px
    apart) and the same points moved by the flow at their rounded position; H is fitted by RANSAC (1 px) and
    used only with more than 50 matches and more than 25 inliers, else the identity (dense_flow's warp rule;
    dense_flow also adds SURF matches, which the pip OpenCV lacks: SURF is patented and left out).
    """
    corners = cv2.goodFeaturesToTrack(previous, 1000, 0.001, 3)
    if corners is None or len(corners) <= 50:
        return np.eye(3)
    h, w = previous.shape
    xy = np.rint(corners.reshape(-1, 2)).astype(np.int64)
    xy = np.clip(xy, 0, [w - 1, h - 1])
    moved = xy + flow[xy[:, 1], xy[:, 0]]
    homography, inliers = cv2.findHomography(xy.astype(np.float32), moved.astype(np.float32), cv2.RANSAC, 1.0)
    if homography is None or int(inliers.sum()) <= 25:
        return np.eye(3)
    return homography


def warp_to_previous(previous: np.ndarray, frame: np.ndarray, homography: np.ndarray, margin: int = 5):
    """`frame` resampled at H p for every pixel p (bilinear), so that the camera motion H is undone; pixels
    whose source H p falls outside the frame less a `margin` keep the previous frame's value (no motion)."""
    h, w = frame.shape
    warped = cv2.warpPerspective(frame, homography, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    ys, xs = np.mgrid[0:h, 0:w]
    source = np.stack([xs, ys, np.ones_like(xs)], -1).reshape(-1, 3) @ np.asarray(homography, np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        sx, sy = source[:, 0] / source[:, 2], source[:, 1] / source[:, 2]
    inside = (sx > margin) & (sx < w - 1 - margin) & (sy > margin) & (sy < h - 1 - margin)
    return np.where(inside.reshape(h, w), warped, previous)


def iter_tvl1_flow(
    frames: Iterable[np.ndarray], resize_shorter: int | None = None, warp: bool = False
) -> Iterator[np.ndarray]:
    """Flow of each consecutive pair of `frames` (uint8 RGB or gray), one (H, W, 2) float32 array at a time.

    With `resize_shorter`, frames are first resized so their shorter side has that many pixels (the flow is
    then in pixels of the resized frames, as with the dense_flow tools' new width/height). With `warp`, the
    *warped* flow of dense_flow's warp tool (the variant named for the authors' GTEA61 archive): the flow is
    computed, the camera motion fitted to it as a homography (`camera_homography`), the next frame warped
    back by it (`warp_to_previous`) and the flow computed again: what remains is the motion relative to the
    scene (a second TV-L1 pass; it converges fast on the aligned pair).
    """
    estimator = tvl1_estimator()
    previous = None
    for frame in frames:
        gray = resize_shorter_side(to_gray(frame), resize_shorter)
        if previous is not None:
            if gray.shape != previous.shape:
                raise ValueError(f"frame size changed from {previous.shape} to {gray.shape}")
            flow = estimator.calc(previous, gray, None)
            if warp:
                aligned = warp_to_previous(previous, gray, camera_homography(previous, flow))
                flow = estimator.calc(previous, aligned, None)
            yield flow
        previous = gray


def tvl1_flow(frames: np.ndarray, resize_shorter: int | None = None, warp: bool = False) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB or (T, H, W) gray frames -> (T - 1, H, W, 2) float32 TV-L1 flow
    (channel 0: x, + = rightwards; channel 1: y, + = downwards; see the module docstring and
    `iter_tvl1_flow` for `resize_shorter` and `warp`)."""
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or len(frames) < 2:
        raise ValueError(f"tvl1_flow needs (T >= 2, H, W[, 3]) frames, got shape {frames.shape}")
    flows = list(iter_tvl1_flow(frames, resize_shorter, warp))
    return np.stack(flows).astype(np.float32, copy=False)


def _check_bound(bound: float) -> float:
    if not bound > 0:
        raise ValueError(f"the flow bound must be > 0 px, got {bound}")
    return float(bound)


def quantize_flow(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Flow in px -> uint8 images: clip to [-bound, bound], map linearly to [0, 255], round half to even.

    This is dense_flow's `CAST` (`cvRound(255 * (v + b) / (2 b))`, computed in double); 0 px -> 128.
    """
    b = _check_bound(bound)
    f = np.clip(np.asarray(flow, np.float64), -b, b)
    return np.rint(255.0 * (f + b) / (2.0 * b)).astype(np.uint8)


def dequantize_flow(values: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """uint8 flow images -> flow in px: v * 2 b / 255 - b (float32); the inverse of `quantize_flow` up to
    one level (2 b / 255 px) inside [-bound, bound]."""
    b = _check_bound(bound)
    return (np.asarray(values, np.float64) * (2.0 * b) / 255.0 - b).astype(np.float32)


def encode_flow_image(values: np.ndarray) -> bytes:
    """(H, W) uint8 -> grayscale JPEG bytes at quality 95."""
    values = np.asarray(values)
    if values.dtype != np.uint8 or values.ndim != 2:
        raise ValueError(f"a flow image must be (H, W) uint8, got {values.dtype} {values.shape}")
    ok, data = cv2.imencode(".jpg", values, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("OpenCV could not encode the flow image as JPEG")
    return data.tobytes()
