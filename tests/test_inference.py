"""`lsta_jax.inference`: the one jitted, padded, sharded forward and the streaming batcher.

Expected values come from a separately jitted `model.apply` on unpadded batches, never from the code under
test. conftest.py gives the process 4 simulated CPU devices, so the sharding is real.
"""

import itertools

import jax
import numpy as np
import pytest
from inference_fixtures import BATCH_SIZE, NUM_FRAMES, SIZE, reference_apply, small_model
from jax.sharding import PartitionSpec

from lsta_jax import inference


def random_clips(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, NUM_FRAMES, SIZE, SIZE, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def engine():
    model, variables = small_model()
    return inference.BatchedForward(model, variables, BATCH_SIZE, return_frame_features=True)


def test_batches_are_sharded_over_all_local_devices(engine):
    devices = jax.local_devices()
    assert engine.num_devices == len(devices) == 4
    assert engine.batch_size % len(devices) == 0
    model, variables = small_model()
    # a requested batch size that is not a multiple of the device count is rounded up
    assert inference.BatchedForward(model, variables, 5).batch_size == 8
    outputs = engine.submit(random_clips(2))
    assert outputs["logits"].sharding.spec == PartitionSpec("batch")
    assert {shard.device for shard in outputs["logits"].addressable_shards} == set(devices)


def test_padding_does_not_change_results_and_compiles_once(engine):
    clips = random_clips(7, seed=1)  # batches of 4 + 3: the second one is padded with a zero clip
    expected = reference_apply()(small_model()[1], clips)  # one unpadded batch of 7
    before = inference.compile_count()
    first = engine(clips[:4])
    second = engine(clips[4:])
    third = engine(clips[:1])  # padded with 3 zero clips
    assert inference.compile_count() - before <= 1  # 0 when another test compiled this shape already
    for key in ("logits", "features", "attention", "frame_features"):
        got = np.concatenate([first[key], second[key]])
        np.testing.assert_allclose(got, expected[key], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(third[key], expected[key][:1], rtol=1e-5, atol=1e-5)
    probabilities = np.exp(expected["logits"]) / np.exp(expected["logits"]).sum(-1, keepdims=True)
    got = np.concatenate([first["probabilities"], second["probabilities"]])
    np.testing.assert_allclose(got, probabilities, rtol=1e-5, atol=1e-6)
    assert second["attention"].shape == (3, NUM_FRAMES, *expected["attention"].shape[2:])


def test_one_compile_per_batch_shape_for_a_new_model():
    # a model config no other test uses, so this counts its compiles from zero
    model, variables = small_model()
    other = model.clone(num_classes=3)
    variables = jax.tree_util.tree_map(np.copy, variables)
    variables["params"]["fc"] = {"kernel": variables["params"]["fc"]["kernel"][:, :3], "bias": np.zeros(3)}
    engine = inference.BatchedForward(other, variables, BATCH_SIZE)
    before = inference.compile_count()
    outcomes = list(inference.stream(engine, range(9), lambda i: random_clips(1, seed=i)[0], workers=2))
    assert [o.index for o in outcomes] == list(range(9)) and all(o.ok for o in outcomes)
    assert inference.compile_count() - before == 1  # batches of 4, 4 and a padded 1: one compile


def test_stream_keeps_order_reports_failures_and_checks_shapes(engine):
    clips = random_clips(6, seed=2)

    def load(item):
        if item == "broken":
            raise OSError("cannot decode broken")
        if item == "odd":
            return np.zeros((NUM_FRAMES + 1, SIZE, SIZE, 3), np.float32)
        return clips[item]

    items = [0, "broken", 1, 2, "odd", 3, 4, 5]
    outcomes = list(inference.stream(engine, items, load, expected_shape=clips.shape[1:], keep_clips=True))
    assert [o.source for o in outcomes] == [str(item) for item in items]
    assert [o.ok for o in outcomes] == [True, False, True, True, False, True, True, True]
    assert "cannot decode broken" in outcomes[1].error
    assert "odd" in outcomes[4].error and "expected" in outcomes[4].error
    expected = reference_apply()(small_model()[1], clips)
    got = np.stack([o.outputs["logits"] for o in outcomes if o.ok])
    np.testing.assert_allclose(got, expected["logits"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(outcomes[0].clip, clips[0])  # kept for overlays on request


def test_stream_is_lazy_over_an_endless_input(engine):
    pulled = []

    def endless():
        for i in itertools.count():
            pulled.append(i)
            yield i

    clip = random_clips(1, seed=3)[0]
    outcomes = inference.stream(engine, endless(), lambda i: clip, workers=2)
    first = list(itertools.islice(outcomes, 10))
    outcomes.close()
    assert [o.index for o in first] == list(range(10))
    # bounded look-ahead: the loader window plus the batch being filled and the one in flight
    assert len(pulled) <= 10 + 2 * engine.batch_size + 2 * engine.batch_size
    assert all(o.clip is None for o in first)  # clips are dropped once they are on the devices
