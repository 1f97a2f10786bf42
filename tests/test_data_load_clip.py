"""`load_clip` vs a plain PIL + torch transcription of the reference's eval path, video input, errors."""

import math

import av
import numpy as np
import pytest
import torch
from PIL import Image

from lsta_jax.data import load_clip
from lsta_jax.data.synthetic import write_mp4

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def reference_eval_clip(paths, num_frames, size, shorter):
    """Written from the reference's rules (section 5), independently of lsta_jax.data: frames image_k for
    k = floor(linspace(1, N, T)), Scale (torchvision 0.2), CenterCrop with round, ToTensor, Normalize."""
    n = len(paths)
    out = []
    for value in np.linspace(1, n, num_frames, endpoint=True):
        img = Image.open(paths[int(math.floor(value)) - 1]).convert("RGB")
        w, h = img.size
        if not ((w <= h and w == shorter) or (h <= w and h == shorter)):
            if w < h:
                img = img.resize((shorter, int(shorter * h / w)), Image.BILINEAR)
            else:
                img = img.resize((int(shorter * w / h), shorter), Image.BILINEAR)
        w, h = img.size
        x1, y1 = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
        img = img.crop((x1, y1, x1 + size, y1 + size))
        t = torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous().float().div(255)
        for c, m, s in zip(t, MEAN, STD, strict=True):
            c.sub_(m).div_(s)
        out.append(t.permute(1, 2, 0).numpy())
    return np.stack(out)


def textured_frames(num, height, width, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(num):
        base = np.stack([(xx * 3 + t * 7) % 256, (yy * 2 + t * 5) % 256, (xx + yy + t) % 256], -1)
        frames.append(np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8))
    return np.stack(frames)


@pytest.mark.parametrize("fmt", ["jpg", "png"])
@pytest.mark.parametrize("count, height, width", [(30, 120, 161), (7, 150, 101)])
def test_frames_folder_is_bit_exact_with_the_reference(tmp_path, fmt, count, height, width):
    paths = []
    for k, frame in enumerate(textured_frames(count, height, width, seed=count), start=1):
        path = tmp_path / f"image_{k:05d}.{fmt}"
        Image.fromarray(frame).save(path, quality=90) if fmt == "jpg" else Image.fromarray(frame).save(path)
        paths.append(path)
    got = load_clip(tmp_path, num_frames=25, size=96, resize_shorter=110)
    expected = reference_eval_clip(paths, 25, 96, 110)
    assert got.dtype == np.float32 and got.shape == (25, 96, 96, 3)
    assert np.array_equal(got, expected)


def test_natural_order_of_unnumbered_names(tmp_path):
    frames = textured_frames(12, 40, 48, seed=3)
    names = [f"f{k}.png" for k in range(1, 13)]  # lexicographic order would put f10 before f2
    for name, frame in zip(names, frames, strict=True):
        Image.fromarray(frame).save(tmp_path / name)
    got = load_clip(tmp_path, num_frames=4, size=32, resize_shorter=40)
    expected = reference_eval_clip([tmp_path / n for n in names], 4, 32, 40)
    assert np.array_equal(got, expected)


def test_video_matches_its_decoded_frames(tmp_path):
    frames = textured_frames(11, 64, 80, seed=5)
    video = write_mp4(tmp_path / "clip.mp4", frames)
    decoded_dir = tmp_path / "decoded"
    decoded_dir.mkdir()
    with av.open(str(video)) as container:  # the frames as PyAV decodes them, saved losslessly
        decoded = [f.to_image() for f in container.decode(video=0)]
    assert len(decoded) == 11
    paths = []
    for k, image in enumerate(decoded, start=1):
        paths.append(decoded_dir / f"image_{k:05d}.png")
        image.save(paths[-1])
    got = load_clip(video, num_frames=6, size=48, resize_shorter=56)
    assert np.array_equal(got, reference_eval_clip(paths, 6, 48, 56))


def test_errors_name_the_file(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for k, frame in enumerate(textured_frames(6, 32, 32, seed=1), start=1):
        Image.fromarray(frame).save(folder / f"image_{k:05d}.jpg")
    (folder / "image_00004.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match="image_00004.jpg"):
        load_clip(folder, num_frames=6, size=24, resize_shorter=32)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no frames here")
    with pytest.raises(ValueError, match=r"empty.*no frames"):
        load_clip(empty)
    short = tmp_path / "short"
    short.mkdir()
    for k in (1, 2, 3):
        Image.fromarray(textured_frames(1, 32, 32, seed=k)[0]).save(short / f"image_{k:05d}.png")
    with pytest.raises(ValueError, match=r"short: has 3 frames, fewer than 5"):
        load_clip(short, num_frames=4, size=24, resize_shorter=32)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        load_clip(tmp_path / "missing.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="broken.mp4"):
        load_clip(broken)


def test_video_without_frames_says_so(tmp_path):
    video = tmp_path / "sound_only.mp4"  # a valid container whose only stream is audio
    with av.open(str(video), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        for i in range(3):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(ValueError, match=r"sound_only.mp4: the file has no video stream"):
        load_clip(video)
