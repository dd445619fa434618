"""MobileNetV2 for CIFAR-sized inputs (Sandler et al. 2018, with the CIFAR strides the
distillation literature uses): a stride-1 3x3 stem, inverted residual blocks (1x1
expansion, 3x3 depthwise, linear 1x1 projection; a skip where the shape allows), a 1x1
conv to 1280 channels, global average pooling and a Linear head. Only three stages
halve the resolution (32 -> 4); ``width`` scales every channel count."""

from __future__ import annotations

from torch import nn

from qdistill.models.registry import MODELS

# (expansion, channels, blocks, stride of the first block)
STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip


def _scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded to a multiple of 8 (never below 8)."""
    return max(8, int(channels * width + 4) // 8 * 8)


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act=True):
    layers = [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        layers = [_conv_bn(c_in, hidden, 1)] if expansion != 1 else []
        layers += [
            _conv_bn(hidden, hidden, 3, stride, groups=hidden),
            _conv_bn(hidden, c_out, 1, act=False),
        ]
        self.body = nn.Sequential(*layers)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x):
        return x + self.body(x) if self.skip else self.body(x)


class MobileNetV2(nn.Module):
    def __init__(self, in_channels: int, num_outputs: int, width: float) -> None:
        super().__init__()
        channels = _scaled(32, width)
        layers: list[nn.Module] = [_conv_bn(in_channels, channels, 3)]
        for expansion, base, blocks, stride in STAGES:
            out = _scaled(base, width)
            for index in range(blocks):
                layers.append(
                    InvertedResidual(channels, out, stride if index == 0 else 1, expansion)
                )
                channels = out
        last = _scaled(1280, max(width, 1.0))
        layers.append(_conv_bn(channels, last, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(last, num_outputs)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


@MODELS.register("mobilenetv2")
def mobilenetv2(input_shape: tuple[int, ...], num_outputs: int, width: float = 1.0) -> MobileNetV2:
    """MobileNetV2 with CIFAR strides; ``width`` multiplies the channel counts."""
    if len(input_shape) != 3:
        raise ValueError(f"mobilenetv2 needs (channels, height, width) inputs, got {input_shape}")
    if not 0.1 <= width <= 4.0:
        raise ValueError(f"width must be between 0.1 and 4, got {width}")
    return MobileNetV2(input_shape[0], num_outputs, width)
