"""What flows between dataflow units, and the units that only move or reduce it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from qdistill.errors import ConfigError
from qdistill.hardware.depthwise import VectorVector
from qdistill.hardware.dot_product import MatrixVector
from qdistill.hardware.units import (
    GlobalPool,
    Padding,
    Pool,
    SlidingWindow,
    StreamReshape,
    Unit,
    Upsample,
)
from qdistill.quant.modules import QuantConvTranspose2d, QuantLayer


class DataflowError(ConfigError):
    """The model cannot be mapped onto dataflow units (unquantized or unmappable layer)."""


@dataclass
class Stream:
    """What flows on an edge: its producer, width, and whether it is quantized yet."""

    producer: str  # unit name, "" for the host input
    bits: int
    shape: tuple[int, ...]  # without the batch dimension (C,), (C, H, W), ...
    quantized: bool
    # an MVAU or VVAU whose thresholds may still absorb a quantizer
    pending: MatrixVector | VectorVector | None = None
    nonlinear: bool = False  # an activation waits for a threshold to absorb it
    layout: tuple[int, ...] | None = None  # the shape as streamed, if a flatten changed it

    @property
    def channels(self) -> int:
        return (self.layout or self.shape)[0]

    @property
    def pixels(self) -> int:
        return math.prod((self.layout or self.shape)[1:])


def moved(stream: Stream, shape: tuple[int, ...], producer: str | None = None) -> Stream:
    """``stream`` after a unit (``producer``) or an operation that changed its shape."""
    return Stream(
        producer or stream.producer, stream.bits, shape, stream.quantized, stream.pending,
        stream.nonlinear,
    )  # fmt: skip


def absorbed(stream: Stream, nonlinear: bool) -> Stream:
    result = moved(stream, stream.shape)
    result.layout = stream.layout
    result.nonlinear = stream.nonlinear or nonlinear
    return result


def need_quantized(label: str, stream: Stream, module: str | None = None) -> None:
    source = stream.pending.layer if stream.pending else stream.producer or "the input"
    fix = f": add a plan rule naming it, e.g. {{'{module}': 'a8'}}" if module else ""
    raise DataflowError(
        f"{label} receives an unquantized tensor from {source!r} (an activation at "
        f"accumulator precision); a dataflow accelerator needs a quantizer before it{fix}"
    )


def pixel_shuffle_unit(layer: str, stream: Stream, out: tuple[int, ...], factor: int) -> Unit:
    return StreamReshape(
        name=f"{layer}:pixel_shuffle",
        layer=layer,
        channels=out[0],
        pixels=math.prod(out[1:]),
        inputs=[stream.producer],
        operation="pixel_shuffle",
        bits=stream.bits,
        # two banks of r output rows: one fills while the other drains
        buffer_elements=2 * factor * out[2] * out[0],
    )


def pool_units(
    layer: str, stream: Stream, out: tuple[int, ...], kernel: int, stride: int, kind: str
) -> list[Unit]:
    """FINN's pooling: a depthwise sliding window, then the pool unit."""
    window = SlidingWindow(
        name=f"{layer}:pool_window",
        layer=layer,
        channels=stream.channels,
        pixels=math.prod(out[1:]),
        inputs=[stream.producer],
        in_h=stream.shape[1],
        in_w=stream.shape[2],
        out_h=out[1],
        out_w=out[2],
        kernel=(kernel, kernel),
        stride=(stride, stride),
        bits=stream.bits,
        depthwise=True,
    )
    pool = Pool(
        name=f"{layer}:{kind}_pool",
        layer=layer,
        channels=out[0],
        pixels=math.prod(out[1:]),
        inputs=[window.name],
        kernel=kernel,
        bits=stream.bits,
        window=window.name,
    )
    return [window, pool]


def global_pool_unit(layer: str, stream: Stream) -> GlobalPool:
    return GlobalPool(
        name=f"{layer}:global_pool",
        layer=layer,
        channels=stream.channels,
        pixels=stream.pixels,
        inputs=[stream.producer],
        bits=stream.bits,
    )


def upsample_unit(layer: str, stream: Stream, out: tuple[int, ...]) -> Unit:
    return Upsample(
        name=f"{layer}:upsample",
        layer=layer,
        channels=out[0],
        pixels=math.prod(out[1:]),
        inputs=[stream.producer],
        bits=stream.bits,
        in_w=stream.shape[-1],
    )


def window_units(
    name: str, layer: QuantLayer, stream: Stream, out_shape: tuple[int, ...], depthwise=False
) -> list[Unit]:
    """Padding (or a transposed convolution's pixel padding) and the sliding window in
    front of a convolution (``depthwise``: one window per channel, for a VVAU); none for
    a 1x1 stride-1 convolution without padding."""
    kernel = tuple(layer.kernel_size) if len(layer.kernel_size) == 2 else (1, *layer.kernel_size)
    in_hw = stream.shape[1:] if len(stream.shape) == 3 else (1, stream.shape[1])
    out_hw = out_shape[1:] if len(out_shape) == 3 else (1, out_shape[1])
    if isinstance(layer, QuantConvTranspose2d):  # zeros between pixels, then a stride-1 conv
        stride, dilation = (1, 1), (1, 1)
        in_hw = tuple(i + (i - 1) * (s - 1) for i, s in zip(in_hw, layer.stride, strict=True))
        pad = tuple(k - 1 - p for k, p in zip(kernel, pair(layer.padding), strict=True))
    else:
        if isinstance(layer.padding, str):
            raise DataflowError(f"layer {name!r}: string padding is not mapped; use integers")
        stride, dilation, pad = pair(layer.stride), pair(layer.dilation), pair(layer.padding)
        if len(stream.shape) == 2:  # Conv1d as a 1 x L image
            stride, dilation, pad = (1, stride[-1]), (1, dilation[-1]), (0, pad[-1])
    padded = tuple(i + 2 * p for i, p in zip(in_hw, pad, strict=True))
    units: list[Unit] = []
    source = stream.producer
    if isinstance(layer, QuantConvTranspose2d) or any(pad):
        units.append(
            Padding(
                name=f"{name}:padding",
                layer=name,
                channels=stream.channels,
                pixels=math.prod(padded),
                inputs=[source],
                bits=stream.bits,
            )
        )
        source = units[-1].name
    if kernel != (1, 1) or stride != (1, 1):
        units.append(
            SlidingWindow(
                name=f"{name}:sliding_window",
                layer=name,
                channels=stream.channels,
                pixels=math.prod(out_hw),
                inputs=[source],
                in_h=padded[0],
                in_w=padded[1],
                out_h=out_hw[0],
                out_w=out_hw[1],
                kernel=kernel,
                stride=stride,
                dilation=dilation,
                bits=stream.bits,
                depthwise=depthwise,
            )
        )
    return units


def pair(value) -> tuple[int, int]:
    """An int or a 1- or 2-sequence as (height, width)."""
    if isinstance(value, int):
        return (value, value)
    return tuple(int(v) for v in value) if len(value) == 2 else (int(value[0]),) * 2
