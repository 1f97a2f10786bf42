"""grain loaders: shards of two simulated processes, exact resume, eval padding + mask, augmentation."""

import itertools

import numpy as np
import pytest
from PIL import Image

import lsta_jax.data as D
from lsta_jax.data.clip_io import decode_image

GEOMETRY = dict(num_frames=4, crop_size=40, resize_shorter=48)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    builder = D.build("synthetic_ego", root, num_train=24, num_test=10, num_frames=6, frame_size=48, seed=1)
    return builder.as_data_source("train"), builder.as_data_source("test")


def take(loader, n, state=None):
    it = iter(loader)
    if state is not None:
        it.set_state(state)
    return [next(it) for _ in range(n)], it


def test_two_processes_get_disjoint_shards_covering_the_data(sources):
    train, _ = sources
    seen = []
    for process in (0, 1):
        loader = D.make_train_loader(
            train, global_batch_size=4, seed=0, **GEOMETRY, process_index=process, process_count=2,
            worker_count=0, num_epochs=1, with_index=True,
        )  # fmt: skip
        batches = list(loader)
        assert all(b["clip"].shape == (2, 4, 40, 40, 3) and b["label"].dtype == np.int32 for b in batches)
        seen.append(np.concatenate([b["index"] for b in batches]))
    assert not set(seen[0]) & set(seen[1])
    # 12 records per process, local batch 2: 6 batches each, together every record once
    assert sorted(np.concatenate(seen)) == list(range(24))


def test_labels_match_records_and_unshuffled_order_is_the_builders(sources):
    train, _ = sources
    loader = D.make_train_loader(
        train, global_batch_size=4, seed=0, shuffle=False, **GEOMETRY, process_index=0, process_count=1,
        worker_count=0, num_epochs=1, with_index=True,
    )  # fmt: skip
    batches = list(loader)
    order = np.concatenate([b["index"] for b in batches])
    assert order.tolist() == list(range(24))
    labels = np.concatenate([b["label"] for b in batches])
    assert labels.tolist() == [train[i]["label"] for i in range(24)]
    for key in ("verb", "noun"):  # the multi-task labels travel with the clip
        values = np.concatenate([b[key] for b in batches])
        assert values.dtype == np.int32 and values.tolist() == [train[i][key] for i in range(24)]


