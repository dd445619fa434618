"""ONNX with QuantizeLinear/DequantizeLinear (QDQ), for onnxruntime and other int runtimes.

Weights become integer initializers behind a DequantizeLinear (per output channel);
each quantized layer's input gets a QuantizeLinear -> DequantizeLinear pair with
the layer's learned activation scale and zero point; integer biases are int32 on the
accumulator grid (scale s_x * s_w) behind a DequantizeLinear. Accumulation stays
wide, exactly as in qdistill's quantized layers; onnxruntime fuses the pattern into
integer kernels (QGemm, QLinearConv, ...). 8-bit and 16-bit everywhere; 4-bit codes
travel in 8-bit containers (int8/uint8, restricted to the 4-bit range by an integer Clip
after each QuantizeLinear), because onnxruntime runs no pooling or fused convolution on
int4 tensors: the values are exactly the 4-bit ones and run in int8 kernels, at the
cost of 8 bits per weight in the file. Other widths (and binary) are refused.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from qdistill.export.graph import ExportError, GraphEditor, LayerSite
from qdistill.export.layers import ExportLayer, TensorQuant

# (container bits, signed) -> numpy type of the integer tensors
_TYPES = {(8, True): np.int8, (8, False): np.uint8, (16, True): np.int16, (16, False): np.uint16}
QDQ_BITS = (4, 8, 16)


def _container_bits(quant: TensorQuant) -> int:
    return 8 if quant.bits < 8 else quant.bits


def check_qdq_supported(layers: list[ExportLayer]) -> None:
    for layer in layers:
        for role, quant in (("weights", layer.weight), ("activations", layer.act)):
            if quant is None:
                continue
            if quant.binary or quant.bits not in QDQ_BITS:
                kind = "binary" if quant.binary else f"{quant.bits}-bit"
                raise ExportError(
                    f"layer {layer.name!r} has {kind} {role}; onnx-qdq supports "
                    f"{', '.join(map(str, QDQ_BITS))}-bit integers only: use format qonnx "
                    "(any bit width) for this model"
                )
            if quant.half_up:
                raise ExportError(
                    f"layer {layer.name!r} rounds {role} half up; QuantizeLinear rounds ties "
                    "to even: use format qonnx or finn, or quantize with rounding: half_even"
                )


def _typed(editor: GraphEditor, stem: str, quant: TensorQuant, values: np.ndarray) -> str:
    return editor.add_initializer(
        stem, np.asarray(values).astype(_TYPES[(_container_bits(quant), quant.signed)])
    )


def _code_range(editor: GraphEditor, stem: str, quant: TensorQuant) -> tuple[str, str] | None:
    """Initializers of the codes' bounds when they are narrower than their container."""
    if quant.bits == _container_bits(quant):
        return None
    return (
        _typed(editor, f"{stem}_min", quant, np.array(quant.q_min)),
        _typed(editor, f"{stem}_max", quant, np.array(quant.q_max)),
    )


def _quantize_dequantize(
    editor: GraphEditor, source: str, stem: str, params: tuple[str, str], bounds
) -> tuple[list[onnx.NodeProto], str]:
    """QuantizeLinear -> (integer Clip to the code range) -> DequantizeLinear of
    ``source``; the nodes and the restored tensor's name."""
    scale, zero = params
    quantized, restored = editor.unique(f"{stem}_q"), editor.unique(f"{stem}_dq")
    nodes = [helper.make_node("QuantizeLinear", [source, scale, zero], [quantized])]
    if bounds is not None:
        clipped = editor.unique(f"{stem}_codes")
        nodes.append(helper.make_node("Clip", [quantized, *bounds], [clipped]))
        quantized = clipped
    nodes.append(helper.make_node("DequantizeLinear", [quantized, scale, zero], [restored]))
    return nodes, restored


