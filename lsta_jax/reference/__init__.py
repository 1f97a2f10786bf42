"""PyTorch references (optional extra `torch`: `pip install -e '.[torch]'`), written by us from
`docs/differences.md`, independent of the Flax code. Used by parity tests and conversion tests.

- `torch_resnet.TorchResNet`: torchvision-named ResNet returning `(logits, layer4, layer4_prebn)`.
- `torch_resnet.randomize_batch_norm`: non-trivial BN statistics for tests.
- `torch_lsta.TorchLSTAModel`: the authors' `attentionModel` (LSTA RGB), built on `TorchResNet`.
- `torch_ego_rnn`: ego-rnn's RGB model (`TorchEgoRNNModel`), flow network `flow_resnet34` (`TorchFlowResNet`)
  and joint two-stream model (`TorchEgoRNNTwoStream`).
- `torch_two_stream`: the LSTA motion stream (`TorchLSTAFlow`) and the cross-modal two-stream model
  (`TorchCrossModalTwoStream`), transcribed from lsta_jax's own documented design (the authors never released
  them).

Nothing is imported here so that `import lsta_jax.reference` works without torch.
"""
