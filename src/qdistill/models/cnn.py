"""Convolutional classifiers sized by their input: a small Conv-BN-ReLU CNN and the
studies' flexible student whose depth and widths are parameters."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from qdistill.models.registry import MODELS


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Conv-BN-ReLU blocks with 2x2 max-pooling after every second block (while the
    feature map is at least 8 pixels wide), global average pooling, one Linear head."""

    def __init__(
        self, in_channels: int, spatial: int, num_outputs: int, widths: Sequence[int]
    ) -> None:
        super().__init__()
        if not widths or any(int(w) < 1 for w in widths):
            raise ValueError(f"widths must be positive integers, got {list(widths)}")
        blocks: list[nn.Module] = []
        channels = in_channels
        for index, width in enumerate(widths):
            blocks.append(conv_bn_relu(channels, width))
            if index % 2 == 1 and index < len(widths) - 1 and spatial >= 8:
                blocks.append(nn.MaxPool2d(2))
                spatial //= 2
            channels = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, num_outputs)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


@MODELS.register("small_cnn")
def small_cnn(
    input_shape: tuple[int, ...], num_outputs: int, widths: Sequence[int] = (16, 32, 64)
) -> SmallCNN:
    """Small CNN for image classification; ``widths`` are the conv output channels."""
    if len(input_shape) != 3:
        raise ValueError(f"small_cnn needs (channels, height, width) inputs, got {input_shape}")
    return SmallCNN(input_shape[0], min(input_shape[1:]), num_outputs, widths)


class FlexCNN(nn.Module):
    """The studies' parametric student: Conv-BN-ReLU layers (each followed by 2x2 max
    pooling while the map is at least 4 pixels wide), flattened into fully connected
    ReLU layers and a Linear head. Its depth and widths are parameters, so an
    architecture search can vary them."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        conv: Sequence[int],
        fc: Sequence[int],
    ) -> None:
        super().__init__()
        if not conv or any(int(w) < 1 for w in [*conv, *fc]):
            raise ValueError(f"conv needs at least one width and all widths > 0: {conv}, {fc}")
        channels, height, width = input_shape
        blocks: list[nn.Module] = []
        for out in conv:
            blocks.append(conv_bn_relu(channels, out))
            if min(height, width) >= 4:
                blocks.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            channels = out
        self.features = nn.Sequential(*blocks, nn.Flatten())
        dense: list[nn.Module] = []
        features = channels * height * width
        for out in fc:
            dense += [nn.Linear(features, out), nn.ReLU(inplace=True)]
            features = out
        self.hidden = nn.Sequential(*dense)
        self.classifier = nn.Linear(features, num_outputs)

    def forward(self, x):
        return self.classifier(self.hidden(self.features(x)))


@MODELS.register("flex_cnn")
def flex_cnn(
    input_shape: tuple[int, ...],
    num_outputs: int,
    conv: Sequence[int] = (32, 64, 128),
    fc: Sequence[int] = (256,),
) -> FlexCNN:
    """Parametric student: ``conv`` channel widths, ``fc`` hidden neuron counts."""
    if len(input_shape) != 3:
        raise ValueError(f"flex_cnn needs (channels, height, width) inputs, got {input_shape}")
    return FlexCNN(tuple(input_shape), num_outputs, conv, fc)
