"""Two-stream examples (modality 'rgb+flow'): frames and flow stack share one augmentation draw."""

import io

import numpy as np
import pytest
from PIL import Image

from lsta_jax.data import transforms as T
from lsta_jax.data.pipeline import ClipGeometry, eval_example, make_train_loader, train_example


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def element(num: int = 10, height: int = 30, width: int = 40) -> dict:
    """Frames whose R = G = B = pattern_k, flow_x_k = flow_y_k = pattern_k (k = 1..num): any spatial
    misalignment between the streams shows up as a difference between a frame channel and a flow image."""
    rng = np.random.default_rng(0)
    patterns = [rng.integers(0, 256, (height, width), dtype=np.uint8) for _ in range(num)]
    return {
        "frames": [png(np.repeat(p[..., None], 3, -1)) for p in patterns],
        "flow_x": [png(p) for p in patterns[:-1]],  # N - 1 flow images, as dense_flow writes
        "flow_y": [png(p) for p in patterns[:-1]],
        "label": 3,
        "name": b"clip",
    }


def test_the_draws_cover_flips_and_several_stack_starts():
    draws = [np.random.default_rng(seed) for seed in range(6)]
    flips = {T.draw_train_params(r).flip for r in draws}
    starts = {T.flow_train_start(9, r) for r in draws}
    assert flips == {True, False} and len(starts) > 1


def undo_rgb(clip: np.ndarray) -> np.ndarray:
    return np.round((clip * np.float32(T.IMAGENET_STD) + np.float32(T.IMAGENET_MEAN)) * 255)


def undo_flow(flow: np.ndarray) -> np.ndarray:
    return np.round((flow * np.float32(T.FLOW_STD) + np.float32(T.FLOW_MEAN)) * 255)


def same(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to the float rounding of the two normalisations (1 grey level); a misaligned crop of the
    random patterns differs by tens of levels."""
    np.testing.assert_allclose(a, b, atol=1.0, rtol=0)


@pytest.mark.parametrize("seed", range(6))
def test_train_example_shares_the_draw_and_starts_the_stack_at_random(seed):
    g = ClipGeometry(num_frames=10, crop_size=16, resize_shorter=20, modality="rgb+flow")
    rng = np.random.default_rng(seed)
    out = train_example(element(), rng, g)
    assert out["clip"].shape == (10, 16, 16, 3) and out["flow"].shape == (16, 16, 10)
    assert out["label"] == 3
    # replay the draw: flip/scale/position first, then the stack start s ~ randint(1, N - 5)
    # (docs/differences.md §4.2)
    replay = np.random.default_rng(seed)
    draw = T.draw_train_params(replay)
    start = T.flow_train_start(9, replay)
    frames, flow = undo_rgb(out["clip"])[..., 0], undo_flow(out["flow"])
    for j in range(5):  # stack frame j is flow image start + j, i.e. RGB frame start + j (all 10 sampled)
        y = flow[..., 2 * j + 1]
        x = flow[..., 2 * j]
        same(y, frames[start - 1 + j])
        # horizontal flip inverts x-flow (v -> 255 - v), y-flow is only flipped
        same(x, 255 - y if draw.flip else y)


def test_eval_example_takes_the_centre_stack_and_centre_crop():
    g = ClipGeometry(num_frames=10, crop_size=16, resize_shorter=20, modality="rgb+flow")
    out = eval_example(element(), g)
    start = T.flow_eval_start(9)  # ceil((9 - 5) / 2) = 2
    frames, flow = undo_rgb(out["clip"])[..., 0], undo_flow(out["flow"])
    for j in range(5):
        same(flow[..., 2 * j], frames[start - 1 + j])
        same(flow[..., 2 * j + 1], frames[start - 1 + j])


def test_loader_batches_both_streams_and_rejects_unknown_modality():
    source = [element() for _ in range(4)]
    geometry = dict(num_frames=3, crop_size=16, resize_shorter=20, process_index=0, process_count=1)
    loader = make_train_loader(
        source, global_batch_size=2, seed=0, modality="rgb+flow", worker_count=0, **geometry
    )
    batch = next(iter(loader))
    assert batch["clip"].shape == (2, 3, 16, 16, 3) and batch["flow"].shape == (2, 16, 16, 10)
    with pytest.raises(ValueError, match="unknown modality 'depth'"):
        make_train_loader(source, global_batch_size=2, seed=0, modality="depth", **geometry)
