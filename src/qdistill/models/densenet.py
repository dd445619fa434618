"""DenseNet-BC for CIFAR-sized inputs, at the depths the QKD study uses (21, 37, 63, 121,
201 layers, growth rate 32).

Four dense blocks of bottleneck layers (1x1 conv to 4k channels, then 3x3 conv to k new
channels, each layer seeing every earlier output of its block), transitions that halve
the channels (compression 0.5) and the resolution (2x2 average pooling), a 3x3 stem to 2k
channels (no stride or max pooling at 32x32), global average pooling and a Linear head.
Depth = 2 x (layers in the blocks) + 5. DenseNet-121 and -201 use the ImageNet block
sizes (6, 12, 24, 16) and (6, 12, 48, 32); the study names but does not list 21, 37 and
63, so they are 121's proportions scaled down: (1, 2, 3, 2), (2, 3, 7, 4), (3, 6, 12, 8).

``order: bn-relu-conv`` is the standard pre-activation DenseNet; ``conv-bn-relu`` is the
study's hardware-friendly ordering, in which every BatchNorm follows a convolution and
folds into it (``fold_bn``) for export and integer inference.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from qdistill.models.registry import MODELS

BLOCKS = {
    21: (1, 2, 3, 2),
    37: (2, 3, 7, 4),
    63: (3, 6, 12, 8),
    121: (6, 12, 24, 16),
    201: (6, 12, 48, 32),
}
Order = Literal["bn-relu-conv", "conv-bn-relu"]


def _unit(c_in: int, c_out: int, kernel: int, order: Order) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
    if order == "conv-bn-relu":
        return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
    return nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), conv)


class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int, order: Order) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _unit(c_in, 4 * growth, 1, order), _unit(4 * growth, growth, 3, order)
        )

    def forward(self, x):
        return torch.cat([x, self.body(x)], 1)


class DenseNet(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        blocks: tuple[int, ...],
        growth: int,
        order: Order,
    ) -> None:
        super().__init__()
        channels = 2 * growth
        stem = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        layers: list[nn.Module] = [
            nn.Sequential(stem, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
            if order == "conv-bn-relu"
            else stem
        ]
        for index, count in enumerate(blocks):
            block = []
            for _ in range(count):
                block.append(DenseLayer(channels, growth, order))
                channels += growth
            layers.append(nn.Sequential(*block))
            if index < len(blocks) - 1:
                reduced = channels // 2
                layers.append(nn.Sequential(_unit(channels, reduced, 1, order), nn.AvgPool2d(2)))
                channels = reduced
        if order == "bn-relu-conv":
            layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, num_outputs)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


@MODELS.register("densenet")
def densenet(
    input_shape: tuple[int, ...],
    num_outputs: int,
    depth: int = 121,
    growth: int = 32,
    order: Order = "bn-relu-conv",
) -> DenseNet:
    """CIFAR DenseNet-BC at depth 21, 37, 63, 121 or 201 (growth 32, either ordering)."""
    if len(input_shape) != 3:
        raise ValueError(f"densenet needs (channels, height, width) inputs, got {input_shape}")
    if depth not in BLOCKS:
        raise ValueError(f"depth must be one of {sorted(BLOCKS)}, got {depth}")
    if growth < 1:
        raise ValueError(f"growth must be positive, got {growth}")
    if order not in ("bn-relu-conv", "conv-bn-relu"):
        raise ValueError(f"order must be 'bn-relu-conv' or 'conv-bn-relu', got {order!r}")
    if min(input_shape[1:]) < 8:
        raise ValueError(
            f"densenet halves the resolution 3 times; inputs {input_shape} are too small"
        )
    return DenseNet(input_shape[0], num_outputs, BLOCKS[depth], growth, order)
