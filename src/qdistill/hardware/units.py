"""Dataflow hardware units: cycles and FPGA resources of one layer's streaming unit.

Each unit follows the FINN component that would implement it (finn-plus 1.6): the
matrix-vector unit (MVAU, in ``dot_product``) for Linear and Conv, a
sliding-window generator in front of convolutions, padding, standalone thresholding
(quantizing a stream), pooling, stream reshaping and element-wise units. Cycle counts
and the LUT / BRAM18 / URAM / DSP estimates are FINN's own analytic formulas (FINN-R,
Blott et al. 2018, as coded in FINN); the flip-flop estimate is ours (FINN has none):
every register on the datapath, i.e. input/output stream registers, the per-PE
weight and operand pipeline and the accumulator, documented in docs/hardware.md with
its uncertainty. Units FINN gives no estimator get 0 LUT, as FINN reports them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, astuple, dataclass, field
from typing import ClassVar

# FINN's default cap on SIMD x weight bits per PE (mvau_wwidth_max) and the widest
# weight stream its HLS MVAU accepts (MAX_ALLOWED_AP_INT_W).
MVAU_WWIDTH_MAX = 36
AP_INT_MAX_WIDTH = 8191
# FINN's LUT model constants for the HLS MVAU (FINN-R experiments).
MVAU_LUT_BASE = 300
MVAU_LUT_PER_PE = 1.1
SLIDING_WINDOW_LUT_BASE = 300
FLOAT_BITS = 32  # a stream that arrives from the host unquantized


@dataclass(frozen=True)
class Resources:
    lut: float = 0
    ff: float = 0
    bram18: float = 0
    uram: float = 0
    dsp: float = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def __sub__(self, other: Resources) -> Resources:
        return Resources(*(a - b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def scaled(self, factor: float) -> Resources:
        return Resources(*(value * factor for value in astuple(self)))

    def holds(self, used: Resources) -> bool:
        """Whether ``used`` fits within these resources (a budget)."""
        return all(u <= room for u, room in zip(astuple(used), astuple(self), strict=True))

    def to_dict(self) -> dict:
        return {k: round(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Fold:
    """Parallelism of one unit: PE output channels and SIMD inputs per cycle; a sliding
    window at full SIMD can also emit whole windows per cycle (FINN's parallel_window)."""

    pe: int = 1
    simd: int = 1
    parallel_window: bool = False


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def bram18_for_memory(
    depth: float, width: int, widths: tuple[int, int, int, int] = (4, 9, 18, 36)
) -> int:
    """RAMB18s for ``depth`` words of ``width`` bits in simple dual-port mode (FINN's
    estimate after UG573 table 1-10); ``widths``: the word widths FINN divides by, the
    MVAU's by default (its VVAU's are 4, 8, 16, 32)."""
    if width == 1:
        return math.ceil(depth / 16384)
    if width == 2:
        return math.ceil(depth / 8192)
    if width <= 4:
        return math.ceil(depth / 4096) * math.ceil(width / widths[0])
    if width <= 9:
        return math.ceil(depth / 2048) * math.ceil(width / widths[1])
    if width <= 18 or depth > 512:
        return math.ceil(depth / 1024) * math.ceil(width / widths[2])
    return math.ceil(depth / 512) * math.ceil(width / widths[3])


@dataclass
class Unit:
    """One streaming unit. ``fold_limits`` says which parallelism it has ("pe", "simd")
    and the number each must divide; ``cycles`` and ``resources`` take its folding."""

    name: str  # unique, e.g. "features.0:mvau"
    layer: str  # the model's module path (or operation) it implements
    channels: int  # channels of the stream it works on
    pixels: int  # output vectors per image (H x W, or 1)
    inputs: list[str] = field(default_factory=list)  # producing units ("" = host input)
    kind: ClassVar[str] = "unit"

    def fold_limits(self) -> dict[str, int]:
        """Attribute -> the number it must divide (its maximum)."""
        return {"pe": self.channels}

    def check(self, fold: Fold) -> None:
        for attr, limit in self.fold_limits().items():
            value = getattr(fold, attr)
            if value < 1 or limit % value:
                raise ValueError(
                    f"{self.name}: {attr.upper()}={value} must divide {limit} "
                    f"(allowed: {', '.join(map(str, divisors(limit)))})"
                )

    def cycles(self, fold: Fold) -> int:
        return self.pixels * self.channels // fold.pe

    def resources(self, fold: Fold) -> Resources:
        return Resources(ff=2 * fold.pe * self.stream_bits)

    @property
    def stream_bits(self) -> int:
        return FLOAT_BITS

    def describe(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k not in ("name", "layer", "inputs")}
        return {"kind": self.kind, **data}


@dataclass
class SlidingWindow(Unit):
    """FINN ConvolutionInputGenerator (RTL, default style, LUTRAM buffer as FINN's default
    ram_style): turns the padded input image into K x K x C windows, SIMD channels per
    cycle. A depthwise one feeds a pooling unit and takes that unit's PE as its SIMD."""

    in_h: int = 1
    in_w: int = 1
    out_h: int = 1
    out_w: int = 1
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    bits: int = 8
    depthwise: bool = False
    kind: ClassVar[str] = "sliding_window"

    def fold_limits(self) -> dict[str, int]:
        return {"simd": self.channels}

    def _buffer(self, fold: Fold) -> int:
        (k_h, k_w), (d_h, d_w) = self.kernel, self.dilation
        return ((k_h - 1) * d_h * self.in_w + (k_w - 1) * d_w + 1) * (self.channels // fold.simd)

    def buffer_depth(self, fold: Fold) -> int:
        (k_h, k_w), (s_h, s_w) = self.kernel, self.stride
        factor = self.channels // fold.simd
        if fold.parallel_window:
            (d_h, d_w) = self.dilation
            return ((k_h - 1) * d_h * self.in_w + (k_w - 1) * d_w) * factor + 2
        extra_w = max(0, (s_w - 1) - k_h * k_w) * factor
        extra_h = max(0, (s_h - 1) * self.in_w - k_h * k_w) * factor
        return self._buffer(fold) + extra_w + extra_h

    def cycles(self, fold: Fold) -> int:
        (k_h, k_w), (s_h, s_w) = self.kernel, self.stride
        factor = self.channels // fold.simd
        if fold.parallel_window:  # one input value per cycle
            return self.in_h * self.in_w * factor + 2
        if self.in_h == 1 or self.in_w == 1:  # 1-D windows (FINN normalises to width)
            if self.depthwise:
                out = self.out_w * k_w * factor + (factor - 1) * k_w
                inp = self.in_w * factor + factor * (k_w - 1) * (s_w - 1)
                return max(out, inp) + 2
            return self.out_w * k_w * factor + 2
        write = self.out_w * k_w * k_h * factor
        read = s_w * self.in_w * factor
        per_row = max(write, read)
        extra = 0
        if self.depthwise:
            per_row += self.out_w * (s_w - 1) * (factor - 1)
            extra = (s_h - 1) * self.in_w * factor
        return self._buffer(fold) + self.out_h * per_row + extra

    def resources(self, fold: Fold) -> Resources:
        width = fold.simd * self.bits
        lutram = width * math.ceil(self.buffer_depth(fold) / 38)
        return Resources(lut=SLIDING_WINDOW_LUT_BASE + lutram, ff=3 * width + 2 * 32)

    @property
    def stream_bits(self) -> int:
        return self.bits


@dataclass
class Padding(Unit):
    """FINN FMPadding: writes the zero border (``pixels`` = padded H x W)."""

    bits: int = 8
    kind: ClassVar[str] = "padding"

    def fold_limits(self) -> dict[str, int]:
        return {"simd": self.channels}

    def cycles(self, fold: Fold) -> int:
        return self.pixels * self.channels // fold.simd

    def resources(self, fold: Fold) -> Resources:
        return Resources(ff=2 * fold.simd * self.bits + 2 * 32)

    @property
    def stream_bits(self) -> int:
        return self.bits


@dataclass
class Thresholding(Unit):
    """FINN Thresholding (HLS, LUTRAM thresholds): quantizes a stream of ``input_bits``
    to ``output_bits`` with 2^B - 1 thresholds per channel."""

    input_bits: int = FLOAT_BITS
    output_bits: int = 8
    kind: ClassVar[str] = "thresholding"

    def resources(self, fold: Fold) -> Resources:
        steps = 2**self.output_bits - 1
        memory_width = fold.pe * self.input_bits * steps
        depth = self.channels // fold.pe
        lutram = memory_width * math.ceil(depth / 64) if depth > 1 else 0
        lut = self.input_bits * fold.pe + lutram
        ff = fold.pe * (self.input_bits + self.output_bits + steps)
        return Resources(lut=lut, ff=ff)

    @property
    def stream_bits(self) -> int:
        return self.output_bits


@dataclass
class Pool(Unit):
    """FINN Pool (max or average) over K x K windows from the depthwise sliding window
    ``window`` (whose SIMD follows this unit's PE); ``pixels`` = output H x W."""

    kernel: int = 2
    bits: int = 8
    window: str = ""
    kind: ClassVar[str] = "pool"

    def cycles(self, fold: Fold) -> int:
        return self.channels * self.kernel * self.kernel // fold.pe * self.pixels

    def resources(self, fold: Fold) -> Resources:
        return Resources(ff=3 * fold.pe * self.bits)  # in, out and the running max/sum

    @property
    def stream_bits(self) -> int:
        return self.bits


@dataclass
class GlobalPool(Unit):
    """FINN GlobalAccPool: sums each channel over ``pixels`` input positions."""

    bits: int = 8
    kind: ClassVar[str] = "global_pool"

    def cycles(self, fold: Fold) -> int:
        return self.pixels * self.channels // fold.pe + self.channels // fold.pe

    def resources(self, fold: Fold) -> Resources:
        return Resources(ff=fold.pe * (self.bits + 2 * self.out_bits))

    @property
    def out_bits(self) -> int:
        return self.bits + math.ceil(math.log2(max(self.pixels, 2)))

    @property
    def stream_bits(self) -> int:
        return self.out_bits


@dataclass
class StreamReshape(Unit):
    """A reordering of the stream such as pixel shuffle (DepthToSpace), which FINN runs as
    shuffle units; ``buffer_elements`` is what it holds to reorder (block RAM)."""

    operation: str = "reshape"
    bits: int = 8
    buffer_elements: int = 0
    kind: ClassVar[str] = "reshape"

    def resources(self, fold: Fold) -> Resources:
        width = fold.pe * self.bits
        bram = (
            bram18_for_memory(self.buffer_elements / fold.pe, width) if self.buffer_elements else 0
        )
        return Resources(ff=2 * width, bram18=bram)

    @property
    def stream_bits(self) -> int:
        return self.bits


@dataclass
class Upsample(Unit):
    """FINN UpsampleNearestNeighbour: one output pixel (all channels) per cycle."""

    bits: int = 8
    in_w: int = 1
    kind: ClassVar[str] = "upsample"

    def fold_limits(self) -> dict[str, int]:
        return {}

    def cycles(self, fold: Fold) -> int:
        return self.pixels

    def resources(self, fold: Fold) -> Resources:
        width = self.channels * self.bits  # one input row is kept and replayed
        return Resources(ff=2 * width, bram18=bram18_for_memory(self.in_w, width))

    @property
    def stream_bits(self) -> int:
        return self.bits


@dataclass
class Elementwise(Unit):
    """FINN ElementwiseBinary: a residual add, or the output's scale / bias."""

    operation: str = "add"
    bits: int = 8
    kind: ClassVar[str] = "elementwise"

    def resources(self, fold: Fold) -> Resources:
        return Resources(ff=fold.pe * 3 * self.bits)

    @property
    def stream_bits(self) -> int:
        return self.bits + 1 if self.operation == "add" else FLOAT_BITS
