"""The depthwise convolution unit: FINN's VectorVectorActivation (VVAU, HLS variant with
LUT multipliers), fed by a depthwise sliding window whose SIMD follows the VVAU's PE.

Each of the ``channels`` output channels is the dot product of its own K x K window
with its own K x K weights: PE channels in parallel, SIMD window positions per cycle.
Cycles, LUTs and BRAM18 are FINN's formulas (finn-plus 1.6,
``vectorvectoractivation.py`` and its HLS variant); flip-flops are ours, as for the MVAU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from qdistill.hardware.dot_product import DotProductUnit
from qdistill.hardware.units import (
    MVAU_LUT_BASE,
    MVAU_LUT_PER_PE,
    Fold,
    Resources,
    bram18_for_memory,
)

# FINN keeps a VVAU's weight memory in LUTs up to this depth (ram_style auto).
LUTRAM_MAX_DEPTH = 128


@dataclass
class VectorVector(DotProductUnit):
    """FINN VVAU: one K x K dot product per channel and output pixel. ``window`` names
    the depthwise sliding window feeding it ("" for a 1x1 kernel)."""

    kernel: tuple[int, int] = (3, 3)
    window: str = ""
    kind: ClassVar[str] = "vvau"

    @property
    def window_size(self) -> int:
        return self.kernel[0] * self.kernel[1]

    @property
    def dot_length(self) -> int:
        return self.window_size

    def fold_limits(self) -> dict[str, int]:
        return {"pe": self.channels, "simd": self.window_size}

    def cycles(self, fold: Fold) -> int:
        return self.channels * self.window_size // (fold.pe * fold.simd) * self.pixels

    def weight_memory(self, fold: Fold) -> tuple[int, int]:
        """(depth, width) of the weight memory (FINN's WMEM and PE x SIMD x W)."""
        depth = self.window_size * self.channels // fold.pe // fold.simd
        return depth, fold.pe * fold.simd * self.weight_bits

    def resources(self, fold: Fold) -> Resources:
        w, a, pe, simd = self.weight_bits, self.input_bits, fold.pe, fold.simd
        mult = simd * (2 * math.ceil((w + a) / 6) - 1) * (w + a)
        adder_tree = (w + a) * (2 * simd - 1)
        acc = self.lut_acc_bits()
        thresholds = comparators = 0.0
        if self.output_bits:  # FINN's VVAU keeps its thresholds in LUTs
            steps = 2**self.output_bits - 1
            thresholds = steps * acc * (self.channels // pe) / 64
            comparators = steps * acc
        per_pe = mult + adder_tree + acc + thresholds + comparators
        lut = int(MVAU_LUT_BASE + MVAU_LUT_PER_PE * pe * per_pe)
        return Resources(lut=lut, ff=self.flip_flops(fold), bram18=self.bram18(fold))

    def bram18(self, fold: Fold) -> int:
        """FINN's VVAU estimate: none up to 128 words (LUTs), else RAMB18s in simple
        dual-port mode (its width steps are 4, 8, 16 and 32 bits, not the MVAU's)."""
        depth, width = self.weight_memory(fold)
        if depth <= LUTRAM_MAX_DEPTH:
            return 0
        return bram18_for_memory(depth, width, widths=(4, 8, 16, 32))

    def flip_flops(self, fold: Fold) -> int:
        """qdistill's register count: each parallel channel's window (K x K x A) and the
        datapath."""
        return fold.pe * self.window_size * self.input_bits + self.datapath_flip_flops(fold)