def test_seeded_shuffle(sources):
    train, _ = sources

    def order(seed):
        loader = D.make_train_loader(
            train, global_batch_size=4, seed=seed, **GEOMETRY, process_index=0, process_count=1,
            worker_count=0,
            with_index=True,
        )  # fmt: skip
        return np.concatenate([b["index"] for b in take(loader, 12)[0]])

    a, b, c = order(0), order(0), order(1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a[:24].tolist() != list(range(24)) and sorted(a[:24]) == list(range(24))  # a permutation
    assert not np.array_equal(a[:24], a[24:]) and sorted(a[24:]) == list(range(24))  # another one next epoch


def test_iterator_resumes_exactly(sources):
    train, _ = sources
    kwargs = dict(global_batch_size=4, seed=5, **GEOMETRY, process_index=1, process_count=2, worker_count=0)
    loader = D.make_train_loader(train, **kwargs)
    first, it = take(loader, 3)
    state = it.get_state()
    expected = [next(it) for _ in range(7)]  # crosses an epoch boundary (6 batches per epoch)
    resumed, _ = take(D.make_train_loader(train, **kwargs), 7, state)
    for a, b in zip(expected, resumed, strict=True):
        assert np.array_equal(a["clip"], b["clip"]) and np.array_equal(a["label"], b["label"])


def reference_train_candidates(frames, crop, shorter):
    """All 2 x 4 x 5 outcomes of the reference's train transform (flip, then the TSN corner crop with its
    'tr'/'bl' quirks, then resize), written out independently; uint8 (T, crop, crop, 3) each."""
    out = []
    for flip, scale, position in itertools.product(
        (False, True), (1, 0.875, 0.75, 0.65625), "c tl tr bl br".split()
    ):
        clip = []
        for img in frames:
            w, h = img.size
            assert min(w, h) == shorter
            if flip:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            s = int(min(w, h) * scale)
            box = {
                "c": (w // 2 - s // 2, h // 2 - s // 2, w // 2 + s // 2, h // 2 + s // 2),
                "tl": (0, 0, s, s),
                "tr": (w - s, 1, w, s),
                "bl": (1, h - s, s, h),
                "br": (w - s, h - s, w, h),
            }[position]
            clip.append(np.asarray(img.crop(box).resize((crop, crop), Image.BILINEAR)))
        out.append(np.stack(clip))
    return out


def test_train_clip_is_one_reference_draw_applied_to_every_frame(sources):
    train, _ = sources
    loader = D.make_train_loader(
        train, global_batch_size=4, seed=2, **GEOMETRY, process_index=0, process_count=1, worker_count=0,
        with_index=True,
    )  # fmt: skip
    batches, _ = take(loader, 2)
    mean, std = np.float32([0.485, 0.456, 0.406]), np.float32([0.229, 0.224, 0.225])
    hits = set()
    for batch in batches:
        for clip, index in zip(batch["clip"], batch["index"], strict=True):
            record = train[int(index)]
            frames = [decode_image(record["frames"][k - 1]) for k in (1, 2, 4, 6)]  # floor(linspace(1, 6, 4))
            candidates = reference_train_candidates(frames, 40, 48)
            matches = [
                i
                for i, c in enumerate(candidates)
                if np.array_equal(clip, (c.astype(np.float32) / np.float32(255) - mean) / std)
            ]
            assert len(matches) >= 1, f"record {index}: no single draw explains the clip"
            hits.add(matches[0])
    assert len(hits) > 2  # the draws vary between clips


def test_eval_padding_and_mask_count_each_example_once(sources):
    _, test = sources  # 10 examples, global batch 4 -> 3 global batches, 2 padded slots
    counted = []
    for process in (0, 1):
        loader = D.make_eval_loader(
            test, global_batch_size=4, **GEOMETRY, process_index=process, process_count=2, worker_count=0,
            with_index=True,
        )  # fmt: skip
        batches = list(loader)
        assert len(batches) == D.num_eval_batches(len(test), 4) == 3
        for b in batches:
            assert b["clip"].shape == (2, 4, 40, 40, 3) and b["mask"].dtype == np.bool_
            counted += b["index"][b["mask"]].tolist()
            np.testing.assert_array_equal(
                b["label"][b["mask"]], [test[int(i)]["label"] for i in b["index"][b["mask"]]]
            )
        assert len(list(loader)) == 3  # a fresh pass each time
    assert sorted(counted) == list(range(10))


def test_eval_clip_is_the_centre_crop(sources):
    _, test = sources
    loader = D.make_eval_loader(
        test, global_batch_size=2, **GEOMETRY, process_count=1, process_index=0, worker_count=0
    )
    batch = next(iter(loader))
    record = test[0]
    crops = [np.asarray(decode_image(record["frames"][k - 1]).crop((4, 4, 44, 44))) for k in (1, 2, 4, 6)]
    expected = (
        np.stack(crops).astype(np.float32) / np.float32(255) - np.float32([0.485, 0.456, 0.406])
    ) / np.float32([0.229, 0.224, 0.225])
    assert np.array_equal(batch["clip"][0], expected)


def test_bad_batch_sizes(sources):
    train, _ = sources
    with pytest.raises(ValueError, match="not divisible by 3 processes"):
        D.make_train_loader(train, global_batch_size=4, seed=0, process_index=0, process_count=3)
    with pytest.raises(ValueError, match="fewer than one local batch"):
        D.make_train_loader(train, global_batch_size=64, seed=0, process_index=0, process_count=1)


@pytest.mark.slow
def test_worker_processes_are_deterministic_and_resume(sources):
    """With workers, grain forms batches inside each worker (records dealt round-robin), so batches differ
    from worker_count=0 but are the same on every run with the same worker count, and resume exactly."""
    train, _ = sources
    kwargs = dict(global_batch_size=4, seed=3, **GEOMETRY, process_index=0, process_count=1, with_index=True)
    loader = D.make_train_loader(train, worker_count=2, **kwargs)
    first, it = take(loader, 2)
    state = it.get_state()
    rest = [next(it) for _ in range(4)]
    epoch = np.concatenate([b["index"] for b in first + rest])
    assert sorted(epoch) == list(range(24))  # one epoch of 6 batches covers the split
    again, _ = take(D.make_train_loader(train, worker_count=2, **kwargs), 6)
    resumed, _ = take(D.make_train_loader(train, worker_count=2, **kwargs), 4, state)
    for a, b in zip(first + rest, again, strict=True):
        assert np.array_equal(a["clip"], b["clip"])
    for a, b in zip(rest, resumed, strict=True):
        assert np.array_equal(a["clip"], b["clip"])
    # eval with workers: whole local batches in every worker, each example counted once
    _, test = sources
    counted, sizes = [], set()
    for process in (0, 1):
        loader = D.make_eval_loader(
            test, global_batch_size=4, **GEOMETRY, process_index=process, process_count=2, worker_count=2,
            with_index=True,
        )  # fmt: skip
        batches = list(loader)
        assert len(batches) == D.num_eval_batches(len(test), 4, worker_count=2) == 4
        sizes |= {len(b["label"]) for b in batches}
        counted += [i for b in batches for i in b["index"][b["mask"]].tolist()]
    assert sizes == {2} and sorted(counted) == list(range(10))
