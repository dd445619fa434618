"""CIFAR ResNets as the distillation literature uses them (CRD, Tian et al. 2020):
``resnet8x4`` (the student) and ``resnet32x4`` (the teacher), and ``cifar_resnet`` for any
depth 6n+2 and widths.

A 3x3 stem, three stages of n basic blocks (two 3x3 Conv-BN, ReLU after the residual
addition; a 1x1 Conv-BN shortcut where the shape changes), the second and third stage
starting with stride 2, global average pooling and a Linear head. "x4" means four times
the usual widths: stem 32, stages 64/128/256.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from qdistill.models.registry import MODELS


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(
        self, in_channels: int, num_outputs: int, depth: int, widths: Sequence[int]
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, ...), got {depth}")
        if len(widths) != 4 or any(int(w) < 1 for w in widths):
            raise ValueError(f"widths must be 4 positive integers (stem, 3 stages), got {widths}")
        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages, channels = [], widths[0]
        for index, width in enumerate(widths[1:]):
            stride = 1 if index == 0 else 2
            blocks = [BasicBlock(channels, width, stride)]
            blocks += [BasicBlock(width, width, 1) for _ in range(blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, num_outputs)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.classifier(self.pool(self.stages(self.stem(x))))


def _channels(name: str, input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 3:
        raise ValueError(f"{name} needs (channels, height, width) inputs, got {input_shape}")
    return input_shape[0]


@MODELS.register("cifar_resnet")
def cifar_resnet(
    input_shape: tuple[int, ...],
    num_outputs: int,
    depth: int = 20,
    widths: Sequence[int] = (16, 16, 32, 64),
) -> CifarResNet:
    """CIFAR ResNet of depth 6n+2; ``widths``: stem and the three stages."""
    return CifarResNet(_channels("cifar_resnet", input_shape), num_outputs, depth, widths)


@MODELS.register("resnet8x4")
def resnet8x4(input_shape: tuple[int, ...], num_outputs: int) -> CifarResNet:
    """CRD's ResNet8x4 student: depth 8, widths 32/64/128/256 (1.2M parameters)."""
    return CifarResNet(_channels("resnet8x4", input_shape), num_outputs, 8, (32, 64, 128, 256))


@MODELS.register("resnet32x4")
def resnet32x4(input_shape: tuple[int, ...], num_outputs: int) -> CifarResNet:
    """CRD's ResNet32x4 teacher: depth 32, widths 32/64/128/256 (7.4M parameters)."""
    return CifarResNet(_channels("resnet32x4", input_shape), num_outputs, 32, (32, 64, 128, 256))
