"""QONNX: Quant / BipolarQuant nodes of any bit width, for FINN and hls4ml.

Weights are stored as their dequantized float values (exactly on the quantization
grid) feeding a Quant node, so a downstream tool re-derives the same integers; each
quantized layer's input gets a Quant node with its learned scale and zero point.
The graph is then cleaned (shape inference, constant folding that keeps the
quantization nodes) with qonnx's own cleanup.

A quantizer that rounds ties towards +inf (``rounding: half_up``) is written with
rounding mode HALF_UP. FINN's thresholds compute exactly that whatever the mode says;
qonnx's own executor rounds HALF_UP ties away from zero, which is the same for unsigned
codes and differs only at exact negative ties of signed ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import onnx
from onnx import helper

from qdistill.export.graph import RUNTIME_IR_VERSION, GraphEditor, fold_constant_arithmetic
from qdistill.export.layers import ExportLayer, TensorQuant, channel_shape

QONNX_DOMAIN = "qonnx.custom_op.general"


def _quant_node(
    editor: GraphEditor, stem: str, source: str, quant: TensorQuant, ndim: int
) -> tuple[onnx.NodeProto, str]:
    channels = len(quant.scale)
    shape = channel_shape(ndim, quant.axis, channels)
    scale = editor.add_initializer(f"{stem}_scale", quant.scale.reshape(shape).astype(np.float32))
    output = editor.unique(stem)
    if quant.binary:
        node = helper.make_node("BipolarQuant", [source, scale], [output], domain=QONNX_DOMAIN)
        return node, output
    zero = editor.add_initializer(
        f"{stem}_zeropt", quant.zero_point.reshape(shape).astype(np.float32)
    )
    bits = editor.add_initializer(f"{stem}_bitwidth", np.array(float(quant.bits), np.float32))
    node = helper.make_node(
        "Quant",
        [source, scale, zero, bits],
        [output],
        domain=QONNX_DOMAIN,
        signed=int(quant.signed),
        narrow=int(quant.narrow and quant.signed),
        rounding_mode="HALF_UP" if quant.half_up else "ROUND",
    )
    return node, output


def to_qonnx(proto: onnx.ModelProto, layers: list[ExportLayer]) -> onnx.ModelProto:
    """Rewrite a float export into a QONNX model and clean it with qonnx's cleanup."""
    editor = GraphEditor(proto)
    for layer in layers:
        for site in editor.sites_of(layer):
            if layer.weight is not None and site.weight is not None:
                stem = f"{layer.name}.weight_quant"
                weight = editor.add_initializer(f"{layer.name}.weight_grid", layer.dequantized)
                new, output = _quant_node(
                    editor, stem, weight, layer.weight, layer.dequantized.ndim
                )
                node, index = site.weight
                node.input[index] = output
                editor.insert_before(node, [new])
            if layer.bias_codes is not None and site.bias is not None:
                node, index = site.bias
                node.input[index] = editor.add_initializer(
                    f"{layer.name}.bias_grid", layer.bias_on_grid
                )
            if layer.act is not None:
                node, index = site.activation
                new, output = _quant_node(
                    editor, f"{layer.name}.input_quant", node.input[index], layer.act, 0
                )
                node.input[index] = output
                editor.insert_before(node, [new])
    editor.remove_unused_initializers()
    proto.opset_import.append(helper.make_opsetid(QONNX_DOMAIN, 1))
    return cleanup(proto)


@contextmanager
def runtime_ir_for_qonnx() -> Iterator[None]:
    """Make qonnx's executor (used by its cleanup and by verification) build per-node
    models with an IR version onnxruntime accepts: onnx 1.23 stamps 14, which
    onnxruntime 1.31 refuses."""
    import qonnx.core.onnx_exec as onnx_exec

    original = onnx_exec.qonnx_make_model

    def make_model(graph, **kwargs):
        model = original(graph, **kwargs)
        model.ir_version = min(model.ir_version, RUNTIME_IR_VERSION)
        return model

    onnx_exec.qonnx_make_model = make_model
    try:
        yield
    finally:
        onnx_exec.qonnx_make_model = original


def cleanup(proto: onnx.ModelProto) -> onnx.ModelProto:
    """qonnx's cleanup (shape inference, constant folding that keeps Quant nodes), batch 1."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    with runtime_ir_for_qonnx():
        wrapper = ModelWrapper(proto).transform(ChangeBatchSize(1)).transform(InferShapes())
        fold_constant_arithmetic(wrapper.model, static_shapes=static_shapes(wrapper.model))
        cleaned = cleanup_model(wrapper).model
    cleaned.ir_version = min(cleaned.ir_version, RUNTIME_IR_VERSION)
    return cleaned


def static_shapes(proto: onnx.ModelProto) -> dict[str, list[int]]:
    """The tensors whose inferred shape is fully fixed (every dimension a number)."""
    shapes = {}
    for info in [*proto.graph.input, *proto.graph.value_info]:
        dims = info.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = [d.dim_value for d in dims]
    return shapes