def _params(editor: GraphEditor, stem: str, quant: TensorQuant) -> tuple[str, str]:
    per_channel = quant.axis is not None
    scale = quant.scale if per_channel else quant.scale.reshape(())
    zero = quant.zero_point if per_channel else quant.zero_point.reshape(())
    return editor.add_initializer(f"{stem}_scale", scale), _typed(
        editor, f"{stem}_zero", quant, zero
    )


def to_qdq(proto: onnx.ModelProto, layers: list[ExportLayer]) -> onnx.ModelProto:
    """Rewrite a float export (see graph.export_float) into a QDQ model, in place."""
    check_qdq_supported(layers)
    editor = GraphEditor(proto)
    layer_outputs: set[str] = set()
    sites = [(layer, site) for layer in layers for site in editor.sites_of(layer)]
    for layer, site in sites:
        if not layer.pooling:
            layer_outputs.add(site.output)
        if layer.weight is not None and site.weight is not None:
            stem = f"{layer.name}.weight_q"
            codes = _typed(editor, stem, layer.weight, layer.codes)
            scale, zero = _params(editor, stem, layer.weight)
            dequantized = editor.unique(f"{layer.name}.weight_dq")
            attrs = {"axis": layer.weight.axis} if layer.weight.axis is not None else {}
            node, index = site.weight
            dq = helper.make_node("DequantizeLinear", [codes, scale, zero], [dequantized], **attrs)
            node.input[index] = dequantized
            editor.insert_before(node, [dq])
        if layer.bias_codes is not None and site.bias is not None:
            stem = f"{layer.name}.bias_q"
            codes = editor.add_initializer(stem, layer.bias_codes.astype(np.int32))
            scale = editor.add_initializer(f"{stem}_scale", layer.bias_scale)
            zero = editor.add_initializer(f"{stem}_zero", np.zeros_like(layer.bias_codes, np.int32))
            dequantized = editor.unique(f"{layer.name}.bias_dq")
            node, index = site.bias
            dq = helper.make_node("DequantizeLinear", [codes, scale, zero], [dequantized], axis=0)
            node.input[index] = dequantized
            editor.insert_before(node, [dq])
        if layer.act is not None:
            stem = f"{layer.name}.input"
            params = _params(editor, f"{stem}_q", layer.act)
            bounds = _code_range(editor, f"{stem}_q", layer.act)
            node, index = site.activation
            if layer.global_pooling:
                _as_global_average_pool(editor, node)
            nodes, restored = _quantize_dequantize(editor, node.input[index], stem, params, bounds)
            node.input[index] = restored
            editor.insert_before(node, nodes)
    _requantize_layer_outputs(editor, layer_outputs)
    for layer, site in sites:
        _float_operands_for_float_output(editor, layer, site)
        _pad_thin_integer_convolution(editor, layer, site)
    editor.remove_unused_initializers()
    return proto


def _float_operands_for_float_output(
    editor: GraphEditor, layer: ExportLayer, site: LayerSite
) -> None:
    """Write the weight (and bias) of a convolution whose output no quantizer follows as
    the float values DequantizeLinear would give. onnxruntime has no integer convolution
    with a float output, so it computes such a layer in float either way (on the
    quantized input and the dequantized weight, same values), but only with a constant
    weight does it use its fast channels-blocked float kernels (an SR model's last
    convolution: 6.1 ms behind a DequantizeLinear, 2.9 ms from a constant)."""
    if site.weight is None or layer.weight is None:
        return
    node, index = site.weight
    consumers = {consumer.op_type for consumer, _ in editor.consumers(node.output[0])}
    # onnxruntime would fold a following BatchNorm into a constant weight, rounding
    # differently from the model, which normalises after the convolution
    if node.op_type != "Conv" or consumers & {"QuantizeLinear", "BatchNormalization"}:
        return
    node.input[index] = editor.add_initializer(f"{layer.name}.weight", layer.dequantized)
    if site.bias is not None and layer.bias_codes is not None:
        bias_node, bias_index = site.bias
        bias_node.input[bias_index] = editor.add_initializer(
            f"{layer.name}.bias", layer.bias_on_grid
        )
    used = {name for n in editor.graph.node for name in n.input}
    dead = [
        n for n in editor.graph.node if n.op_type == "DequantizeLinear" and n.output[0] not in used
    ]
    for dq in dead:
        editor.graph.node.remove(dq)


