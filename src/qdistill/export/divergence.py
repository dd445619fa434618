"""Where an exported file starts to differ from PyTorch: each quantized layer's output in
the file against the same layer's output in PyTorch, in module order.

Computed when a file misses its tolerance. The first layer whose outputs differ by more
than a small share of their range is where to look (a quantizer the runtime rounds
differently, a requantization); when no layer diverges, the difference comes from a
near-tie flipped at the output or from an operation between layers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnx
import torch
from torch import nn

from qdistill.export.graph import ExportError, GraphEditor

# A layer diverges when its outputs differ by more than this share of their range (one
# step of an 8-bit activation is 1/255 of it; float rounding is far below).
DIVERGED = 1e-3


@dataclass(frozen=True)
class LayerDivergence:
    layer: str
    max_abs_diff: float  # max |file - PyTorch| over the layer's outputs
    output_range: float  # max |PyTorch output| of the layer

    @property
    def relative(self) -> float:
        return self.max_abs_diff / self.output_range if self.output_range > 0 else self.max_abs_diff

    def to_dict(self) -> dict:
        return {**asdict(self), "relative": self.relative}


def layer_output_tensors(proto: onnx.ModelProto, layers: list[str]) -> dict[str, str]:
    """The tensor holding each layer's output in a float export (after its bias). Layers
    the graph does not show at one site are left out."""
    editor = GraphEditor(proto)
    found = {}
    for name in layers:
        try:
            sites = editor.layer_sites(name)
        except ExportError:
            continue
        if len(sites) == 1:
            found[name] = sites[0].output
    return found


def _torch_outputs(model: nn.Module, layers: list[str], inputs: torch.Tensor) -> dict:
    captured: dict[str, np.ndarray] = {}

    def hook(name: str):
        def keep(_module, _inputs, output):
            captured[name] = output.detach().cpu().numpy()

        return keep

    handles = [model.get_submodule(name).register_forward_hook(hook(name)) for name in layers]
    try:
        with torch.no_grad():
            model.eval()(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def _file_outputs(proto: onnx.ModelProto, tensors: list[str], inputs: np.ndarray) -> list:
    """The values of ``tensors`` when onnxruntime runs ``proto`` on ``inputs``."""
    import onnxruntime as ort

    probe = onnx.ModelProto.FromString(proto.SerializeToString())
    known = {o.name for o in probe.graph.output}
    for name in tensors:
        if name not in known:
            probe.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        probe.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    values = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, {session.get_inputs()[0].name: inputs}),
            strict=True,
        )
    )
    return [values.get(name) for name in tensors]


def layer_divergences(
    model: nn.Module, proto: onnx.ModelProto, tensors: dict[str, str], inputs: torch.Tensor
) -> list[LayerDivergence]:
    """Each layer's divergence in an onnx or onnx-qdq file (``tensors``: layer -> its
    output tensor in ``proto``, whose names these exports keep), in ``tensors``' order;
    layers the file does not keep are left out. QONNX files are not compared: qonnx's
    cleanup renames every tensor."""
    reference = _torch_outputs(model, list(tensors), inputs.cpu())
    exported = _file_outputs(proto, list(tensors.values()), inputs.cpu().numpy().astype(np.float32))
    found = []
    for (layer, _), value in zip(tensors.items(), exported, strict=True):
        ours = reference.get(layer)
        if value is None or ours is None or np.shape(value) != ours.shape:
            continue
        diff = np.abs(np.asarray(value, dtype=np.float64) - ours.astype(np.float64))
        found.append(LayerDivergence(layer, float(diff.max()), float(np.abs(ours).max())))
    return found


def first_divergence(divergences: list[LayerDivergence]) -> LayerDivergence | None:
    return next((d for d in divergences if d.relative > DIVERGED), None)
