"""The ego-rnn RGB baseline (docs/differences.md §4.5): model vs our torch transcription; conversion."""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lsta_jax.compare import max_differences  # noqa: E402
from lsta_jax.convert import ConversionError  # noqa: E402
from lsta_jax.convert.ego_rnn import convert_state_dict  # noqa: E402
from lsta_jax.models import create_model  # noqa: E402
from lsta_jax.reference.torch_ego_rnn import TorchEgoRNNModel  # noqa: E402
from lsta_jax.reference.torch_resnet import randomize_batch_norm  # noqa: E402


def test_ego_rnn_state_dict_layout():
    keys = [k for k in TorchEgoRNNModel().state_dict() if "num_batches" not in k]
    # 182 backbone keys, weight_softmax, 12 ConvLSTM tensors, fc.* and classifier.1.*
    assert len(keys) == 199 and "weight_softmax" in keys
    assert sum(k.startswith("lstm_cell.") for k in keys) == 12


def test_convlstm_rgb_matches_the_torch_reference():
    torch.manual_seed(0)
    model = TorchEgoRNNModel(
        num_classes=5, mem_size=32, attention_classes=11, stage_sizes=(1, 1, 1, 1), widths=(8, 16, 16, 32)
    )
    randomize_batch_norm(model.resNet, 0, calibration_input=torch.randn(4, 3, 64, 64))
    model.eval()
    state = {k: v.numpy() for k, v in model.state_dict().items() if "num_batches" not in k}
    converted = convert_state_dict(state)
    assert converted.kind == "convlstm_rgb" and converted.config["num_classes"] == 5
    clip = np.random.default_rng(0).normal(size=(2, 3, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(np.ascontiguousarray(np.transpose(clip, (1, 0, 4, 2, 3)))), details=True)
    flax_model = create_model(converted.kind, **converted.config)
    with jax.default_matmul_precision("highest"):
        ours = jax.jit(flax_model.apply, static_argnames=("return_selections", "return_frame_features"))(
            converted.variables, clip, return_selections=True, return_frame_features=True
        )
    assert np.asarray(ours["attention_class"]).tolist() == ref["attention_class"].T.tolist()
    for key in ("logits", "features", "attention", "frame_features"):
        theirs = ref[key].numpy()
        if key in ("attention", "frame_features"):
            theirs = np.swapaxes(theirs, 0, 1)
        _, rel = max_differences(ours[key], theirs)
        assert rel <= 1e-4, f"{key}: {rel:.2e}"
    np.testing.assert_allclose(np.sum(ours["attention"], axis=(2, 3)), 1.0, rtol=1e-5)
    # weight_softmax must be the ImageNet fc weight.
    with pytest.raises(ConversionError, match="weight_softmax"):
        convert_state_dict(dict(state, weight_softmax=state["weight_softmax"] + 1))
