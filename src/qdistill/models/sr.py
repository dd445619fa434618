"""Super-resolution models (image in, image ``scale`` times larger out).

Every model is a sequence of named stages (``feature_extraction``, ``body``,
``upsampling``, ``reconstruction``; a model lists the ones it has in ``stages``) so
quantization plans, sensitivity analyses and mixed-precision allocators can address
them by module path. Inputs and outputs are images in [0, 1], 1 channel (Y) or 3 (RGB).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from qdistill.models.mlp import activation
from qdistill.models.registry import MODELS

SCALES = (2, 3, 4)


def _check_scale(scale: int) -> None:
    if scale not in SCALES:
        raise ValueError(f"scale must be 2, 3 or 4, got {scale}")


def _conv(c_in: int, c_out: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)


class StagedSR(nn.Module):
    """Runs its stages in order; a subclass adds skip connections where it has them."""

    stages: tuple[str, ...] = ("feature_extraction", "body", "upsampling")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.stages:
            x = getattr(self, name)(x)
        return x


def _espcn_features(model: nn.Module, channels: int, features: tuple[int, int], act: str) -> int:
    """Give ``model`` ESPCN's conv 5x5 -> conv 3x3 stages; return the body's width."""
    first, second = features
    model.feature_extraction = nn.Sequential(_conv(channels, first, 5), activation(act))
    model.body = nn.Sequential(_conv(first, second, 3), activation(act))
    return second


class ESPCN(StagedSR):
    """ESPCN (Shi et al.): conv 5x5 64 -> conv 3x3 32 -> conv 3x3 to C*r^2 -> pixel shuffle.

    The last conv and the shuffle form the ``upsampling`` stage."""

    def __init__(
        self, channels: int, scale: int = 2, features: tuple[int, int] = (64, 32), act: str = "tanh"
    ) -> None:
        super().__init__()
        _check_scale(scale)
        self.scale = scale
        second = _espcn_features(self, channels, features, act)
        self.upsampling = nn.Sequential(
            _conv(second, channels * scale * scale, 3), nn.PixelShuffle(scale)
        )


class MiniESPCN(StagedSR):
    """Mini-ESPCN: ESPCN without its middle conv layer (conv 5x5 -> conv 3x3 -> shuffle)."""

    stages = ("feature_extraction", "upsampling")

    def __init__(
        self, channels: int, scale: int = 2, features: int = 64, act: str = "tanh"
    ) -> None:
        super().__init__()
        _check_scale(scale)
        self.scale = scale
        self.feature_extraction = nn.Sequential(_conv(channels, features, 5), activation(act))
        self.upsampling = nn.Sequential(
            _conv(features, channels * scale * scale, 3), nn.PixelShuffle(scale)
        )


class FasterESPCN(StagedSR):
    """Faster-ESPCN: transposed-conv upsampling (kernel r + 2, stride r) instead of shuffle.

    The research found it slower and prone to checkerboard artefacts."""

    def __init__(
        self, channels: int, scale: int = 2, features: tuple[int, int] = (64, 32), act: str = "tanh"
    ) -> None:
        super().__init__()
        _check_scale(scale)
        self.scale = scale
        second = _espcn_features(self, channels, features, act)
        self.upsampling = nn.Sequential(
            nn.ConvTranspose2d(second, channels, scale + 2, stride=scale, padding=1)
        )


class FinnESPCN(StagedSR):
    """FINN-friendly ESPCN: Conv-BN-ReLU, nearest-neighbour resize, conv.

    No pixel shuffle, which dataflow compilers such as FINN and hls4ml lack."""

    stages = ("feature_extraction", "body", "upsampling", "reconstruction")

    def __init__(self, channels: int, scale: int = 2, features: tuple[int, int] = (64, 32)) -> None:
        super().__init__()
        _check_scale(scale)
        first, second = features
        self.scale = scale
        self.feature_extraction = nn.Sequential(
            _conv(channels, first, 5), nn.BatchNorm2d(first), nn.ReLU()
        )
        self.body = nn.Sequential(_conv(first, second, 3), nn.BatchNorm2d(second), nn.ReLU())
        self.upsampling = nn.Upsample(scale_factor=scale, mode="nearest")
        self.reconstruction = _conv(second, channels, 3)


class ResidualBlock(nn.Module):
    """SRResNet block: conv-BN-PReLU-conv-BN plus the input."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            _conv(features, features, 3),
            nn.BatchNorm2d(features),
            nn.PReLU(),
            _conv(features, features, 3),
            nn.BatchNorm2d(features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


def _subpixel_upsampler(features: int, scale: int, act: str) -> nn.Sequential:
    """x2 steps (x4 = two of them) or one x3 step: conv to features x s^2 -> shuffle -> act."""
    steps = [3] if scale == 3 else [2] * (scale // 2)
    layers: list[nn.Module] = []
    for step in steps:
        layers += [_conv(features, features * step * step, 3), nn.PixelShuffle(step)]
        layers.append(activation(act))
    return nn.Sequential(*layers)


class SRResNet(StagedSR):
    """A small SRResNet (SRGAN generator): residual blocks + pixel-shuffle upsampling.

    Head conv, residual blocks with a long skip, sub-pixel upsampling, reconstruction conv."""

    stages = ("feature_extraction", "body", "upsampling", "reconstruction")

    def __init__(self, channels: int, scale: int = 2, features: int = 32, blocks: int = 4) -> None:
        super().__init__()
        _check_scale(scale)
        self.scale = scale
        self.feature_extraction = nn.Sequential(_conv(channels, features, 9), nn.PReLU())
        self.body = nn.Sequential(
            *[ResidualBlock(features) for _ in range(blocks)],
            _conv(features, features, 3),
            nn.BatchNorm2d(features),
        )
        self.upsampling = _subpixel_upsampler(features, scale, "prelu")
        self.reconstruction = _conv(features, channels, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.feature_extraction(x)
        return self.reconstruction(self.upsampling(head + self.body(head)))


class DenseBlock(nn.Module):
    """ESRGAN's residual dense block: 5 convs, each seeing all earlier outputs; scaled skip."""

    def __init__(self, features: int, growth: int, residual_scale: float = 0.2) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            _conv(features + i * growth, growth if i < 4 else features, 3) for i in range(5)
        )
        self.act = nn.LeakyReLU(0.2)
        self.residual_scale = residual_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]
        for index, conv in enumerate(self.convs):
            out = conv(torch.cat(outputs, dim=1))
            if index < 4:
                outputs.append(self.act(out))
        return x + self.residual_scale * out


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks and a scaled skip."""

    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[DenseBlock(features, growth) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.blocks(x)


class RRDBNet(StagedSR):
    """A small ESRGAN generator: RRDB blocks, no BatchNorm, resize-conv upsampling.

    RRDB body with a long skip, nearest-neighbour resize + conv, two reconstruction convs."""

    stages = ("feature_extraction", "body", "upsampling", "reconstruction")

    def __init__(
        self, channels: int, scale: int = 2, features: int = 32, growth: int = 16, blocks: int = 2
    ) -> None:
        super().__init__()
        _check_scale(scale)
        self.scale = scale
        self.feature_extraction = _conv(channels, features, 3)
        self.body = nn.Sequential(
            *[RRDB(features, growth) for _ in range(blocks)], _conv(features, features, 3)
        )
        steps = [3] if scale == 3 else [2] * (scale // 2)
        layers: list[nn.Module] = []
        for step in steps:
            layers += [
                nn.Upsample(scale_factor=step, mode="nearest"),
                _conv(features, features, 3),
                nn.LeakyReLU(0.2),
            ]
        self.upsampling = nn.Sequential(*layers)
        self.reconstruction = nn.Sequential(
            _conv(features, features, 3), nn.LeakyReLU(0.2), _conv(features, channels, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.feature_extraction(x)
        return self.reconstruction(self.upsampling(head + self.body(head)))


def _image_channels(name: str, input_shape: tuple[int, ...], num_outputs: int) -> int:
    channels = input_shape[0]
    if len(input_shape) != 3 or num_outputs != channels:
        raise ValueError(
            f"{name} maps (C, H, W) images to C channels, got input {input_shape} and "
            f"{num_outputs} outputs"
        )
    return channels


def _register(name: str, cls: type[StagedSR]) -> None:
    """Register ``cls`` as the super-resolution model ``name``: its factory takes the
    zoo's (input_shape, num_outputs) and the class's own options after ``channels``
    (the registry reads them from the signature to validate YAML options)."""

    def factory(input_shape: tuple[int, ...], num_outputs: int, **options):
        return cls(_image_channels(name, input_shape, num_outputs), **options)

    fixed = [
        inspect.Parameter(arg, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for arg in ("input_shape", "num_outputs")
    ]
    options = list(inspect.signature(cls).parameters.values())[1:]  # after ``channels``
    factory.__signature__ = inspect.Signature(fixed + options)
    factory.__doc__ = cls.__doc__
    factory.task = "super_resolution"  # experiments check that models fit the data
    MODELS.register(name)(factory)


for _name, _cls in (
    ("espcn", ESPCN),
    ("mini_espcn", MiniESPCN),
    ("faster_espcn", FasterESPCN),
    ("espcn_finn", FinnESPCN),
    ("srresnet", SRResNet),
    ("rrdb_net", RRDBNet),
):
    _register(_name, _cls)