# onnxruntime's integer convolution ran twice as fast on 4 input channels as on 1-3
# (QLinearConv, batch 64 of 28x28 and 8x8 maps, AMD EPYC with VNNI): thinner inputs
# are padded with zero channels up to this many.
_THIN_INPUT_CHANNELS = 4


def _pad_thin_integer_convolution(editor: GraphEditor, layer: ExportLayer, site: LayerSite) -> None:
    """Give an integer 2-D convolution with fewer than 4 input channels (an image's 1 or
    3) zero channels up to 4: its input codes padded with their zero point and its
    weight codes with the weight's, both of which dequantize to 0. The products added
    are zeros, so every value is unchanged; onnxruntime picks a faster kernel."""
    if site.weight is None or layer.weight is None or layer.act is None:
        return
    node, weight_index = site.weight
    act_node, act_index = site.activation
    codes = layer.codes
    groups = [a.i for a in node.attribute if a.name == "group"]
    if (
        node.op_type != "Conv"
        or act_node is not node
        or codes.ndim != 4
        or codes.shape[1] >= _THIN_INPUT_CHANNELS
        or groups not in ([], [1])
        or layer.act.axis is not None
    ):
        return
    if "QuantizeLinear" not in {c.op_type for c, _ in editor.consumers(node.output[0])}:
        return  # a float output: onnxruntime computes the layer in float anyway
    producers = {n.output[0]: n for n in editor.graph.node}
    weight_dq = producers.get(node.input[weight_index])
    act_dq = producers.get(node.input[act_index])
    if weight_dq is None or act_dq is None:
        return
    extra = _THIN_INPUT_CHANNELS - codes.shape[1]
    weight_zero = layer.weight.zero_point.reshape(-1, 1, 1, 1)
    padding = np.broadcast_to(weight_zero, (codes.shape[0], extra, *codes.shape[2:]))
    padded_codes = np.concatenate([codes, padding], axis=1)
    weight_dq.input[0] = _typed(editor, f"{layer.name}.weight_q", layer.weight, padded_codes)
    pads = editor.add_initializer(
        f"{layer.name}.input_pads", np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64)
    )
    padded = editor.unique(f"{layer.name}.input_padded")
    pad = helper.make_node("Pad", [act_dq.input[0], pads, act_dq.input[2]], [padded])
    act_dq.input[0] = padded
    editor.insert_before(act_dq, [pad])


def _as_global_average_pool(editor: GraphEditor, node: onnx.NodeProto) -> None:
    """Rewrite the exporter's ReduceMean over H and W (keepdims) of a whole-map average
    pooling as the GlobalAveragePool it equals: onnxruntime fuses DequantizeLinear ->
    GlobalAveragePool -> QuantizeLinear into an integer kernel on channels-last tensors,
    but leaves a ReduceMean float behind a transpose back to channels-first."""
    if node.op_type != "ReduceMean" or len(node.input) < 2:
        return
    axes = editor.initializer(node.input[1])
    keepdims = [a.i for a in node.attribute if a.name == "keepdims"]
    if axes is None or keepdims == [0]:
        return
    if sorted(onnx.numpy_helper.to_array(axes).reshape(-1).tolist()) not in ([-2, -1], [2, 3]):
        return
    node.op_type = "GlobalAveragePool"
    del node.input[1:]
    del node.attribute[:]


# Ops between two quantized layers that commute with the next layer's input
# quantization: quantizing before or after them gives the same values.
_MONOTONE = ("MaxPool",)  # commute with any (monotone) quantizer
_SHAPE_ONLY = (
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Identity",
    "Transpose",
    "DepthToSpace",
    "SpaceToDepth",
)
_RELU = ("Relu",)  # commutes when the lowest code means 0 (zero point == q_min)


