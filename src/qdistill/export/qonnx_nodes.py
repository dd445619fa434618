"""QONNX nodes read back: Quant / BipolarQuant parameters, the qdistill quantizer spec
that computes the same function (and loading the file's scale and zero point into it),
and the constant attributes of the other nodes (windows, pads, biases, input shape)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import onnx
import torch
from torch import nn

from qdistill.errors import QdistillError
from qdistill.quant.plan import QuantPlan
from qdistill.quant.prepare import quantize
from qdistill.quant.quantizer import FakeQuantizer
from qdistill.quant.spec import VALID_BITS, LayerQuantSpec, QuantizerSpec

ROUNDING = {"ROUND": "half_even", "HALF_EVEN": "half_even", "HALF_UP": "half_up"}


class QonnxImportError(QdistillError):
    """A QONNX graph qdistill cannot rebuild."""


def attribute(node: onnx.NodeProto, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def node_error(source: str, node: onnx.NodeProto, why: str) -> QonnxImportError:
    name = node.name or (f"-> {node.output[0]}" if node.output else "?")
    return QonnxImportError(f"{source}: node {name} ({node.op_type}) {why}")


@dataclass(frozen=True)
class Quant:
    """A Quant / BipolarQuant node's parameters."""

    bits: int
    scale: np.ndarray  # float32, broadcastable to the quantized tensor
    zero_point: np.ndarray  # same shape, integer values
    signed: bool
    narrow: bool
    binary: bool
    rounding: str  # a QuantizerSpec rounding

    def along_channels(self, axis: int, channels: int) -> Quant | None:
        """Scale and zero point as vectors over ``channels`` along ``axis`` (one value
        when per tensor); None when they vary along another axis."""
        if self.scale.size == 1:
            return replace(self, scale=self.scale.reshape(1), zero_point=self.zero_point.reshape(1))
        shape = self.scale.shape
        if len(shape) <= axis or shape[axis] != channels or self.scale.size != channels:
            return None
        return replace(self, scale=self.scale.reshape(-1), zero_point=self.zero_point.reshape(-1))


def read_quant(node: onnx.NodeProto, constants: dict[str, np.ndarray], source: str) -> Quant:
    """The parameters of a Quant / BipolarQuant ``node`` (they must be constants)."""
    params = [constants.get(i) for i in node.input[1:]]
    if any(p is None for p in params):
        raise node_error(source, node, "has parameters that are not constants")
    binary = node.op_type == "BipolarQuant"
    bits = 1.0 if binary else float(np.asarray(params[2]).reshape(-1)[0])
    if bits != int(bits) or int(bits) not in VALID_BITS:
        raise node_error(source, node, f"has bit width {bits:g}; qdistill supports 1-8 and 16")
    mode = attribute(node, "rounding_mode", b"ROUND").decode().upper()
    if mode not in ROUNDING:
        raise node_error(source, node, f"rounds {mode}; qdistill maps ROUND and HALF_UP")
    scale = np.asarray(params[0], np.float32)
    zero = np.zeros_like(scale) if binary else np.asarray(params[1], np.float32)
    if np.any(zero != np.round(zero)):
        raise node_error(source, node, "has a zero point that is not an integer")
    return Quant(
        bits=int(bits),
        scale=scale,
        zero_point=np.broadcast_to(zero, scale.shape).copy(),
        signed=binary or bool(attribute(node, "signed", 1)),
        narrow=bool(attribute(node, "narrow", 0)),
        binary=binary,
        rounding=ROUNDING[mode],
    )


def weight_spec(quant: Quant | None) -> QuantizerSpec | None:
    """A weight quantizer holding the file's scale (a learned-kind, fixed scale)."""
    if quant is None:
        return None
    if not quant.signed:
        raise QonnxImportError("unsigned weight quantizers are not mapped")
    return QuantizerSpec(
        bits=quant.bits,
        symmetric=not quant.zero_point.any(),
        signed=True,
        narrow_range=quant.narrow,
        granularity="per_channel" if quant.scale.size > 1 else "per_tensor",
        range="learned",
        rounding=quant.rounding,
    )


