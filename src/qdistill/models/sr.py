"""Super-resolution models (image in, image ``scale`` times larger out).

Each model names its stages (``feature_extraction``, ``body``, ``upsampling``) so
quantization plans and sensitivity analyses can address them by module path.
"""

from __future__ import annotations

from torch import nn

from qdistill.models.mlp import activation
from qdistill.models.registry import MODELS


class ESPCN(nn.Module):
    """Shi et al.'s efficient sub-pixel CNN: conv 5x5 -> conv 3x3 -> conv 3x3 to
    channels x scale^2 -> pixel shuffle."""

    def __init__(
        self, channels: int, scale: int, features: tuple[int, int] = (64, 32), act: str = "tanh"
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {scale}")
        first, second = features
        self.scale = scale
        self.feature_extraction = nn.Sequential(
            nn.Conv2d(channels, first, 5, padding=2), activation(act)
        )
        self.body = nn.Sequential(nn.Conv2d(first, second, 3, padding=1), activation(act))
        self.upsampling = nn.Sequential(
            nn.Conv2d(second, channels * scale * scale, 3, padding=1), nn.PixelShuffle(scale)
        )

    def forward(self, x):
        return self.upsampling(self.body(self.feature_extraction(x)))


@MODELS.register("espcn")
def espcn(
    input_shape: tuple[int, ...],
    num_outputs: int,
    scale: int = 2,
    features: tuple[int, int] = (64, 32),
    act: str = "tanh",
) -> ESPCN:
    """ESPCN super-resolution (1-channel Y or 3-channel RGB; outputs as many channels)."""
    channels = input_shape[0]
    if len(input_shape) != 3 or num_outputs != channels:
        raise ValueError(
            f"espcn maps (C, H, W) images to C channels, got input {input_shape} and "
            f"{num_outputs} outputs"
        )
    return ESPCN(channels, scale, tuple(features), act)


espcn.task = "super_resolution"
