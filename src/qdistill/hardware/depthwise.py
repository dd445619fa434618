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

from qdistill.hardware.units import (
    MVAU_LUT_BASE,
    MVAU_LUT_PER_PE,
    Fold,
    Resources,
    Unit,
    bram18_for_memory,
)

# FINN keeps a VVAU's weight memory in LUTs up to this depth (ram_style auto).
LUTRAM_MAX_DEPTH = 128


@dataclass
class VectorVector(Unit):
    """FINN VVAU: one K x K dot product per channel and output pixel; thresholds absorbed
    when the output is quantized (``output_bits``), else it outputs the accumulator.
    ``window`` names the depthwise sliding window feeding it ("" for a 1x1 kernel)."""

    kernel: tuple[int, int] = (3, 3)
    weight_bits: int = 8
    input_bits: int = 8
    input_signed: bool = False
    acc_bits: int = 32
    output_bits: int | None = None
    window: str = ""
    kind: ClassVar[str] = "vvau"

    @property
    def window_size(self) -> int:
        return self.kernel[0] * self.kernel[1]

    def fold_limits(self) -> dict[str, int]:
        return {"pe": self.channels, "simd": self.window_size}

    def cycles(self, fold: Fold) -> int:
        return self.channels * self.window_size // (fold.pe * fold.simd) * self.pixels

    def weight_memory(self, fold: Fold) -> tuple[int, int]:
        """(depth, width) of the weight memory (FINN's WMEM and PE x SIMD x W)."""
        depth = self.window_size * self.channels // fold.pe // fold.simd
        return depth, fold.pe * fold.simd * self.weight_bits

    def lut_acc_bits(self) -> int:
        """The smaller of the weight-derived accumulator width and the data-type bound
        (arXiv:2301.13376), as FINN's LUT model takes it."""
        w, a = self.weight_bits, self.input_bits
        alpha = math.log2(self.window_size) + w + a - 1 - int(self.input_signed)
        return min(self.acc_bits, math.ceil(alpha + math.log2(1 + 2**-alpha) + 1))

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
        """qdistill's register count: each parallel channel's window (K x K x A), the
        weight word (PE x SIMD x W), one stage of products, accumulators and outputs."""
        w, a, pe, simd = self.weight_bits, self.input_bits, fold.pe, fold.simd
        out_bits = self.output_bits or self.acc_bits
        window = pe * self.window_size * a
        return window + pe * simd * (2 * w + a) + pe * (self.lut_acc_bits() + out_bits)

    @property
    def thresholds(self) -> int:
        return 2**self.output_bits - 1 if self.output_bits else 0

    @property
    def stream_bits(self) -> int:
        return self.output_bits or self.acc_bits
