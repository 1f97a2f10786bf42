"""TV-L1 flow (`lsta_jax.data.flow`) and `python -m lsta_jax.data flow` on tiny synthetic clips.

The clips are a smooth random texture seen through a window that moves by (dx, dy) px per frame, so the true
flow is known: the content moves by (-dx, -dy) when the window moves by (dx, dy).
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lsta_jax.data as D
from lsta_jax.data import flow as F
from lsta_jax.data.build import main as data_main
from lsta_jax.data.clip_io import decode_image
from lsta_jax.data.flow_extract import TMP_DIR, compute_flow
from lsta_jax.data.synthetic import write_mp4


def moving_frames(count: int, motion: tuple[int, int], height: int = 24, width: int = 32, seed: int = 0):
    """(count, H, W, 3) uint8 frames whose content moves by `motion` = (dx, dy) px per frame
    (dx > 0: to the right, dy > 0: down)."""
    dx, dy = motion
    rng = np.random.default_rng(seed)
    margin = (count + 1) * max(abs(dx), abs(dy), 1)
    big = rng.normal(size=(height + 2 * margin + 8, width + 2 * margin + 8, 3))
    # separable box blur (3 passes) -> a smooth texture TV-L1 can track at sub-pixel accuracy
    for _ in range(3):
        for axis in (0, 1):
            big = (np.roll(big, 1, axis) + big + np.roll(big, -1, axis)) / 3
    big = big[4:-4, 4:-4]
    big = np.clip(128 + 60 * big / big.std(), 0, 255).astype(np.uint8)
    frames = []
    for t in range(count):
        # content at window position p of frame t is big[margin + p - t * d]: it moves by +d per frame
        y0, x0 = margin - t * dy, margin - t * dx
        frames.append(big[y0 : y0 + height, x0 : x0 + width])
    return np.stack(frames)


def write_clip(folder, frames, suffix="png"):
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(folder / f"image_{k:05d}.{suffix}")
    return folder


def read_gray(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


@pytest.mark.parametrize("motion", [(3, -2), (-2, 1)])
def test_translated_pair_gives_the_motion_with_its_sign(motion):
    frames = moving_frames(2, motion, height=40, width=48)
    flow = F.tvl1_flow(frames)
    assert flow.shape == (1, 40, 48, 2) and flow.dtype == np.float32
    inner = flow[0, 6:-6, 6:-6]  # away from the borders, where content enters or leaves
    # channel 0 = x (+ = content moves right), channel 1 = y (+ = content moves down)
    np.testing.assert_allclose(np.median(inner.reshape(-1, 2), axis=0), motion, atol=0.1)
    assert np.mean(np.abs(inner - np.array(motion, np.float32)) < 0.5) > 0.9
    q = F.quantize_flow(inner)
    assert (np.median(q[..., 0]) > 128) == (motion[0] > 0) and (np.median(q[..., 1]) > 128) == (motion[1] > 0)
    # (T, H, W) gray frames are used as they are: the same flow as the RGB frames with R = G = B
    gray = frames[..., 1]
    np.testing.assert_array_equal(F.tvl1_flow(gray), F.tvl1_flow(np.repeat(gray[..., None], 3, -1)))


def test_resize_shorter_scales_the_frames_and_the_motion(tmp_path):
    frames = moving_frames(2, (4, -2), height=48, width=64)
    flow = F.tvl1_flow(frames, resize_shorter=24)
    assert flow.shape == (1, 24, 32, 2)  # shorter side 24, aspect kept
    np.testing.assert_allclose(np.median(flow[0, 4:-4, 4:-4].reshape(-1, 2), 0), (2, -1), atol=0.15)
    write_clip(tmp_path / "clip", frames)
    compute_flow(tmp_path / "clip", tmp_path / "out", workers=1, resize_shorter=24, progress=False)
    assert read_gray(tmp_path / "out" / "flow_y" / "flow_y_00001.jpg").shape == (24, 32)


def camera_and_object(camera=(2, 1), extra=(0, 3)):
    """Two frames: the whole scene moves by `camera` (the wearer's head) and a 20x20 textured object on it
    moves by `camera` + `extra`."""
    frames = moving_frames(2, camera, height=64, width=80, seed=1)
    patch = moving_frames(1, (0, 0), height=20, width=20, seed=2)[0]
    y, x = 20, 30
    frames[0, y : y + 20, x : x + 20] = patch
    dy, dx = y + camera[1] + extra[1], x + camera[0] + extra[0]
    frames[1, dy : dy + 20, dx : dx + 20] = patch
    return frames


def test_warped_flow_removes_the_camera_motion(tmp_path):
    frames = camera_and_object()
    background, obj = (slice(6, 18), slice(6, -6)), (slice(27, 38), slice(36, 46))
    plain, warped = F.tvl1_flow(frames)[0], F.tvl1_flow(frames, warp=True)[0]
    np.testing.assert_allclose(np.median(plain[background].reshape(-1, 2), 0), (2, 1), atol=0.1)
    np.testing.assert_allclose(np.median(plain[obj].reshape(-1, 2), 0), (2, 4), atol=0.2)
    np.testing.assert_allclose(np.median(warped[background].reshape(-1, 2), 0), (0, 0), atol=0.1)
    np.testing.assert_allclose(np.median(warped[obj].reshape(-1, 2), 0), (0, 3), atol=0.2)
    # the fitted homography is the camera's translation
    h = F.camera_homography(frames[0, ..., 1], F.tvl1_flow(frames[..., 1])[0])
    np.testing.assert_allclose(h / h[2, 2], [[1, 0, 2], [0, 1, 1], [0, 0, 1]], atol=0.05)
    # the command line's --warp writes the warped flow
    write_clip(tmp_path / "clip", frames)
    argv = ["flow", "--frames", str(tmp_path / "clip"), "--output", str(tmp_path / "out"), "--workers", "1"]
    assert data_main([*argv, "--warp", "--no-progress"]) == 0
    image = read_gray(tmp_path / "out" / "flow_x" / "flow_x_00001.jpg")
    assert abs(np.median(image[background]) - 128) <= 1


def test_quantize_flow_is_dense_flows_mapping():
    f = np.array([-25.0, -20.0, -16.0, -10.0, -8.0, -1.0, -0.1, 0.0, 0.1, 1.0, 8.0, 10.0, 19.99, 20.0, 30.0])
    # v = round(255 (f + 20) / 40), clipped, half to even: -16 -> 25.5 -> 26, -8 -> 76.5 -> 76,
    # 0 -> 127.5 -> 128, 8 -> 178.5 -> 178, 10 -> 191.25 -> 191, -10 -> 63.75 -> 64, 1 -> 133.875 -> 134,
    # -0.1 -> 126.86 -> 127, 0.1 -> 128.14 -> 128
    expected = [0, 0, 26, 64, 76, 121, 127, 128, 128, 134, 178, 191, 255, 255, 255]
    got = F.quantize_flow(f.astype(np.float32))
    assert got.dtype == np.uint8 and got.tolist() == expected
    assert F.quantize_flow(np.array([0.0, 3.0, -15.0]), bound=15).tolist() == [128, 153, 0]  # 255 * 18 / 30
    np.testing.assert_allclose(F.dequantize_flow(np.array([0, 128, 255], np.uint8)), [-20, 20 / 255, 20])
    grid = np.linspace(-20, 20, 1001)
    assert np.abs(F.dequantize_flow(F.quantize_flow(grid)) - grid).max() <= 20 / 255 + 1e-6
    # ego-rnn's flip of an x-flow image, 255 - v, is the quantised negated flow except at exact ties (0 px)
    off_tie = grid[np.abs(255 * (grid + 20) / 40 % 1 - 0.5) > 1e-6]
    assert np.array_equal(255 - F.quantize_flow(off_tie), F.quantize_flow(-off_tie))
    with pytest.raises(ValueError, match="bound must be > 0"):
        F.quantize_flow(f, bound=0)


def test_flow_images_decode_to_the_flow(tmp_path):
    frames = moving_frames(3, (2, 1))
    clip = write_clip(tmp_path / "clip", frames)
    summary = compute_flow(clip, tmp_path / "out", workers=1, progress=False)
    assert summary.written == [Path(".")] and summary.flow_frames == 2  # a single clip folder: rel '.'
    flow = F.tvl1_flow(frames)
    for k in (1, 2):
        for c, axis in enumerate("xy"):
            image = read_gray(tmp_path / "out" / f"flow_{axis}" / f"flow_{axis}_{k:05d}.jpg")
            # JPEG at quality 95 of a smooth image: within a few levels of the quantised flow
            diff = image.astype(int) - F.quantize_flow(flow[k - 1, ..., c]).astype(int)
            assert np.abs(diff).mean() < 1.5
    assert not (tmp_path / "out" / TMP_DIR).exists()


def test_cli_on_a_gtea_tree_feeds_the_builder(tmp_path, capsys):
    raw = tmp_path / "gtea"
    motions = {"S1": (1, 0), "S2": (-1, 0), "S3": (0, 1), "S4": (1, 1)}
    for s, (subject, motion) in enumerate(motions.items()):
        inst = write_clip(
            raw / "frames" / subject / "take_bread" / "take_bread_1", moving_frames(5, motion, seed=s)
        )
        (inst / "action_label.txt").write_text("7\n")
    code = data_main(["flow", "--frames", str(raw / "frames"), "--output", str(raw), "--workers", "1"])
    captured = capsys.readouterr()
    assert code == 0 and "4 clips written (16 flow frames" in captured.out
    assert "4/4" in captured.err and "frames/s]" in captured.err  # the progress bar
    for subject in motions:
        rel = f"{subject}/take_bread/take_bread_1"
        assert sorted(p.name for p in (raw / "flow_x" / rel).iterdir()) == [
            "action_label.txt",
            *(f"flow_x_{k:05d}.jpg" for k in range(1, 5)),
        ]
        assert sorted(p.name for p in (raw / "flow_y" / rel).iterdir()) == [
            f"flow_y_{k:05d}.jpg" for k in (1, 2, 3, 4)
        ]
    builder = D.build("gtea61", tmp_path / "tfds", manual_dir=raw, config="split2")
    records = [*builder.as_data_source("train"), *builder.as_data_source("test")]
    assert len(records) == 4
    for record in records:
        motion = motions[record["name"].decode().split("/")[0]]
        assert record["num_frames"] == 5 and len(record["flow_x"]) == len(record["flow_y"]) == 4
        assert record["verb_label"] == 7  # the copied action_label.txt, read from flow_x
        for key, m in zip(("flow_x", "flow_y"), motion, strict=True):
            image = np.asarray(decode_image(record[key][0], "L"), np.float64)
            centre = np.median(image[40:-40, 40:-40])
            assert (centre > 132) if m > 0 else (centre < 124) if m < 0 else (124 <= centre <= 132)


def test_resume_skips_finished_clips_and_redoes_interrupted_ones(tmp_path, capsys):
    frames = tmp_path / "frames"
    for name in ("a", "b", "c"):
        write_clip(frames / name, moving_frames(3, (1, 0), seed=ord(name)))
    out = tmp_path / "out"
    compute_flow(frames, out, workers=1, progress=False)
    marker = out / "flow_x" / "a" / "flow_x_00001.jpg"
    marker.write_bytes(b"kept")  # a finished clip is not touched again
    leftover = out / TMP_DIR / "b" / "flow_x"
    leftover.mkdir(parents=True)  # an interrupted run's temporary folder of b ...
    (leftover / "flow_x_00009.jpg").write_bytes(b"junk")
    for axis in "xy":  # ... whose final folders were never renamed into place
        for p in (out / f"flow_{axis}" / "b").iterdir():
            p.unlink()
        (out / f"flow_{axis}" / "b").rmdir()
    (out / "flow_x" / "c" / "flow_x_00002.jpg").unlink()  # c: interrupted between the two renames
    for p in (out / "flow_x" / "c").iterdir():
        p.unlink()
    (out / "flow_x" / "c").rmdir()
    assert data_main(["flow", "--frames", str(frames), "--output", str(out), "--workers", "1"]) == 0
    assert "2 clips written (4 flow frames" in capsys.readouterr().out
    assert marker.read_bytes() == b"kept"
    for name in ("b", "c"):
        for axis in "xy":
            assert sorted(p.name for p in (out / f"flow_{axis}" / name).iterdir()) == [
                f"flow_{axis}_00001.jpg",
                f"flow_{axis}_00002.jpg",
            ]
    assert not (out / TMP_DIR).exists()
    assert data_main(["flow", "--frames", str(frames), "--output", str(out), "--workers", "1"]) == 0
    assert "0 clips written (0 flow frames" in capsys.readouterr().out  # all three finished


def test_an_interrupted_run_leaves_no_finished_looking_clip(tmp_path, monkeypatch):
    clip = write_clip(tmp_path / "frames" / "a", moving_frames(4, (1, 0)))
    out = tmp_path / "out"
    encode, calls = F.encode_flow_image, []

    def interrupted(values):
        calls.append(1)
        if len(calls) == 4:  # Ctrl-C in the middle of the clip (after 1.5 of its 3 frame pairs)
            raise KeyboardInterrupt
        return encode(values)

    monkeypatch.setattr(F, "encode_flow_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compute_flow(clip.parent, out, workers=1, progress=False)
    assert not (out / "flow_x" / "a").exists() and not (out / "flow_y" / "a").exists()
    assert (out / TMP_DIR / "a" / "flow_x" / "flow_x_00001.jpg").is_file()  # the partial work stays hidden
    monkeypatch.setattr(F, "encode_flow_image", encode)
    summary = compute_flow(clip.parent, out, workers=1, progress=False)
    assert summary.written == [Path("a")] and summary.flow_frames == 3
    assert len(list((out / "flow_x" / "a").iterdir())) == 3 and not (out / TMP_DIR).exists()


def test_bad_clips_are_reported_by_name_and_skipped(tmp_path, capsys):
    tree = tmp_path / "videos"
    write_clip(tree / "good", moving_frames(3, (1, 0)))
    bad = write_clip(tree / "bad_frame", moving_frames(3, (1, 0)))
    (bad / "image_00002.png").write_bytes(b"not an image")
    (tree / "kitchen").mkdir()
    write_mp4(tree / "kitchen" / "v1.mp4", moving_frames(4, (2, 0)))
    (tree / "broken.mp4").write_bytes(b"\x00" * 64)
    write_clip(tree / "single", moving_frames(1, (0, 0)))
    out = tmp_path / "out"
    assert data_main(["flow", "--frames", str(tree), "--output", str(out), "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert "2 clips written" in captured.out and "3 failed" in captured.out
    assert f"bad_frame: {bad / 'image_00002.png'}: cannot read image" in captured.err
    assert f"broken: {tree / 'broken.mp4'}: cannot decode video" in captured.err
    assert "single: " in captured.err and "fewer than 2 frames" in captured.err
    assert sorted(
        p.relative_to(out / "flow_x").as_posix() for p in (out / "flow_x").rglob("flow_x_*.jpg")
    ) == [
        "good/flow_x_00001.jpg",
        "good/flow_x_00002.jpg",
        *(f"kitchen/v1/flow_x_{k:05d}.jpg" for k in (1, 2, 3)),
    ]
    # a video's content moving right gives x-flow above 128
    assert np.median(read_gray(out / "flow_x" / "kitchen" / "v1" / "flow_x_00002.jpg")[6:-6, 6:-6]) > 135
    assert not (out / "flow_x" / "bad_frame").exists() and not (out / TMP_DIR).exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--frames", "{tmp}/nowhere"], "nowhere: no such folder or video"),
        (["--frames", "{tmp}/note.txt"], "note.txt: not a video file"),
        (["--frames", "{tmp}/empty"], "empty: no clips found"),
        (["--frames", "{tmp}/twins"], "would both write flow_x/clip; rename or move one"),
        (["--frames", "{tmp}/clip", "--workers", "0"], "--workers must be >= 1"),
        (["--frames", "{tmp}/clip", "--bound", "-1"], "bound must be > 0"),
        (["--frames", "{tmp}/clip", "--output", "{tmp}/note.txt"], "exists and is not a folder"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, args, message):
    (tmp_path / "note.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    write_clip(tmp_path / "clip", moving_frames(2, (1, 0)))
    write_clip(tmp_path / "twins" / "clip", moving_frames(2, (1, 0)))
    (tmp_path / "twins" / "clip.mp4").write_bytes(b"")  # the same relative path as the folder
    argv = ["flow", "--output", str(tmp_path / "out"), *(a.format(tmp=tmp_path) for a in args)]
    assert data_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_process_pool_gives_the_same_images(tmp_path):
    frames = tmp_path / "frames"
    for name in ("a", "b"):
        write_clip(frames / name, moving_frames(3, (1, -1), seed=len(name) + ord(name)))
    one = compute_flow(frames, tmp_path / "one", workers=1, progress=False)
    two = compute_flow(frames, tmp_path / "two", workers=2, progress=False)
    assert sorted(one.written) == sorted(two.written) and two.flow_frames == 4
    for path in sorted((tmp_path / "one").rglob("*.jpg")):
        assert path.read_bytes() == (tmp_path / "two" / path.relative_to(tmp_path / "one")).read_bytes()


def test_a_dataset_root_given_as_frames_gets_a_note(tmp_path, capsys):
    write_clip(tmp_path / "data" / "frames" / "c1", moving_frames(2, (1, 0)))
    argv = ["flow", "--frames", str(tmp_path / "data"), "--output", str(tmp_path / "data"), "--no-progress"]
    assert data_main(argv) == 0
    assert f"the builders expect --frames {tmp_path / 'data' / 'frames'}" in capsys.readouterr().err
    assert (tmp_path / "data" / "flow_x" / "frames" / "c1" / "flow_x_00001.jpg").is_file()  # as asked, though
