"""FINN-ready QONNX: the same function, written the way FINN's importer maps it.

finn-plus's qonnx_to_finn / streamlining accept a narrower QONNX than the format allows.
Each rewrite below keeps the computed function exactly:
- an all-zero zero point is written as the scalar 0 (FINN tests ``zero_point == 0``);
- a bias-free convolution loses the all-zero bias the exporter gives it;
- a per-tensor Quant moves above MaxPool, Reshape, Flatten, Transpose and DepthToSpace
  (they commute with a monotone element-wise quantizer), so thresholds sit right after
  the activation that FINN absorbs them into;
- pixel shuffle (DepthToSpace, CRD) becomes Reshape -> Transpose -> Reshape;
- global average pooling of a quantized input (ReduceMean over a square H x W) becomes
  the AveragePool -> Mul -> Trunc pattern FINN maps to its integer QuantAvgPool2d.
What cannot be rewritten without changing the function is refused with the fix: an
activation quantizer with a non-zero zero point, and average pooling of an unquantized
tensor.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from qdistill.export.graph import ExportError, GraphEditor
from qdistill.export.layers import ExportLayer
from qdistill.export.qonnx_format import QONNX_DOMAIN

# Operations a per-tensor, monotone quantizer commutes with (pure data movement or max).
COMMUTING_OPS = {
    "MaxPool",
    "Reshape",
    "Flatten",
    "Transpose",
    "DepthToSpace",
    "Squeeze",
    "Unsqueeze",
}


def check_finn_supported(layers: list[ExportLayer]) -> None:
    """Refuse, naming the layer and the fix, what FINN cannot map exactly."""
    for layer in layers:
        act = layer.act
        if act is not None and np.any(act.zero_point != 0):
            raise ExportError(
                f"layer {layer.name!r}: its input quantizer has zero point "
                f"{int(act.zero_point.reshape(-1)[0])}; FINN maps only zero-point-0 quantizers. "
                f"Quantize that input symmetrically, e.g. plan {{'{layer.name}': {{'bits': "
                f"'{layer.label}', 'act': {{'symmetric': true}}}}}} (inputs after ReLU already are)"
            )


def finn_ready(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Apply the FINN rewrites (in place) and return ``proto``."""
    editor = GraphEditor(proto)
    _scalar_zero_points(editor)
    _drop_zero_biases(editor)
    _pixel_shuffle_as_reshapes(editor)
    _global_mean_as_quant_avg_pool(editor)
    _quant_before_commuting_ops(editor)
    _refuse_float_average_pools(editor)
    editor.remove_unused_initializers()
    return proto


def _producers(editor: GraphEditor) -> dict[str, onnx.NodeProto]:
    return {out: node for node in editor.graph.node for out in node.output}


def _constant(editor: GraphEditor, name: str) -> np.ndarray | None:
    tensor = editor.initializer(name)
    return None if tensor is None else numpy_helper.to_array(tensor)


def _scalar_zero_points(editor: GraphEditor) -> None:
    for node in editor.graph.node:
        if node.op_type != "Quant":
            continue
        zero = _constant(editor, node.input[2])
        if zero is not None and zero.size > 1 and not np.any(zero):
            node.input[2] = editor.add_initializer(f"{node.name}_zeropt", np.array(0.0, np.float32))


def _drop_zero_biases(editor: GraphEditor) -> None:
    for node in editor.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or len(node.input) < 3:
            continue
        value = _constant(editor, node.input[2])
        if value is not None and not np.any(value):
            del node.input[2]


def _quant_before_commuting_ops(editor: GraphEditor) -> None:
    """Swap ``op -> Quant`` into ``Quant -> op`` while the Quant is per tensor and the op
    feeds only the Quant (repeated, so Quant climbs over reshape -> pool chains)."""
    changed = True
    while changed:
        changed = False
        producers = _producers(editor)
        for quant in list(editor.graph.node):
            if quant.op_type != "Quant" or not _per_tensor(editor, quant):
                continue
            op = producers.get(quant.input[0])
            if (
                op is None
                or op.op_type not in COMMUTING_OPS
                or len(editor.consumers(op.output[0])) != 1
            ):
                continue
            before, after = op.input[0], quant.output[0]
            quant.input[0], quant.output[0] = before, op.output[0]
            op.input[0], op.output[0] = quant.output[0], after
            nodes = list(editor.graph.node)
            editor.graph.node.remove(quant)
            editor.graph.node.insert(nodes.index(op), quant)
            changed = True
            break


def _per_tensor(editor: GraphEditor, quant: onnx.NodeProto) -> bool:
    scale = _constant(editor, quant.input[1])
    zero = _constant(editor, quant.input[2])
    return scale is not None and zero is not None and scale.size == 1 and zero.size == 1


