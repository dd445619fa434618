"""Training-time augmentation of image batches: random shifts and Gaussian noise."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augmentation:
    """Random translation by up to ``shift`` pixels (zero fill: the padded random crop of
    CIFAR training), a horizontal flip of a random half of the images, additive noise."""

    shift: int = 0
    noise_std: float = 0.0
    hflip: bool = False

    def __post_init__(self) -> None:
        if self.shift < 0 or self.noise_std < 0:
            raise ValueError("augmentation shift and noise_std must be >= 0")

    @property
    def active(self) -> bool:
        return self.shift > 0 or self.noise_std > 0 or self.hflip

    def describe(self) -> str:
        if not self.active:
            return "none"
        return f"shift={self.shift},noise_std={self.noise_std}" + (",hflip" if self.hflip else "")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.shift > 0 and x.dim() == 4:
            x = self._shift(x, generator)
        if self.hflip and x.dim() == 4:
            flip = torch.rand(len(x), generator=generator) < 0.5
            x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
        if self.noise_std > 0:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = x + self.noise_std * noise.to(x.device)
        return x

    def _shift(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        s = self.shift
        height, width = x.shape[-2:]
        padded = F.pad(x, (s, s, s, s))
        offsets = torch.randint(0, 2 * s + 1, (len(x), 2), generator=generator)
        out = torch.empty_like(x)
        # one slice per distinct offset: at most (2s + 1)^2 vectorised copies
        for dy, dx in torch.unique(offsets, dim=0).tolist():
            rows = ((offsets[:, 0] == dy) & (offsets[:, 1] == dx)).nonzero().flatten()
            out[rows] = padded[rows, :, dy : dy + height, dx : dx + width]
        return out
