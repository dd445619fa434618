"""export(): write a model as onnx, onnx-qdq or qonnx, and verify it before reporting it."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import torch
from torch import nn

from qdistill.errors import ConfigError
from qdistill.export.divergence import (
    DIVERGED,
    LayerDivergence,
    first_divergence,
    layer_divergences,
    layer_output_tensors,
)
from qdistill.export.finn import check_finn_supported, finn_ready
from qdistill.export.graph import ExportError, export_float, float_shadow
from qdistill.export.layers import export_layers
from qdistill.export.qdq import check_qdq_supported, to_qdq
from qdistill.export.qonnx_format import cleanup, to_qonnx
from qdistill.export.verify import (
    FORMATS,
    Comparison,
    Tolerance,
    compare_outputs,
    run_exported,
    tolerance_misses,
)
from qdistill.paths import writable_file, write_atomically, write_text
from qdistill.quant import is_quantized, unquantized_parameters
from qdistill.quant.half import is_half
from qdistill.quant.modules import QuantPooling


@dataclass
class ExportReport:
    format: str
    path: str
    layers: dict[str, str]  # quantized layer -> "w8a8", ...
    comparison: Comparison
    passed: bool
    opset: int
    ir_version: int
    file_bytes: int
    seconds: float
    stamp: str | None = None  # what was exported (e.g. a run id)
    # what was outside tolerance, in words (a file is written with misses only when asked:
    # on_mismatch="warn")
    misses: list[str] = dataclasses.field(default_factory=list)
    # with misses: each quantized layer's output in the file against PyTorch's
    divergences: list[LayerDivergence] = dataclasses.field(default_factory=list)
    # where the target runtime will compute in float what the model could run in integers
    hints: list[str] = dataclasses.field(default_factory=list)

    @property
    def outcome(self) -> str:
        return "verified" if self.passed else "written with warnings"

    def to_dict(self) -> dict:
        return {**asdict(self), "comparison": self.comparison.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> ExportReport:
        fields = {f.name for f in dataclasses.fields(cls)}
        divergences = [
            LayerDivergence(d["layer"], d["max_abs_diff"], d["output_range"])
            for d in data.get("divergences", [])
        ]
        return cls(
            **{
                **{k: data[k] for k in fields if k in data},
                "comparison": Comparison(**data["comparison"]),
                "divergences": divergences,
            }
        )

    def summary(self) -> str:
        c = self.comparison
        parts = [
            f"{self.format} -> {self.path} ({self.file_bytes / 1024:.1f} KiB)",
            f"max |diff| {c.max_abs_diff:.3g}",
            f"mean |diff| {c.mean_abs_diff:.3g}",
        ]
        if c.agreement is not None:
            parts.append(f"class agreement {100 * c.agreement:.2f}%")
        if c.psnr_db is not None:
            parts.append(f"PSNR vs PyTorch {c.psnr_db:.1f} dB")
        text = ", ".join(parts) + f" on {c.samples} samples"
        text += "".join(f"; hint: {hint}" for hint in self.hints)
        if not self.misses:
            return text
        return f"{text}; outside tolerance: {'; '.join(self.misses)}; {self.where_it_diverges()}"

    def where_it_diverges(self) -> str:
        if not self.divergences:
            if self.format in ("qonnx", "finn"):
                return "no per-layer comparison (qonnx's cleanup renames every tensor)"
            return "no per-layer comparison (no quantized layer's output is kept in the file)"
        first = first_divergence(self.divergences)
        if first is None:
            worst = max(self.divergences, key=lambda d: d.relative)
            return (
                f"every layer's outputs agree within {100 * DIVERGED:g}% of their range "
                f"(largest: {worst.layer}, {100 * worst.relative:.2g}%): the difference "
                "arises between or after the layers, e.g. a near-tie at the output"
            )
        return (
            f"the first layer that diverges is {first.layer} (max |diff| {first.max_abs_diff:.3g}"
            f", {100 * first.relative:.2g}% of its output range)"
        )


def trace_batch(samples: torch.Tensor) -> torch.Tensor:
    """Two samples to trace with: torch.export fixes a batch axis of size 1 as a constant
    (so an LSTM's initial state, sized from the batch, would only accept batch 1)."""
    samples = samples.cpu()
    return samples[:2] if len(samples) >= 2 else samples[:1].repeat(2, *[1] * (samples.dim() - 1))


def export_model(
    model: nn.Module,
    path: str | Path,
    fmt: str,
    sample_inputs: torch.Tensor,
    *,
    write_report: bool = True,
    stamp: str | None = None,
    tolerance: Tolerance | None = None,
    on_mismatch: Literal["refuse", "warn"] = "refuse",
) -> ExportReport:
    """Export ``model`` to ``path`` and verify the written file against PyTorch.

    ``onnx`` is the float computation (quantizers bypassed; a half-precision model keeps
    its float16 weights and casts); ``onnx-qdq``, ``qonnx`` and ``finn`` (QONNX written
    the way FINN's importer maps it) need a quantized, calibrated model and carry its
    learned scales and zero points.
    The file is executed on ``sample_inputs`` and compared with the PyTorch outputs;
    beyond ``tolerance`` the export fails with the numbers (the file is kept beside the
    target as ``*.unverified.onnx`` for inspection), or with ``on_mismatch="warn"`` is
    written with the misses in ``report.misses``. The report is also written as
    ``<path>.report.json``, with ``stamp`` (what was exported, e.g. a run id) for
    :func:`saved_export`.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"export format {fmt!r} is unknown; use {', '.join(FORMATS)}")
    quantized = is_quantized(model)
    if fmt != "onnx" and not quantized:
        raise ExportError(f"format {fmt} needs a quantized model; quantize it first or use onnx")
    left_float = unquantized_parameters(model) if fmt != "onnx" else []
    writable_file(path)
    started = time.perf_counter()
    model = model.eval()
    shadow = float_shadow(model)
    layers = export_layers(model) if quantized else []
    if fmt == "onnx-qdq":
        check_qdq_supported(layers)  # refuse before the (slow) trace
    if fmt == "finn":
        check_finn_supported(layers)
    proto = export_float(shadow, trace_batch(sample_inputs))
    _refuse_float_products(proto, left_float, fmt)
    layer_outputs = layer_output_tensors(
        proto, [layer.name for layer in layers if not layer.pooling]
    )
    if fmt == "onnx-qdq":
        proto = to_qdq(proto, layers)
    elif fmt == "qonnx":
        proto = to_qonnx(proto, layers)
    elif fmt == "finn":
        proto = cleanup(finn_ready(to_qonnx(proto, layers)))
    reference_model = shadow if fmt == "onnx" else model
    with torch.no_grad():
        reference = reference_model(sample_inputs.cpu()).numpy()
    exported = run_exported(proto, sample_inputs.cpu().numpy().astype(np.float32), fmt)
    comparison = compare_outputs(reference, exported)
    misses = tolerance_misses(comparison, fmt, is_half(model), tolerance)
    compared = misses and fmt in ("onnx", "onnx-qdq")  # QONNX cleanup renames tensors
    divergences = (
        layer_divergences(reference_model, proto, layer_outputs, sample_inputs) if compared else []
    )
    report = ExportReport(
        format=fmt,
        path=str(path),
        layers={layer.name: layer.label for layer in layers},
        comparison=comparison,
        passed=not misses,
        opset=max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
        ir_version=proto.ir_version,
        file_bytes=proto.ByteSize(),
        seconds=round(time.perf_counter() - started, 3),
        stamp=stamp,
        misses=misses,
        divergences=divergences,
        hints=_float_pooling_hints(model) if fmt == "onnx-qdq" else [],
    )
    return _write(proto, Path(path), report, write_report, on_mismatch)


def _float_pooling_hints(model: nn.Module) -> list[str]:
    pools = [
        name
        for name, module in model.named_modules()
        if isinstance(module, (nn.AvgPool2d, nn.AdaptiveAvgPool2d))
        and not isinstance(module, QuantPooling)
    ]
    if not pools:
        return []
    return [
        f"average pooling {', '.join(pools)} takes float inputs, so onnxruntime runs the "
        "layer before it in float; quantize through it with the plan rule '@pooling': 'a8'"
    ]


# Ops that multiply their inputs (an integer format computes these in integers), and ops
# that only move or reshape values on the way there.
PRODUCTS = {"MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum", "Mul", "LSTM", "GRU", "RNN"}
PASS_THROUGH = {
    *("Transpose", "Reshape", "Cast", "Unsqueeze", "Squeeze", "Expand", "Identity"),
    *("Concat", "Slice", "Split", "Gather"),
}


def _refuse_float_products(proto: onnx.ModelProto, left_float: list[str], fmt: str) -> None:
    """Refuse an integer format when a parameter no quantizer covers is multiplied in the
    graph (an LSTM with projections, a raw weight in a matmul); parameters only added or
    concatenated (a ViT's class token and position embedding, like a LayerNorm's shift)
    stay float between the quantized layers, as in every integer runtime."""
    consumed = {name for node in proto.graph.node for name in node.input}
    # a parameter the graph does not read under its own name cannot be shown to be added
    multiplied = [n for n in left_float if n not in consumed or _reaches_product(proto, n)]
    if multiplied:
        raise ExportError(
            f"format {fmt} would claim integer arithmetic, but {', '.join(multiplied[:4])}"
            f"{' and more' if len(multiplied) > 4 else ''} compute in float (layers qdistill "
            "cannot quantize); export 'onnx', or replace those layers"
        )


def _reaches_product(proto: onnx.ModelProto, tensor: str) -> bool:
    """Whether ``tensor`` is an input of a product op, directly or through ops that only
    move its values."""
    frontier, seen = [tensor], set()
    while frontier:
        name = frontier.pop()
        seen.add(name)
        for node in proto.graph.node:
            if name not in node.input:
                continue
            if node.op_type in PRODUCTS:
                return True
            if node.op_type in PASS_THROUGH:
                frontier += [out for out in node.output if out not in seen]
    return False


def saved_export(path: str | Path, stamp: str) -> ExportReport | None:
    """The report of the verified export at ``path`` if it was made from ``stamp``; None
    when there is none, it was made from something else, or its report is unreadable."""
    report_path = Path(f"{path}.report.json")
    if not (Path(path).is_file() and report_path.is_file()):
        return None
    try:
        report = ExportReport.from_dict(json.loads(report_path.read_text()))
    except (ValueError, KeyError, TypeError):
        return None
    return report if report.stamp == stamp else None


def verify_file(path: str | Path, model: nn.Module, sample_inputs: torch.Tensor, fmt: str):
    """Re-run an exported file and compare it with ``model``: (comparison, passed)."""
    proto = onnx.load(str(path))
    reference_model = model.eval() if fmt != "onnx" else float_shadow(model)
    with torch.no_grad():
        reference = reference_model(sample_inputs.cpu()).numpy()
    comparison = compare_outputs(reference, run_exported(proto, sample_inputs.numpy(), fmt))
    return comparison, not tolerance_misses(comparison, fmt, is_half(model))


def _write(
    proto: onnx.ModelProto, path: Path, report: ExportReport, write_report: bool, on_mismatch: str
):
    if not report.passed and on_mismatch != "warn":
        rejected = path.with_name(path.stem + ".unverified.onnx")
        write_atomically(rejected, lambda tmp: onnx.save(proto, str(tmp)))
        raise ExportError(
            f"{report.format} export does not reproduce the PyTorch model "
            f"({report.summary()}); kept for inspection as {rejected}"
        )
    write_atomically(path, lambda tmp: onnx.save(proto, str(tmp)))
    if write_report:
        write_text(f"{path}.report.json", json.dumps(report.to_dict(), indent=2))
    return report
