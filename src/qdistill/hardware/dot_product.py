"""Units that compute dot products of quantized weights and inputs: FINN's
matrix-vector unit (MVAU, HLS variant with LUT multipliers) for Linear and Conv, and
the base it shares with the depthwise VVAU (``depthwise``): operand widths, FINN's
accumulator width for its LUT model, absorbed thresholds and the output stream.
Cycles, LUTs and BRAM18 are FINN's formulas; flip-flops are ours (docs/hardware.md).
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


@dataclass
class DotProductUnit(Unit):
    """A unit of ``dot_length``-term dot products; thresholds absorbed when the output is
    quantized (``output_bits``), else it outputs the accumulator."""

    weight_bits: int = 8
    input_bits: int = 8
    input_signed: bool = False
    acc_bits: int = 32  # from the actual integer weights, as FINN minimises it
    output_bits: int | None = None

    @property
    def dot_length(self) -> int:
        raise NotImplementedError

    def lut_acc_bits(self) -> int:
        """FINN's accumulator width for its LUT model: the smaller of the weight-derived
        width and the data-type bound of arXiv:2301.13376."""
        w, a = self.weight_bits, self.input_bits
        alpha = math.log2(self.dot_length) + w + a - 1 - int(self.input_signed)
        bound = math.ceil(alpha + math.log2(1 + 2**-alpha) + 1)
        return min(self.acc_bits, bound)

    def datapath_flip_flops(self, fold: Fold) -> int:
        """The weight word (PE x SIMD x W), one pipeline stage of products (PE x SIMD x
        (W + A)), the accumulators and the output registers."""
        w, a, pe, simd = self.weight_bits, self.input_bits, fold.pe, fold.simd
        out_bits = self.output_bits or self.acc_bits
        return pe * simd * (2 * w + a) + pe * (self.lut_acc_bits() + out_bits)

    @property
    def thresholds(self) -> int:
        """Thresholds per output channel (2^B - 1), 0 without an activation."""
        return 2**self.output_bits - 1 if self.output_bits else 0

    @property
    def stream_bits(self) -> int:
        return self.output_bits or self.acc_bits


@dataclass
class MatrixVector(DotProductUnit):
    """FINN MVAU: MH outputs from MW inputs per output pixel."""

    mw: int = 1
    kind: ClassVar[str] = "mvau"

    @property
    def mh(self) -> int:
        return self.channels

    @property
    def dot_length(self) -> int:
        return self.mw

    def fold_limits(self) -> dict[str, int]:
        return {"pe": self.mh, "simd": self.mw}

    def cycles(self, fold: Fold) -> int:
        return (self.mh // fold.pe) * (self.mw // fold.simd) * self.pixels

    def weight_memory(self, fold: Fold) -> tuple[int, int]:
        """(depth, width) of the weight memory."""
        return self.mw * self.mh // (fold.pe * fold.simd), fold.pe * fold.simd * self.weight_bits

    def resources(self, fold: Fold) -> Resources:
        w, a, simd, pe = self.weight_bits, self.input_bits, fold.simd, fold.pe
        mult = simd * (2 * math.ceil((w + a) / 6) - 1) * (w + a)
        adder_tree = (w + a) * (2 * simd - 1)
        acc = self.lut_acc_bits()
        lut = int(MVAU_LUT_BASE + MVAU_LUT_PER_PE * pe * (mult + adder_tree + acc))
        depth, width = self.weight_memory(fold)
        return Resources(lut=lut, ff=self.flip_flops(fold), bram18=bram18_for_memory(depth, width))

    def flip_flops(self, fold: Fold) -> int:
        """qdistill's register count (FINN has no FF model): the input vector held for
        every output fold (MW x A) and the datapath."""
        return self.mw * self.input_bits + self.datapath_flip_flops(fold)
