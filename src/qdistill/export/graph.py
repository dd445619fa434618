"""Float ONNX export of a (possibly quantized) model and graph-editing helpers.

Quantized layers are exported as their float type, so every layer's weight appears
as an initializer named by its module path (``<layer>.weight``); the QDQ and QONNX
writers find each layer's site (where its weight, activation and bias enter) through
that name and insert quantization there. The onnxscript graph optimizer is off: it would
fold BatchNorm into the convolution weights, which must stay the layer's own (quantized)
weights.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from qdistill.errors import QdistillError
from qdistill.quant.modules import QuantLayer, QuantPooling

OPSET = 21  # the ai.onnx opset qdistill writes
# The IR version qdistill stamps on what it writes: int4 types need >= 10, and
# onnxruntime 1.31 refuses IR 14, which onnx 1.23 gives new models by default.
RUNTIME_IR_VERSION = 10


class ExportError(QdistillError):
    """A model could not be exported, or the export failed its verification."""


def float_shadow(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every quantized layer back to its float type (same weights)."""
    shadow = copy.deepcopy(model).eval()
    if isinstance(shadow, QuantLayer):
        return _as_float(shadow)
    for name, module in list(shadow.named_modules()):
        if isinstance(module, QuantLayer):
            shadow.set_submodule(name, _as_float(module))
        elif isinstance(module, QuantPooling):
            shadow.set_submodule(name, module.as_float())
    return shadow


def _as_float(layer: QuantLayer) -> nn.Module:
    plain = layer.float_type(**layer._constructor_args(layer), device="meta")
    plain.weight, plain.bias = layer.weight, layer.bias
    return plain.eval()


def export_float(model: nn.Module, sample: torch.Tensor, opset: int = OPSET) -> onnx.ModelProto:
    """Trace ``model`` with torch.export and translate it to ONNX (batch axis dynamic)."""
    model = model.eval()
    batch = torch.export.Dim("batch")
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (sample,),
                None,
                dynamo=True,
                optimize=False,
                verbose=False,
                opset_version=opset,
                dynamic_shapes=({0: batch},),
                input_names=["input"],
                output_names=["output"],
            )
    except Exception as err:  # torch.export raises many kinds of errors
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(
            f"torch.export could not trace the model ({first}); export needs a model "
            "without data-dependent Python control flow"
        ) from None
    proto = program.model_proto
    proto.ir_version = min(proto.ir_version, RUNTIME_IR_VERSION)
    fold_constant_arithmetic(proto, parameters=model.state_dict().keys())
    return proto


def fold_constant_arithmetic(
    proto: onnx.ModelProto,
    parameters: Collection[str] = (),
    static_shapes: dict[str, list[int]] | None = None,
) -> None:
    """Replace, in place, every node computed from constants alone (the exporter's index
    and shape arithmetic: a sliced gate's bounds, a reshape's target, the zero bias it
    builds for a convolution without one from the weight's shape and the input's type)
    by its value as an initializer. Shapes of initializers and, with ``static_shapes``
    (tensor -> fixed shape), of those tensors count as constants, as does a CastLike to
    a tensor of known type. Initializers named in ``parameters`` are not constants:
    nothing computed from a weight's values is folded (that is why the exporter's own
    optimizer, which folds BatchNorm into weights, stays off). Without this a recurrent
    layer unrolled over its steps leaves hundreds of such nodes, and qonnx's cleanup,
    which folds one per pass over the whole graph, takes minutes; and onnxruntime fuses
    no BatchNorm into a convolution whose bias is computed."""
    graph = proto.graph
    outputs = {o.name for o in graph.output}
    constants = {i.name for i in graph.initializer if i.name not in set(parameters)}
    initializers = {i.name: i for i in graph.initializer}
    shapes = {i.name: list(i.dims) for i in graph.initializer} | (static_shapes or {})
    casts = any(node.op_type == "CastLike" for node in graph.node)
    types = _element_types(proto) if casts else {}
    computed: dict[str, np.ndarray] = {}

    def value(name: str) -> np.ndarray:
        return computed[name] if name in computed else numpy_helper.to_array(initializers[name])

    kept = []
    for node in graph.node:
        folded = (
            None
            if node.domain not in ("", "ai.onnx") or outputs & set(node.output)
            else _fold(node, constants, shapes, types, value)
        )
        if folded is None:
            kept.append(node)
            continue
        computed.update(zip(node.output, folded, strict=True))
        constants.update(node.output)
    used = {name for node in kept for name in node.input} | outputs
    del graph.node[:]
    graph.node.extend(kept)
    remaining = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(remaining)
    graph.initializer.extend(
        numpy_helper.from_array(np.asarray(value), name)
        for name, value in computed.items()
        if name in used
    )


def _element_types(proto: onnx.ModelProto) -> dict[str, int]:
    """ONNX element type of every tensor whose type the graph declares or implies."""
    try:
        inferred = onnx.shape_inference.infer_shapes(proto).graph
    except Exception:  # a graph shape inference cannot type: fold without types
        inferred = proto.graph
    infos = [*inferred.input, *inferred.value_info, *inferred.output]
    types = {info.name: info.type.tensor_type.elem_type for info in infos}
    types.update({i.name: i.data_type for i in proto.graph.initializer})
    return {name: kind for name, kind in types.items() if kind}