def _commutes(node: onnx.NodeProto) -> bool:
    """Whether ``node`` commutes with an elementwise quantizer: it moves or copies values
    (reshapes, pixel shuffles, nearest-neighbour resizes), takes a max, or is a ReLU."""
    if node.op_type == "Resize":
        modes = [a.s for a in node.attribute if a.name == "mode"]
        return modes == [b"nearest"]
    return node.op_type in _MONOTONE + _SHAPE_ONLY + _RELU


def _single_consumer(editor: GraphEditor, tensor: str):
    consumers = editor.consumers(tensor)
    outputs = {o.name for o in editor.graph.output}
    return consumers[0][0] if len(consumers) == 1 and tensor not in outputs else None


def _requantize_layer_outputs(editor: GraphEditor, layer_outputs: set[str]) -> None:
    """Quantize each quantized layer's output where its value only flows, through ops that
    commute with quantization, into another quantized layer's input QuantizeLinear.

    The values are unchanged (a QuantizeLinear -> DequantizeLinear pair with the
    downstream parameters is idempotent and commutes with those ops), but onnxruntime
    now sees DequantizeLinear -> Conv/Gemm -> QuantizeLinear and runs integer kernels
    (QLinearConv) end to end.
    """
    producers = {n.output[0]: n for n in editor.graph.node}
    quantizers = [n for n in editor.graph.node if n.op_type == "QuantizeLinear"]
    for quantizer in quantizers:
        tensor, path_ops = quantizer.input[0], []
        node = producers.get(tensor)
        while node is not None and _commutes(node):
            if _single_consumer(editor, node.output[0]) is None:
                break
            path_ops.append(node)
            tensor = node.input[0]
            node = producers.get(tensor)
        if node is None or node.output[0] not in layer_outputs:
            continue
        if not path_ops or _single_consumer(editor, node.output[0]) is None:
            continue  # a layer feeding its consumer directly needs nothing
        clip = _code_clip(editor, quantizer)
        relu = any(op.op_type in _RELU for op in path_ops)
        if relu and not _zero_is_lowest(editor, quantizer, clip):
            continue
        params = (quantizer.input[1], quantizer.input[2])
        bounds = tuple(clip.input[1:3]) if clip is not None else None
        consumer, index = editor.consumers(node.output[0])[0]
        nodes, restored = _quantize_dequantize(
            editor, node.output[0], "requantized", params, bounds
        )
        consumer.input[index] = restored
        position = list(editor.graph.node).index(consumer)
        for new_node in reversed(nodes):
            editor.graph.node.insert(position, new_node)


def _code_clip(editor: GraphEditor, quantizer: onnx.NodeProto) -> onnx.NodeProto | None:
    """The Clip restricting ``quantizer``'s codes to a sub-byte range, if any."""
    consumers = editor.consumers(quantizer.output[0])
    if len(consumers) == 1 and consumers[0][0].op_type == "Clip":
        return consumers[0][0]
    return None


def _zero_is_lowest(
    editor: GraphEditor, quantizer: onnx.NodeProto, clip: onnx.NodeProto | None
) -> bool:
    """Whether the quantizer's zero point is its lowest code (so a ReLU before it is a
    no-op on the codes); ``clip`` is its code-range Clip, if any."""
    zero = editor.initializer(quantizer.input[2])
    if zero is None:
        return False
    value = int(np.asarray(onnx.numpy_helper.to_array(zero)).reshape(-1)[0])
    if clip is not None:
        low = editor.initializer(clip.input[1])
        return low is not None and value == int(onnx.numpy_helper.to_array(low))
    low = {
        TensorProto.UINT8: 0,
        TensorProto.UINT16: 0,
        TensorProto.INT8: -128,
        TensorProto.INT16: -32768,
    }.get(zero.data_type)
    return value == low
