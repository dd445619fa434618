"""Map a quantized model onto a FINN-style streaming dataflow: one unit per operation.

The model is traced with torch.fx (quantized layers as leaves) and run once on a
zero input to learn every tensor's shape; the model itself is never modified (the
trace runs on a copy). Mapping, as FINN's streamlining would do it:

- a quantized Linear / Conv is a matrix-vector unit (MVAU), a Conv preceded by padding
  and a sliding-window unit (unless it is 1x1 with stride 1), a ConvTranspose by pixel
  padding, a sliding window and an MVAU at the output resolution;
- the next layer's input quantizer becomes the MVAU's thresholds when the MVAU's output
  reaches it only through BatchNorm, monotone activations, max pooling, reshapes,
  pixel shuffle or nearest upsampling (all commute with a monotone quantizer);
  otherwise the stream is quantized by a standalone thresholding unit;
- max/average pooling (a depthwise sliding window and a pool unit), global average
  pooling, pixel shuffle, nearest upsampling and residual adds get their own units; a
  flatten has none (FINN folds the reordering into the next layer's weights), and a
  quantizer after it thresholds the stream in its layout before the flatten.

An operation with no dataflow unit is an error that names it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import operator

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from qdistill.hardware.compute import matrix_vector_unit, vector_vector_unit
from qdistill.hardware.concat import Concat
from qdistill.hardware.dot_product import MatrixVector
from qdistill.hardware.stream import (
    DataflowError,
    Stream,
    absorbed,
    global_pool_unit,
    moved,
    need_quantized,
    pair,
    pixel_shuffle_unit,
    pool_units,
    upsample_unit,
    window_units,
)
from qdistill.hardware.units import (
    FLOAT_BITS,
    Elementwise,
    SlidingWindow,
    StreamReshape,
    Thresholding,
    Unit,
)
from qdistill.quant.modules import QuantLayer, QuantLinear, QuantPooling

# Element-wise operations a threshold absorbs (monotone, or per-channel affine).
ABSORBED_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.Hardtanh, nn.Tanh, nn.Sigmoid,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.Identity, nn.Dropout,
)  # fmt: skip
ABSORBED_FUNCTIONS = {torch.relu, torch.tanh, torch.sigmoid, nn.functional.relu}
PASS_THROUGH_FUNCTIONS = {"getattr", "size", "dim", "contiguous"}


class _Tracer(fx.Tracer):
    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        # subclasses of the absorbed modules (a BatchNorm read from ONNX) stay whole too
        whole = isinstance(module, (QuantLayer, QuantPooling, *ABSORBED_MODULES))
        return whole or super().is_leaf_module(module, qualified_name)


# The shapes are learned by running the model once on zeros: bound what that allocates
# (1 x 2048 x 4096, a 1080p RGB frame; activations are some tens of times larger).
MAX_INPUT_ELEMENTS = 2**23


def dataflow_units(model: nn.Module, input_shape: tuple[int, ...]) -> list[Unit]:
    """The dataflow units of ``model`` for one input of ``input_shape`` (no batch dim)."""
    if math.prod(input_shape) > MAX_INPUT_ELEMENTS:
        raise DataflowError(
            f"input shape {list(input_shape)} has over {MAX_INPUT_ELEMENTS:,} values; estimate "
            "at a smaller size (cycles scale with the pixel count)"
        )
    copy_ = copy.deepcopy(model).eval().cpu()
    try:
        graph = _Tracer().trace(copy_)
    except Exception as err:  # fx raises many kinds of errors on dynamic control flow
        raise DataflowError(
            f"the model could not be traced for the dataflow estimate ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); it needs a static graph"
        ) from None
    module = fx.GraphModule(copy_, graph)
    try:  # ShapeProp prints the traceback of a failing node itself: keep it quiet
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            ShapeProp(module).propagate(torch.zeros(1, *input_shape))
    except (RuntimeError, ValueError) as err:
        cause = str(err.__cause__ or err).strip().splitlines()
        raise DataflowError(
            f"the model does not take inputs of shape {list(input_shape)} "
            f"({cause[0][:200] if cause else type(err).__name__})"
        ) from None
    return _Mapper(module).map()


class _Mapper:
    def __init__(self, module: fx.GraphModule) -> None:
        self.module = module
        self.modules = dict(module.named_modules())
        self.units: list[Unit] = []
        self.streams: dict[str, Stream] = {}
        # units fed by an MVAU's output before its width is known (it becomes the width
        # of the thresholds a later quantizer gives that MVAU)
        self.followers: dict[str, list[Unit]] = {}

    def map(self) -> list[Unit]:
        for node in self.module.graph.nodes:
            if node.op == "placeholder":
                self.streams[node.name] = Stream("", FLOAT_BITS, _shape(node), False)
            elif node.op == "output":
                self._finish_output(self._arg_stream(node.args[0]))
            else:
                self.streams[node.name] = self._map_node(node)
        if not any(isinstance(u, MatrixVector) for u in self.units):
            raise DataflowError("the model has no quantized Linear or Conv layer to map")
        return self.units

    # -- helpers -------------------------------------------------------------------------
    def _add(self, unit: Unit, after: Stream | None = None) -> Unit:
        if any(u.name == unit.name for u in self.units):
            unit.name = f"{unit.name}_{len(self.units)}"
        self.units.append(unit)
        if after is not None and after.pending is not None:
            self.followers.setdefault(after.pending.name, []).append(unit)
        return unit

    def _arg_stream(self, arg) -> Stream:
        if isinstance(arg, (tuple, list)):
            if len(arg) != 1:
                raise DataflowError("models with several outputs are not mapped")
            arg = arg[0]
        return self.streams[arg.name]

    def _label(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"{node.target!r} ({type(self.modules[node.target]).__name__})"
        return f"{node.name!r} ({getattr(node.target, '__name__', node.target)})"

    # -- nodes ---------------------------------------------------------------------------
    def _map_node(self, node: fx.Node) -> Stream:
        if node.op == "call_module":
            return self._map_module(node, self.modules[node.target])
        if node.op == "call_function" and node.target in (operator.add, torch.add):
            return self._map_add(node)
        if node.op == "call_function" and node.target in (torch.cat, torch.concat):
            return self._map_concat(node)
        if node.op in ("call_function", "call_method"):
            return self._map_function(node)
        if node.op == "get_attr":
            raise DataflowError(
                f"{self._label(node)}: a tensor constant in the graph is not mapped"
            )
        raise DataflowError(f"{self._label(node)} has no dataflow unit")

    def _map_module(self, node: fx.Node, module: nn.Module) -> Stream:
        stream = self._arg_stream(node.args[0])
        if isinstance(module, QuantLayer):
            return self._map_layer(node, module, stream)
        if isinstance(module, QuantPooling):  # its input quantizer, then the pooling
            quantizer = module.input_quantizer
            stream = self._quantize(node, stream, 1 if quantizer.binary else quantizer.spec.bits)
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            raise DataflowError(
                f"layer {self._label(node)} is not quantized; a dataflow accelerator needs every "
                "Linear/Conv quantized (weights and inputs): quantize the model first"
            )
        if isinstance(module, ABSORBED_MODULES):
            return absorbed(stream, nonlinear=not isinstance(module, (nn.Identity, nn.Dropout)))
        if isinstance(module, nn.Flatten):
            return self._reshape(node, stream)
        if isinstance(module, nn.PixelShuffle):
            return self._pixel_shuffle(node, stream, module.upscale_factor)
        if isinstance(module, nn.MaxPool2d):
            return self._pool(node, stream, module.kernel_size, module.stride, "max")
        if isinstance(module, nn.AvgPool2d):
            return self._pool(node, stream, module.kernel_size, module.stride, "average")
        if isinstance(module, nn.AdaptiveAvgPool2d) and _shape(node)[1:] in ((1, 1), (1,)):
            if len(stream.shape) == 3 and stream.shape[1] == stream.shape[2]:
                # FINN pools a square map as one window (QuantAvgPool2d)
                side = stream.shape[1]
                return self._pool(node, stream, side, side, "average")
            return self._global_pool(node, stream)
        if isinstance(module, nn.Upsample) and module.mode == "nearest":
            return self._upsample(node, stream)
        if isinstance(module, nn.Sequential) and len(module) == 0:
            return stream
        raise DataflowError(
            f"layer {self._label(node)} has no dataflow unit; mappable layers: quantized "
            "Linear/Conv1d/Conv2d/ConvTranspose2d, BatchNorm, monotone activations, MaxPool2d, "
            "AvgPool2d, global average pooling, Flatten, PixelShuffle, nearest Upsample, add"
        )

    def _map_function(self, node: fx.Node) -> Stream:
        name = getattr(node.target, "__name__", str(node.target))
        stream = self._arg_stream(node.args[0]) if node.args else None
        if stream is None or not isinstance(node.args[0], fx.Node):
            raise DataflowError(f"{self._label(node)} has no dataflow unit")
        if node.target in ABSORBED_FUNCTIONS or name in ("relu", "tanh", "sigmoid"):
            return absorbed(stream, nonlinear=True)
        if name in ("flatten", "view", "reshape"):
            return self._reshape(node, stream)
        if name == "pixel_shuffle":
            return self._pixel_shuffle(node, stream, int(node.args[1]))
        if name in PASS_THROUGH_FUNCTIONS:
            return stream
        raise DataflowError(f"operation {self._label(node)} has no dataflow unit")

    # -- compute -------------------------------------------------------------------------
    def _map_layer(self, node: fx.Node, layer: QuantLayer, stream: Stream) -> Stream:
        if layer.input_quantizer is None or layer.weight_quantizer is None:
            raise DataflowError(
                f"layer {node.target!r} has float "
                f"{'inputs' if layer.weight_quantizer else 'weights'}; a dataflow accelerator "
                "needs weights and inputs quantized (e.g. plan w4a4)"
            )
        groups = getattr(layer, "groups", 1)
        depthwise = groups > 1 and groups == layer.in_channels == layer.out_channels
        if groups != 1 and not depthwise:
            raise DataflowError(
                f"layer {node.target!r}: a grouped convolution ({groups} groups of "
                f"{layer.in_channels} channels) has no FINN unit; only depthwise ones "
                "(groups = in = out channels) and ordinary ones are mapped"
            )
        act = layer.input_quantizer
        stream = self._quantize(node, stream, 1 if act.binary else act.spec.bits)
        out_shape, source, window = _shape(node), stream.producer, ""
        if not isinstance(layer, QuantLinear):
            for unit in window_units(str(node.target), layer, stream, out_shape, depthwise):
                source = self._add(unit).name
                window = unit.name if isinstance(unit, SlidingWindow) else window
        if depthwise:
            unit = vector_vector_unit(str(node.target), layer, source, out_shape, window)
        else:
            unit = matrix_vector_unit(str(node.target), layer, source, out_shape)
        self._add(unit)
        return Stream(unit.name, unit.acc_bits, out_shape, False, pending=unit)

    def _quantize(self, node: fx.Node, stream: Stream, bits: int) -> Stream:
        """The stream quantized to ``bits``: the producing MVAU's thresholds when nothing
        in between stops it, else a standalone thresholding unit."""
        if stream.pending is not None:
            stream.pending.output_bits = bits
            for unit in self.followers.pop(stream.pending.name, []):
                unit.bits = bits
            return Stream(stream.producer, bits, stream.shape, True, layout=stream.layout)
        if stream.quantized and not stream.nonlinear and stream.bits == bits:
            return stream
        unit = self._add(
            Thresholding(
                name=f"{node.target}:input_thresholds",
                layer=str(node.target),
                channels=stream.channels,
                pixels=stream.pixels,
                inputs=[stream.producer],
                input_bits=stream.bits,
                output_bits=bits,
            )
        )
        return Stream(unit.name, bits, stream.shape, True, layout=stream.layout)

    # -- other units ---------------------------------------------------------------------
    def _reshape(self, node: fx.Node, stream: Stream) -> Stream:
        flattened = moved(stream, _shape(node))
        flattened.layout = stream.layout or stream.shape
        return flattened

    def _pixel_shuffle(self, node: fx.Node, stream: Stream, factor: int) -> Stream:
        return self._chain(
            [pixel_shuffle_unit(_layer(node), stream, _shape(node), factor)], stream, _shape(node)
        )

    def _pool(self, node, stream: Stream, kernel, stride, kind: str) -> Stream:
        if kind == "average" and not stream.quantized:
            need_quantized(self._label(node), stream, _layer(node))
        if len(stream.shape) != 3:
            raise DataflowError(f"pooling {self._label(node)}: only 2-D pooling is mapped")
        k, s = pair(kernel)[0], pair(stride or kernel)[0]
        units = pool_units(_layer(node), stream, _shape(node), k, s, kind)
        pooled = self._chain(units, stream, _shape(node))
        if kind == "max":
            return pooled
        # an average is the exact sum of k^2 codes, off the grid: the next quantizer
        # thresholds it again
        return Stream(
            pooled.producer, stream.bits + math.ceil(math.log2(k * k)), pooled.shape, False
        )

    def _global_pool(self, node: fx.Node, stream: Stream) -> Stream:
        if not stream.quantized:
            need_quantized(self._label(node), stream, _layer(node))
        unit = self._add(global_pool_unit(_layer(node), stream))
        return Stream(unit.name, unit.out_bits, _shape(node), False)

    def _upsample(self, node: fx.Node, stream: Stream) -> Stream:
        return self._chain(
            [upsample_unit(_layer(node), stream, _shape(node))], stream, _shape(node)
        )

    def _chain(self, units: list[Unit], stream: Stream, out: tuple[int, ...]) -> Stream:
        """Add ``units`` (in order) on ``stream``; the stream of shape ``out`` after them."""
        for unit in units:
            self._add(unit, after=stream)
        return moved(stream, out, units[-1].name)

    def _map_add(self, node: fx.Node) -> Stream:
        left, right = (self.streams[a.name] for a in node.args[:2])
        for side in (left, right):
            if side.nonlinear and not side.quantized:
                need_quantized(self._label(node), side)
        bits = max(left.bits, right.bits)
        unit = self._add(
            Elementwise(
                name=f"{node.name}:add",
                layer=node.name,
                channels=left.channels,
                pixels=left.pixels,
                inputs=[left.producer, right.producer],
                operation="add",
                bits=bits,
            )
        )
        return Stream(unit.name, bits + 1, left.shape, False)

    def _map_concat(self, node: fx.Node) -> Stream:
        """A channel concatenation (a DenseNet's): FINN's StreamingConcat of the input
        streams as they are. An MVAU output among them stays at accumulator width (a
        quantizer after the join cannot become one branch's thresholds), so the join's
        consumers quantize it with thresholding units of their own."""
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        parts = [self.streams[a.name] for a in node.args[0]]
        if dim not in (1, -3) or any(len(p.shape) != 3 for p in parts):
            raise DataflowError(
                f"{self._label(node)}: only channel concatenation of images is mapped"
            )
        unit = self._add(
            Concat(
                name=f"{node.name}:concat",
                layer=node.name,
                channels=sum(p.channels for p in parts),
                pixels=parts[0].pixels,
                inputs=[p.producer for p in parts],
                parts=[p.channels for p in parts],
                bits=max(p.bits for p in parts),
            )
        )
        quantized = all(p.quantized and p.bits == parts[0].bits for p in parts)
        nonlinear = any(p.nonlinear for p in parts)
        return Stream(unit.name, unit.bits, _shape(node), quantized, nonlinear=nonlinear)

    def _finish_output(self, stream: Stream) -> None:
        """A pixel shuffle right before the output is left to the host, as FINN leaves
        trailing reshapes outside the accelerator. An MVAU that ends the network outputs
        its accumulator; its per-channel scale (and bias) become element-wise units."""
        while isinstance(self.units[-1], StreamReshape) and self.units[-1].name == stream.producer:
            stream = moved(stream, stream.shape, self.units.pop().inputs[0])
        if stream.pending is None:
            return
        last = stream.pending
        operations = ["mul"] + (["add"] if self.modules[last.layer].bias is not None else [])
        source = stream.producer
        for operation in operations:
            unit = self._add(
                Elementwise(
                    name=f"{last.layer}:output_{'scale' if operation == 'mul' else 'bias'}",
                    layer=last.layer,
                    channels=last.channels,
                    pixels=last.pixels,
                    inputs=[source],
                    operation=operation,
                    bits=last.acc_bits,
                )
            )
            source = unit.name


def _shape(node: fx.Node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise DataflowError(f"{node.name!r} does not produce one tensor; it is not mapped")
    return tuple(int(d) for d in meta.shape[1:])


def _layer(node: fx.Node) -> str:
    return str(node.target) if node.op == "call_module" else node.name
