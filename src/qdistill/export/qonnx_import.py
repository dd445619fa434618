"""Read a QONNX file back as a qdistill quantized model, so a file from qdistill, Brevitas
or any QONNX tool can be estimated (and run) like a checkpoint.

Gemm / MatMul (+ a constant Add: its bias) / Conv become quantized layers holding the
weight Quant's scale and zero point (so the integer codes are the file's) and, as input
quantizer, the activation Quant that reaches them: a per-tensor monotone quantizer with
q(0) = 0 moves down through ReLU, max pooling, reshapes and pixel shuffle, or quantizes
the input of an average pooling. Other nodes become the torch operations that compute
them; FINN's integer average pool (Mul(k^2) -> Trunc keeping every bit -> Mul(1/k^2)) is
the identity on the mean, its Reshape -> Transpose -> Reshape a PixelShuffle. Anything
else is an error that names the node.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import fx, nn

from qdistill.export.qonnx_nodes import (
    QonnxImportError,
    Quant,
    attribute,
    batch_norm,
    fixed_input_shape,
    node_error,
    quantized_as,
    read_quant,
    set_bias,
    symmetric_pads,
    window,
)

PIXEL_SHUFFLE_PERM = [0, 1, 4, 2, 5, 3]  # FINN's Reshape -> Transpose -> Reshape (CRD)
ACTIVATIONS = {"Relu": nn.ReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh}
# Operations an activation quantizer moves down through (see the module docstring).
COMMUTING = {"Relu", "MaxPool", "Flatten", "Reshape", "DepthToSpace", "Identity", "Dropout"}


@dataclass
class _Value:
    """An ONNX tensor while the graph is rebuilt."""

    node: fx.Node
    quant: Quant | None = None  # an activation quantizer not yet placed on a consumer
    factor: float = 1.0  # a constant multiplier not yet cancelled (FINN's average pool)


@dataclass(frozen=True)
class ImportedModel:
    model: nn.Module  # quantized, in eval mode
    input_shape: tuple[int, ...] | None  # the file's (no batch dimension), if fixed


def import_qonnx(path: str | Path) -> ImportedModel:
    """Rebuild the QONNX model at ``path`` as a quantized qdistill model."""
    if not Path(path).is_file():
        raise QonnxImportError(f"QONNX file {path} does not exist")
    try:
        proto = onnx.load(str(path))
    except Exception as err:  # protobuf's DecodeError and OSError alike
        raise QonnxImportError(f"{path} is not a readable ONNX file ({err})") from None
    return _Importer(proto, str(path)).run()


@dataclass
class _Importer:
    proto: onnx.ModelProto
    source: str
    graph: fx.Graph = field(default_factory=fx.Graph)
    root: nn.Module = field(default_factory=nn.Module)
    values: dict[str, _Value] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    weights: dict[str, tuple[np.ndarray, Quant]] = field(default_factory=dict)
    specs: dict[str, tuple[Quant | None, Quant | None]] = field(default_factory=dict)
    skipped: set[int] = field(default_factory=set)

    def run(self) -> ImportedModel:
        graph = self.proto.graph
        self.constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        if not any(n.op_type in ("Quant", "BipolarQuant") for n in graph.node):
            raise QonnxImportError(
                f"{self.source} has no Quant nodes: it is not a quantized QONNX model (export "
                "it with --format qonnx or finn)"
            )
        inputs = [i for i in graph.input if i.name not in self.constants]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise QonnxImportError(f"{self.source}: only models with one input and one output")
        input_shape = fixed_input_shape(inputs[0])
        self.values[inputs[0].name] = _Value(self.graph.placeholder("x"))
        for index, node in enumerate(graph.node):
            if index not in self.skipped:
                self._node(node)
        output = self._value(graph.output[0].name, "the output")
        if output.quant is not None:
            raise QonnxImportError(f"{self.source}: a Quant on the network output is not mapped")
        self.graph.output(output.node)
        if not self.specs:
            raise QonnxImportError(f"{self.source} has no quantized Linear/Conv/pooling")
        model = quantized_as(fx.GraphModule(self.root, self.graph), self.specs)
        return ImportedModel(model.eval(), input_shape)

    # -- helpers -------------------------------------------------------------------------
    def _value(self, name: str, what: str) -> _Value:
        if name not in self.values:
            raise QonnxImportError(
                f"{self.source}: {what} ({name!r}) is not computed from the input"
            )
        value = self.values[name]
        if value.factor != 1.0:
            raise QonnxImportError(
                f"{self.source}: {what} is multiplied by a constant {value.factor:g}; only "
                "FINN's integer average pool (Mul -> Trunc -> Mul) is mapped"
            )
        return value

    def _module(self, node: onnx.NodeProto, module: nn.Module, *args) -> fx.Node:
        name = re.sub(r"\W+", "_", node.name).strip("_") or node.op_type.lower()
        if not name[0].isalpha():
            name = f"n_{name}"
        while hasattr(self.root, name):
            name += "_"
        self.root.add_module(name, module)
        return self.graph.call_module(name, args)

    def _consumers(self, tensor: str) -> list[tuple[int, onnx.NodeProto]]:
        return [(i, n) for i, n in enumerate(self.proto.graph.node) if tensor in n.input]

    def _fail(self, node: onnx.NodeProto, why: str) -> QonnxImportError:
        return node_error(self.source, node, why)

    # -- nodes ---------------------------------------------------------------------------
    def _node(self, node: onnx.NodeProto) -> None:
        cast_of_constant = node.op_type == "CastLike" and node.input[0] in self.constants
        if cast_of_constant or all(i in self.constants for i in node.input if i):
            self._constant(node)
            return
        op = node.op_type
        if op in ("Quant", "BipolarQuant"):
            value = self._value(node.input[0], f"the input of {node.name}")
            if value.quant is not None:
                raise self._fail(node, "quantizes an already quantized tensor; not mapped")
            self.values[node.output[0]] = _Value(
                value.node, read_quant(node, self.constants, self.source)
            )
            return
        handler = {
            "Gemm": self._linear,
            "MatMul": self._linear,
            "Conv": self._conv,
            "Add": self._add,
            "Mul": self._mul,
            "Trunc": self._trunc,
            "BatchNormalization": self._batch_norm,
            "MaxPool": self._max_pool,
            "AveragePool": self._average_pool,
            "GlobalAveragePool": self._global_pool,
            "ReduceMean": self._global_pool,
            "Flatten": self._flatten,
            "Reshape": self._reshape,
            "DepthToSpace": self._depth_to_space,
            "Resize": self._resize,
            "Identity": self._pass,
            "Dropout": self._pass,
            "CastLike": self._pass,
        }.get(op)
        if handler is None and op in ACTIVATIONS:
            handler = self._activation
        if handler is None and op in ("Shape", "Gather", "Concat", "Unsqueeze", "Slice"):
            raise self._fail(node, "computes shapes at run time; clean the file with qonnx's "
                             "cleanup (qonnx-cleanup FILE) first")  # fmt: skip
        if handler is None:
            raise self._fail(node, "has no mapping; qdistill reads Quant, Gemm, MatMul, Conv, "
                             "Add, BatchNormalization, Relu/Sigmoid/Tanh, pooling, Flatten, "
                             "Reshape, DepthToSpace and nearest Resize")  # fmt: skip
        handler(node)

    def _constant(self, node: onnx.NodeProto) -> None:
        op, ins = node.op_type, [self.constants.get(i) for i in node.input if i]
        if op in ("Quant", "BipolarQuant"):
            quant = read_quant(node, self.constants, self.source)
            self.weights[node.output[0]] = (ins[0].astype(np.float32), quant)
        elif op in ("Identity", "Cast", "CastLike"):
            self.constants[node.output[0]] = ins[0]
        elif op == "Expand":
            self.constants[node.output[0]] = np.broadcast_to(ins[0], ins[1].astype(int)).copy()
        elif op == "Constant":
            self.constants[node.output[0]] = numpy_helper.to_array(attribute(node, "value"))
        else:
            raise self._fail(node, "computes a constant; run qonnx's cleanup on the file first")

    def _pass(self, node: onnx.NodeProto) -> None:
        self.values[node.output[0]] = self.values[node.input[0]]

    def _placed(self, node: onnx.NodeProto) -> _Value:
        """The node's input; a pending quantizer must move through (COMMUTING) or stop."""
        value = self._value(node.input[0], f"the input of {node.name}")
        if value.quant is not None and node.op_type not in COMMUTING:
            raise self._fail(node, "takes a quantized tensor it does not commute with")
        return value

    def _then(self, node: onnx.NodeProto, fx_node: fx.Node, value: _Value) -> None:
        self.values[node.output[0]] = _Value(fx_node, value.quant)

    # -- compute layers ------------------------------------------------------------------
    def _layer_weight(self, node: onnx.NodeProto, tensor: str) -> tuple[np.ndarray, Quant]:
        if tensor not in self.weights:
            raise self._fail(node, "has weights without a Quant node; quantize them")
        return self.weights[tensor]

    def _per_output_channel(self, node, quant: Quant, axis: int, channels: int) -> Quant:
        along = quant.along_channels(axis, channels)
        if along is None:
            raise self._fail(node, "has weight scales that are not per output channel")
        return along

    def _register(self, node: onnx.NodeProto, module: nn.Module, weight: Quant) -> None:
        value = self._value(node.input[0], f"the input of {node.name}")
        fx_node = self._module(node, module, value.node)
        self.specs[fx_node.target] = (weight, value.quant)
        self.values[node.output[0]] = _Value(fx_node)

    def _linear(self, node: onnx.NodeProto) -> None:
        values, quant = self._layer_weight(node, node.input[1])
        transposed = node.op_type == "Gemm" and bool(attribute(node, "transB", 0))
        if node.op_type == "Gemm" and (
            attribute(node, "transA", 0) or attribute(node, "alpha", 1.0) != 1.0
            or attribute(node, "beta", 1.0) != 1.0
        ):  # fmt: skip
            raise self._fail(node, "uses transA, alpha or beta; not mapped")
        weight = values if transposed else values.T
        quant = self._per_output_channel(node, quant, 0 if transposed else 1, weight.shape[0])
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=len(node.input) > 2)
        linear.weight.data = torch.as_tensor(np.ascontiguousarray(weight))
        if len(node.input) > 2:
            set_bias(linear, self.constants.get(node.input[2]), node, self.source)
        self._register(node, linear, quant)

    def _conv(self, node: onnx.NodeProto) -> None:
        values, quant = self._layer_weight(node, node.input[1])
        if values.ndim != 4 or attribute(node, "auto_pad", b"NOTSET") != b"NOTSET":
            raise self._fail(node, "is not a 2-D convolution with explicit pads")
        quant = self._per_output_channel(node, quant, 0, values.shape[0])
        groups = attribute(node, "group", 1)
        conv = nn.Conv2d(
            values.shape[1] * groups,
            values.shape[0],
            tuple(values.shape[2:]),
            stride=tuple(attribute(node, "strides", [1, 1])),
            padding=symmetric_pads(node, self.source),
            dilation=tuple(attribute(node, "dilations", [1, 1])),
            groups=groups,
            bias=len(node.input) > 2 and bool(node.input[2]),
        )
        conv.weight.data = torch.as_tensor(values.copy())
        if conv.bias is not None:
            set_bias(conv, self.constants.get(node.input[2]), node, self.source)
        self._register(node, conv, quant)

    def _add(self, node: onnx.NodeProto) -> None:
        constant = next((self.constants[i] for i in node.input if i in self.constants), None)
        if constant is not None:  # MatMul + Add: the layer's bias
            value = self._value(next(i for i in node.input if i not in self.constants), "")
            layer = getattr(self.root, str(value.node.target), None)
            if not isinstance(layer, nn.Linear) or layer.bias is not None:
                raise self._fail(node, "adds a constant that is not a Linear layer's bias")
            layer.bias = nn.Parameter(torch.zeros(layer.out_features))
            set_bias(layer, constant, node, self.source)
            self.values[node.output[0]] = value
            return
        left, right = (self._value(i, f"an input of {node.name}") for i in node.input)
        if left.quant is not None or right.quant is not None:
            raise self._fail(node, "adds a quantized tensor; not mapped")
        self.values[node.output[0]] = _Value(
            self.graph.call_function(operator.add, (left.node, right.node))
        )

    def _mul(self, node: onnx.NodeProto) -> None:
        constant = next((self.constants[i] for i in node.input if i in self.constants), None)
        if constant is None or constant.size != 1:
            raise self._fail(node, "multiplies by something other than a scalar constant")
        value = self.values[next(i for i in node.input if i not in self.constants)]
        factor = value.factor * float(constant.reshape(-1)[0])
        factor = 1.0 if abs(factor - 1.0) < 1e-6 else factor  # Mul(k^2) then Mul(1/k^2)
        self.values[node.output[0]] = _Value(value.node, value.quant, factor)

    def _trunc(self, node: onnx.NodeProto) -> None:
        value = self.values[node.input[0]]
        bits = [self.constants.get(i) for i in node.input[3:5]]
        if len(bits) != 2 or any(b is None for b in bits) or float(bits[0]) != float(bits[1]):
            raise self._fail(
                node, "drops bits; only FINN's average-pool Trunc keeping every bit is mapped"
            )
        self.values[node.output[0]] = value

    # -- element-wise, pooling and data movement -----------------------------------------
    def _activation(self, node: onnx.NodeProto) -> None:
        value = self._placed(node)
        self._then(node, self._module(node, ACTIVATIONS[node.op_type](), value.node), value)

    def _batch_norm(self, node: onnx.NodeProto) -> None:
        value = self._placed(node)
        norm = batch_norm(node, self.constants, self.source)
        self._then(node, self._module(node, norm, value.node), value)

    def _max_pool(self, node: onnx.NodeProto) -> None:
        value = self._placed(node)
        self._then(
            node, self._module(node, nn.MaxPool2d(**window(node, self.source)), value.node), value
        )

    def _pooling(self, node: onnx.NodeProto, pool: nn.Module) -> fx.Node:
        """An average pooling; a quantizer reaching it quantizes its input."""
        value = self._value(node.input[0], f"the input of {node.name}")
        fx_node = self._module(node, pool, value.node)
        if value.quant is not None:
            self.specs[fx_node.target] = (None, value.quant)
        return fx_node

    def _average_pool(self, node: onnx.NodeProto) -> None:
        pool = nn.AvgPool2d(
            **window(node, self.source),
            count_include_pad=bool(attribute(node, "count_include_pad", 0)),
        )
        self.values[node.output[0]] = _Value(self._pooling(node, pool))

    def _global_pool(self, node: onnx.NodeProto) -> None:
        keep = bool(attribute(node, "keepdims", 1))
        if node.op_type == "ReduceMean":
            axes = attribute(node, "axes") or (
                self.constants.get(node.input[1]) if len(node.input) > 1 else None
            )
            if axes is None or sorted(int(a) % 4 for a in np.asarray(axes).reshape(-1)) != [2, 3]:
                raise self._fail(node, "averages over axes other than H, W; not mapped")
        pooled = self._pooling(node, nn.AdaptiveAvgPool2d(1))
        if node.op_type == "ReduceMean" and not keep:
            pooled = self.graph.call_function(torch.flatten, (pooled, 1))
        self.values[node.output[0]] = _Value(pooled)

    def _flatten(self, node: onnx.NodeProto) -> None:
        value = self._placed(node)
        if attribute(node, "axis", 1) != 1:
            raise self._fail(node, "flattens from an axis other than 1; not mapped")
        self._then(node, self.graph.call_function(torch.flatten, (value.node, 1)), value)

    def _reshape(self, node: onnx.NodeProto) -> None:
        value = self._placed(node)
        shape = [int(d) for d in self.constants.get(node.input[1], np.array([0])).reshape(-1)]
        if 0 in shape[1:] or len(node.input) < 2 or node.input[1] not in self.constants:
            raise self._fail(node, "reshapes to a shape that is not a constant; not mapped")
        if len(shape) == 6:
            self._pixel_shuffle_reshapes(node, value, shape)
            return
        if -1 not in shape[1:]:
            shape[0] = -1  # any batch size
        self._then(node, self.graph.call_function(torch.reshape, (value.node, tuple(shape))), value)

    def _pixel_shuffle_reshapes(self, node, value: _Value, shape: list[int]) -> None:
        transposes = self._consumers(node.output[0])
        if len(transposes) != 1 or transposes[0][1].op_type != "Transpose" or list(
            attribute(transposes[0][1], "perm", [])
        ) != PIXEL_SHUFFLE_PERM or shape[2] != shape[3]:  # fmt: skip
            raise self._fail(node, "reshapes to 6-D without FINN's pixel-shuffle pattern")
        reshapes = self._consumers(transposes[0][1].output[0])
        if len(reshapes) != 1 or reshapes[0][1].op_type != "Reshape":
            raise self._fail(node, "reshapes to 6-D without FINN's pixel-shuffle pattern")
        self.skipped |= {transposes[0][0], reshapes[0][0]}
        shuffled = self._module(node, nn.PixelShuffle(shape[2]), value.node)
        self.values[reshapes[0][1].output[0]] = _Value(shuffled, value.quant)

    def _depth_to_space(self, node: onnx.NodeProto) -> None:
        value = self._placed(node)
        if attribute(node, "mode", b"DCR") != b"CRD":
            raise self._fail(node, "uses DCR order; only CRD (PixelShuffle's) is mapped")
        shuffle = nn.PixelShuffle(attribute(node, "blocksize"))
        self._then(node, self._module(node, shuffle, value.node), value)

    def _resize(self, node: onnx.NodeProto) -> None:
        value = self._value(node.input[0], f"the input of {node.name}")
        scales = self.constants.get(node.input[2]) if len(node.input) > 2 else None
        if attribute(node, "mode", b"nearest") != b"nearest" or scales is None or scales.size != 4:
            raise self._fail(node, "is not a nearest upsampling by constant scales; not mapped")
        factor = float(scales[2])
        if scales[3] != factor or factor != int(factor) or value.quant is not None:
            raise self._fail(node, "is not an integer nearest upsampling of a stream; not mapped")
        upsample = nn.Upsample(scale_factor=int(factor), mode="nearest")
        self.values[node.output[0]] = _Value(self._module(node, upsample, value.node))
