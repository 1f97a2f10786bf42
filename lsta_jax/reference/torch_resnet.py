"""PyTorch reference ResNet with torchvision's exact parameter and buffer names (docs/differences.md §3).

Written by us from `docs/differences.md` §3 (torchvision does not install beside torch 2.13
here). Needs the optional `torch` extra (`pip install -e '.[torch]'`). Used by the parity tests, by the
conversion tests and as the backbone of the PyTorch LSTA reference (`torch_lsta.TorchLSTAModel`).

Stable interface (other references build on it):

    model = TorchResNet(stage_sizes=(3, 4, 6, 3), widths=(64, 128, 256, 512), num_classes=1000,
                        in_channels=3, include_fc=True)
    logits, layer4, layer4_prebn = model(x)      # x: (N, in_channels, H, W) float, NCHW

- `logits` (N, num_classes), or None when `include_fc=False`;
- `layer4` (N, widths[-1], h, w): the last block's usual output ReLU(bn2(conv2(r)) + shortcut);
- `layer4_prebn` (same shape): conv2(r) + shortcut of the same block, before bn2 and the final ReLU (the
  authors' `noBN` output, the tensor the LSTA cell consumes).

State-dict keys are torchvision's (`conv1.weight`, `bn1.{weight,bias,running_mean,running_var,
num_batches_tracked}`, `layer{i}.{j}.{conv1,bn1,conv2,bn2}.*`, `layer{i}.0.downsample.{0,1}.*`,
`fc.{weight,bias}`), so a torchvision / authors' ResNet-34 state dict loads with `strict=True`.
No input size is hard-wired: the average pool is a global spatial mean (AvgPool2d(7) at 224x224).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int, padding: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)


class TorchBasicBlock(nn.Module):
    """torchvision's BasicBlock; `forward(x)` returns `(out, prebn)` (docs/differences.md §3, `noBN`).

    out = ReLU(bn2(conv2(r)) + shortcut), prebn = conv2(r) + shortcut, r = ReLU(bn1(conv1(x))),
    shortcut = downsample(x) (1x1 conv with the block's stride, then BN) when the shape changes, else x.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv(in_channels, channels, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = _conv(channels, channels, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != channels:  # torchvision's rule
            self.downsample = nn.Sequential(
                _conv(in_channels, channels, 1, stride, 0), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.relu(self.bn1(self.conv1(x)))
        y = self.conv2(r)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn2(y) + shortcut), y + shortcut


class TorchResNet(nn.Module):
    """torchvision-layout ResNet of BasicBlocks (ResNet-34 by default); see the module docstring.

    Args:
      stage_sizes: blocks per stage ((3, 4, 6, 3) is ResNet-34); stages are named `layer1`, `layer2`, ...
      widths: channels per stage.
      num_classes: outputs of `fc` (1000 for ImageNet).
      in_channels: input channels of `conv1` (3 for RGB, 10 for 5 stacked x/y flow frames).
      include_fc: False omits `fc` (no `fc.*` keys) and `forward` returns None as logits.

    Initialisation is torchvision's (Kaiming-normal fan-out convs, BN scale 1 / shift 0, default Linear);
    use `randomize_batch_norm` to give the BN layers non-trivial statistics for tests.
    """

    def __init__(
        self,
        stage_sizes: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
        num_classes: int = 1000,
        in_channels: int = 3,
        include_fc: bool = True,
    ) -> None:
        super().__init__()
        if len(stage_sizes) != len(widths):
            raise ValueError(f"stage_sizes {tuple(stage_sizes)} and widths {tuple(widths)} differ in length")
        self.stage_sizes = tuple(stage_sizes)
        self.widths = tuple(widths)
        self.in_channels = in_channels
        self.include_fc = include_fc
        self.conv1 = _conv(in_channels, widths[0], 7, 2, 3)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=False)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        width_in = widths[0]
        for stage, (num_blocks, width) in enumerate(zip(stage_sizes, widths, strict=True)):
            blocks = []
            for block in range(num_blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(TorchBasicBlock(width_in, width, stride))
                width_in = width
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(widths[-1], num_classes) if include_fc else None
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def stages(self) -> list[nn.Sequential]:
        """The residual stages `layer1 .. layerN` in order."""
        return [getattr(self, f"layer{i + 1}") for i in range(len(self.stage_sizes))]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        prebn = x
        for stage in self.stages():
            for block in stage:
                x, prebn = block(x)
        logits = self.fc(x.mean(dim=(2, 3))) if self.fc is not None else None
        return logits, x, prebn


@torch.no_grad()
def randomize_batch_norm(
    model: nn.Module, seed: int = 0, calibration_input: torch.Tensor | None = None
) -> nn.Module:
    """Give every BatchNorm2d of `model` non-trivial affine parameters and running statistics (in place).

    Scales are drawn from U(0.5, 1.5) and shifts from N(0, 0.2). Running statistics are, when
    `calibration_input` (NCHW, for a ResNet) is given, first measured on it in training mode (so deep
    networks keep activations of a sane scale), then perturbed: mean + N(0, 0.1 * std), var * U(0.7, 1.4).
    Without calibration they are mean ~ N(0, 0.1), var ~ U(0.5, 2). Returns the model in eval mode.
    """
    generator = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        n = bn.num_features
        bn.weight.copy_(0.5 + torch.rand(n, generator=generator))
        bn.bias.copy_(0.2 * torch.randn(n, generator=generator))
    if calibration_input is not None:
        momenta = [bn.momentum for bn in bns]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: one batch gives exactly its statistics
        model.train()
        model(calibration_input)
        for bn, momentum in zip(bns, momenta, strict=True):
            bn.momentum = momentum
    for bn in bns:
        n = bn.num_features
        if calibration_input is not None:
            std = bn.running_var.sqrt()
            bn.running_mean.add_(0.1 * std * torch.randn(n, generator=generator))
            bn.running_var.mul_(0.7 + 0.7 * torch.rand(n, generator=generator))
        else:
            bn.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
            bn.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=generator))
        bn.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=generator)))
    return model.eval()