def _pixel_shuffle_as_reshapes(editor: GraphEditor) -> None:
    for node in list(editor.graph.node):
        if node.op_type != "DepthToSpace":
            continue
        mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "DCR")
        if mode != "CRD":
            raise ExportError(
                f"DepthToSpace {node.name} in mode {mode} is not rewritten (CRD only)"
            )
        factor = next(a.i for a in node.attribute if a.name == "blocksize")
        shape = _shape_of(editor, node.input[0])
        n, c, h, w = shape
        channels = c // (factor * factor)
        split = editor.add_initializer(
            "d2s_split", np.array([n, channels, factor, factor, h, w], np.int64)
        )
        merged = editor.add_initializer(
            "d2s_merge", np.array([n, channels, h * factor, w * factor], np.int64)
        )
        first, moved = editor.unique(f"{node.name}_split"), editor.unique(f"{node.name}_moved")
        replacement = [
            helper.make_node(
                "Reshape", [node.input[0], split], [first], name=f"{node.name}_reshape0"
            ),
            helper.make_node(
                "Transpose",
                [first],
                [moved],
                name=f"{node.name}_transpose",
                perm=[0, 1, 4, 2, 5, 3],
            ),
            helper.make_node(
                "Reshape", [moved, merged], [node.output[0]], name=f"{node.name}_reshape1"
            ),
        ]
        editor.insert_before(node, replacement)
        editor.graph.node.remove(node)


def _global_mean_as_quant_avg_pool(editor: GraphEditor) -> None:
    """ReduceMean over a square H x W of a per-tensor quantized input becomes the pattern
    FINN maps to its integer average pool (QuantAvgPool2d): AveragePool -> Mul(k^2) ->
    Trunc (no bits dropped, so the exact sum of codes) -> Mul(1 / k^2): the mean again."""
    producers = _producers(editor)
    for node in list(editor.graph.node):
        if node.op_type != "ReduceMean" or len(node.input) < 2:
            continue
        quant, axes = producers.get(node.input[0]), _constant(editor, node.input[1])
        keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
        if axes is None or keepdims != 1 or sorted(int(a) % 4 for a in axes.reshape(-1)) != [2, 3]:
            continue
        if quant is None or quant.op_type != "Quant" or not _per_tensor(editor, quant):
            continue
        _, _, height, width = _shape_of(editor, node.input[0])
        if height != width:
            continue  # FINN pools square windows only
        replacement = _quant_avg_pool_nodes(editor, node, quant, height)
        editor.insert_before(node, replacement)
        editor.graph.node.remove(node)


def _quant_avg_pool_nodes(
    editor: GraphEditor, node: onnx.NodeProto, quant: onnx.NodeProto, side: int
) -> list[onnx.NodeProto]:
    """AveragePool -> Mul(k^2) -> Trunc -> Mul(1 / k^2) replacing ``node`` (a mean over a
    side x side map of the per-tensor ``quant``'s codes)."""
    window = side * side
    bits = int(_constant(editor, quant.input[3])) + math.ceil(math.log2(window))

    def constant(stem: str, value: float) -> str:
        return editor.add_initializer(f"{node.name}_{stem}", np.array(value, np.float32))

    pooled, summed, truncated = (editor.unique(f"{node.name}_{x}") for x in ("avg", "sum", "trunc"))
    pool = helper.make_node(
        "AveragePool", [node.input[0]], [pooled], name=f"{node.name}_pool",
        kernel_shape=[side, side], strides=[side, side], pads=[0, 0, 0, 0],
    )  # fmt: skip
    # the codes' scale, zero point 0, as many bits in as out: nothing is dropped
    trunc_inputs = [summed, quant.input[1], constant("zeropt", 0.0), constant("in_bits", bits),
                    constant("out_bits", bits)]  # fmt: skip
    return [
        pool,
        helper.make_node("Mul", [pooled, constant("window", float(window))], [summed]),
        helper.make_node(
            "Trunc", trunc_inputs, [truncated], domain=QONNX_DOMAIN, rounding_mode="FLOOR"
        ),
        helper.make_node("Mul", [truncated, constant("mean", 1.0 / window)], [node.output[0]]),
    ]


def _shape_of(editor: GraphEditor, tensor: str) -> list[int]:
    for info in [*editor.graph.value_info, *editor.graph.input, *editor.graph.output]:
        if info.name == tensor:
            return [d.dim_value for d in info.type.tensor_type.shape.dim]
    raise ExportError(f"tensor {tensor} has no inferred shape; cannot rewrite its pixel shuffle")


def _refuse_float_average_pools(editor: GraphEditor) -> None:
    producers = _producers(editor)
    for node in editor.graph.node:
        if node.op_type not in ("ReduceMean", "GlobalAveragePool", "AveragePool"):
            continue
        source = producers.get(node.input[0])
        if source is None or source.op_type not in ("Quant", "BipolarQuant"):
            raise ExportError(
                f"{node.op_type} {node.name} averages an unquantized tensor; FINN needs the "
                "input of average pooling quantized, and this model has no quantizer there"
            )