def _fold(node, constants, shapes, types, value) -> list[np.ndarray] | None:
    """The outputs of ``node`` when they follow from constants alone, else None."""
    from onnx.reference import ReferenceEvaluator

    if node.op_type == "Shape" and node.input[0] in shapes:
        feeds = {node.input[0]: np.zeros(shapes[node.input[0]], np.float32)}
    elif node.op_type == "CastLike" and node.input[0] in constants and node.input[1] in types:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(types[node.input[1]])
        return [np.asarray(value(node.input[0])).astype(dtype)]
    elif node.op_type == "Constant" or (
        node.input and all(name in constants for name in node.input if name)
    ):
        feeds = {name: value(name) for name in node.input if name}
    else:
        return None
    return ReferenceEvaluator(node).run(None, feeds)


Slot = tuple[onnx.NodeProto, int]  # a node and one of its input positions


@dataclass(frozen=True)
class LayerSite:
    """Where one quantized layer sits in a float export: the inputs its weight, its
    activation and its bias (if any) enter, and the tensor that holds its output."""

    weight: Slot | None
    activation: Slot
    bias: Slot | None
    output: str


class GraphEditor:
    """Small helpers for rewriting an ONNX graph in place."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self._names: set[str] = {i.name for i in self.graph.initializer}
        self._names |= {o for n in self.graph.node for o in n.output}
        self._counter = 0

    def unique(self, stem: str) -> str:
        while True:
            self._counter += 1
            name = f"{stem}_{self._counter}"
            if name not in self._names:
                self._names.add(name)
                return name

    def initializer(self, name: str) -> onnx.TensorProto | None:
        return next((i for i in self.graph.initializer if i.name == name), None)

    def add_initializer(self, stem: str, array: np.ndarray) -> str:
        name = self.unique(stem)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def consumers(self, tensor: str) -> list[tuple[onnx.NodeProto, int]]:
        return [(n, i) for n in self.graph.node for i, x in enumerate(n.input) if x == tensor]

    def insert_before(self, node: onnx.NodeProto, new_nodes: list[onnx.NodeProto]) -> None:
        """Insert ``new_nodes`` right before ``node`` (keeps the list topologically sorted)."""
        index = list(self.graph.node).index(node)
        for offset, new in enumerate(new_nodes):
            self.graph.node.insert(index + offset, new)

    def remove_unused_initializers(self) -> None:
        used = {x for n in self.graph.node for x in n.input}
        used |= {o.name for o in self.graph.output}
        keep = [i for i in self.graph.initializer if i.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(keep)

    def module_nodes(self, module_name: str) -> list[onnx.NodeProto]:
        """The nodes the exporter made from module ``module_name`` (a module without
        weights, e.g. a pooling), found by the module path it records on each node."""
        nodes = []
        for node in self.graph.node:
            scopes = next(
                (p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"),
                "",
            )
            if f"'{module_name}'" in scopes:
                nodes.append(node)
        inner = {out for node in nodes for out in node.output}
        entry = [n for n in nodes if n.input and n.input[0] and n.input[0] not in inner]
        if not entry:
            raise ExportError(f"module {module_name!r} made no node in the exported graph")
        return entry[:1]  # the node that takes the module's input

    def sites_of(self, layer) -> list[LayerSite]:
        """Where an ExportLayer's quantization attaches (a pooling: its first node)."""
        if layer.pooling:
            (node,) = self.module_nodes(layer.name)
            return [LayerSite(None, (node, 0), None, node.output[0])]
        return self.layer_sites(layer.name)

    def layer_sites(self, layer_name: str) -> list[LayerSite]:
        """Each use of ``<layer_name>.weight`` by a Gemm/MatMul/Conv/ConvTranspose, also
        through a Transpose (a Linear on a (B, T, C) tensor exports as Transpose(W) ->
        MatMul -> Add(bias))."""
        weight = f"{layer_name}.weight" if layer_name else "weight"
        sites = []
        for node, index in self.consumers(weight):
            compute = node
            if node.op_type == "Transpose":
                users = self.consumers(node.output[0])
                if len(users) != 1 or users[0][0].op_type != "MatMul" or users[0][1] != 1:
                    continue
                compute = users[0][0]
            elif index != 1:
                continue
            has_bias = len(compute.input) > 2 and compute.input[2]
            bias, output = ((compute, 2) if has_bias else None), compute.output[0]
            after = self.consumers(output) if compute.op_type == "MatMul" else []
            if len(after) == 1 and after[0][0].op_type == "Add":
                add = after[0][0]
                slot = [i for i, x in enumerate(add.input) if x == f"{layer_name}.bias"]
                if slot:
                    bias, output = (add, slot[0]), add.output[0]
            sites.append(LayerSite((node, index), (compute, 0), bias, output))
        if not sites:
            raise ExportError(
                f"layer {layer_name or '(model)'!r}: its weight {weight!r} is not an input of "
                "any Gemm, MatMul or convolution in the exported graph"
            )
        return sites