def act_spec(quant: Quant | None) -> QuantizerSpec | None:
    if quant is None:
        return None
    if quant.scale.size != 1:
        raise QonnxImportError("per-channel activation quantizers are not mapped")
    return QuantizerSpec(
        bits=quant.bits,
        symmetric=not quant.zero_point.any(),
        signed=quant.signed,
        narrow_range=quant.narrow,
        rounding=quant.rounding,
    )


def quantized_as(
    model: nn.Module, specs: dict[str, tuple[Quant | None, Quant | None]]
) -> nn.Module:
    """``model`` (in place) with each named layer's (weight, input) quantized as the file's
    Quant nodes say, scales and zero points included."""
    rules = [
        (name, LayerQuantSpec(weight_spec(w), act_spec(a), bias="float"))
        for name, (w, a) in specs.items()
    ]
    quantized = quantize(model, QuantPlan(rules), inplace=True)
    for name, (weight, act) in specs.items():
        layer = quantized.get_submodule(name)
        if weight is not None:
            load_quant(layer.weight_quantizer, weight)
        if act is not None:
            load_quant(layer.input_quantizer, act)
    return quantized


@torch.no_grad()
def load_quant(quantizer: FakeQuantizer, quant: Quant) -> None:
    """Give ``quantizer`` the file's scale and zero point (ranges stay fixed)."""
    quantizer.scale.data.copy_(torch.tensor(quant.scale.reshape(-1)))
    quantizer.zero_point.copy_(torch.tensor(quant.zero_point.reshape(-1).astype(np.int32)))
    if hasattr(quantizer, "signed_state"):
        quantizer.signed_state.fill_(int(quant.signed))
    quantizer.initialized.fill_(1)
    quantizer._sync_from_buffers()


def fixed_input_shape(info: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    """The input's shape without the batch dimension; None when not fixed."""
    dims = [d.dim_value for d in info.type.tensor_type.shape.dim][1:]
    return tuple(dims) if dims and min(dims) > 0 else None


def symmetric_pads(node: onnx.NodeProto, source: str) -> tuple[int, int]:
    pads = list(attribute(node, "pads", [0] * 4))
    if len(pads) != 4 or pads[:2] != pads[2:]:
        raise node_error(source, node, f"pads {pads} unevenly; not mapped")
    return pads[0], pads[1]


def window(node: onnx.NodeProto, source: str) -> dict:
    """A pooling node's window as nn.MaxPool2d / nn.AvgPool2d arguments."""
    kernel = tuple(attribute(node, "kernel_shape"))
    return {
        "kernel_size": kernel,
        "stride": tuple(attribute(node, "strides", kernel)),
        "padding": symmetric_pads(node, source),
        "ceil_mode": bool(attribute(node, "ceil_mode", 0)),
    }


def set_bias(layer: nn.Module, bias: np.ndarray | None, node: onnx.NodeProto, source: str) -> None:
    """Give ``layer`` the constant ``bias``; an all-zero bias is dropped, as FINN does."""
    if bias is None:
        raise node_error(source, node, "has a bias that is not a constant")
    bias = np.broadcast_to(np.asarray(bias, np.float32), layer.bias.shape)
    if bias.any():
        layer.bias.data = torch.tensor(bias)
    else:
        layer.bias = None


class _BatchNorm(nn.BatchNorm2d):
    """ONNX's BatchNormalization: over dimension 1 of a 2-D, 3-D or 4-D tensor."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        pass


def batch_norm(node: onnx.NodeProto, constants: dict[str, np.ndarray], source: str) -> nn.Module:
    """A BatchNormalization node as an inference-mode BatchNorm."""
    params = [constants.get(i) for i in node.input[1:5]]
    if len(params) != 4 or any(p is None for p in params):
        raise node_error(source, node, "has parameters that are not constants")
    norm = _BatchNorm(len(params[0]), eps=float(attribute(node, "epsilon", 1e-5)))
    names = ("weight", "bias", "running_mean", "running_var")
    state = {n: torch.tensor(np.asarray(p, np.float32)) for n, p in zip(names, params, strict=True)}
    norm.load_state_dict(state, strict=False)
    return norm.eval()
