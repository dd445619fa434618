"""The channel concatenation unit: FINN's StreamingConcat, which streams its inputs'
channels one input after the other for every pixel, SIMD channels per cycle (SIMD must
divide every input's channels). FINN gives it no LUT or BRAM estimate; its flip-flops
are ours (the SIMD-wide input and output registers)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from qdistill.hardware.units import Fold, Resources, Unit


@dataclass
class Concat(Unit):
    """``channels`` = the sum of ``parts`` (each input's channels), ``bits`` = the widest
    input (FINN streams them at one data type)."""

    parts: list[int] = field(default_factory=list)
    bits: int = 8
    kind: ClassVar[str] = "concat"

    def fold_limits(self) -> dict[str, int]:
        return {"simd": math.gcd(*self.parts)}

    def cycles(self, fold: Fold) -> int:
        return self.pixels * self.channels // fold.simd

    def resources(self, fold: Fold) -> Resources:
        return Resources(ff=(len(self.parts) + 1) * fold.simd * self.bits)

    @property
    def stream_bits(self) -> int:
        return self.bits
