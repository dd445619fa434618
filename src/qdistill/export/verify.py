"""Run an exported file and compare it with the PyTorch model it came from.

onnx and onnx-qdq files run in onnxruntime; QONNX files in qonnx's executor, with
the IR-version fix of :func:`runtime_ir_for_qonnx`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import onnx

from qdistill.errors import ConfigError
from qdistill.export.graph import ExportError
from qdistill.export.qonnx_format import runtime_ir_for_qonnx

FORMATS = ("onnx", "onnx-qdq", "qonnx", "finn")


@dataclass
class Comparison:
    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    output_scale: float  # mean |reference output|
    agreement: float | None  # share of equal arg-max (classification outputs)
    psnr_db: float | None  # PSNR of the exported output against PyTorch's (image outputs)

    def to_dict(self) -> dict:
        return asdict(self)


def compare_outputs(reference: np.ndarray, exported: np.ndarray) -> Comparison:
    if reference.shape != exported.shape:
        raise ValueError(f"exported output shape {exported.shape} != PyTorch {reference.shape}")
    diff = np.abs(reference.astype(np.float64) - exported.astype(np.float64))
    agreement = psnr = None
    if reference.ndim == 2:
        # Rows whose top-2 margin is within float noise of their magnitude (near-ties, as
        # in an untrained model) may flip harmlessly; agreement counts the other rows.
        top2 = np.sort(reference, axis=1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]
        decisive = margin > 1e-4 * np.maximum(np.abs(reference).max(axis=1), 1e-12)
        same = reference.argmax(1) == exported.argmax(1)
        agreement = float(same[decisive].mean()) if decisive.any() else 1.0
    if reference.ndim == 4:
        peak = float(reference.max() - reference.min()) or 1.0
        mse = float((diff**2).mean())
        psnr = math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)
    return Comparison(
        samples=len(reference),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        output_scale=float(np.abs(reference).mean()),
        agreement=agreement,
        psnr_db=psnr,
    )


@dataclass(frozen=True)
class Tolerance:
    """How close a quantized export must come to the PyTorch model: the share of samples
    (with a decisive top class) whose top class agrees, the PSNR of image outputs, and
    the mean |diff| relative to the mean |output|. Float exports must match to float
    rounding, whatever this says."""

    agreement: float = 0.99
    psnr_db: float = 40.0
    mean_diff: float = 0.05

    def __post_init__(self) -> None:
        if not 0 <= self.agreement <= 1:
            raise ConfigError(f"tolerance agreement must be in [0, 1], got {self.agreement}")
        if self.mean_diff <= 0:
            raise ConfigError(f"tolerance mean_diff must be positive, got {self.mean_diff}")


def tolerance_misses(
    result: Comparison, fmt: str, half: bool = False, tolerance: Tolerance | None = None
) -> list[str]:
    """What is outside tolerance, in words (empty when the export passes).

    Float exports must match to float rounding; half-precision ones to a few float16
    steps (2^-10 relative: the runtime's float16 kernels round their sums in their own
    order, and each difference of one step propagates). Quantized exports are exact except
    where a value lands within float rounding of a quantization boundary: the float ops
    between quantizers (BatchNorm, residual adds, the convolutions' own accumulation
    order) differ between PyTorch and the runtime by ~1e-7, which now and then moves a
    code by one step. Each such flip is small but they accumulate with depth (ResNet-18:
    mean |diff| ~1% of the output scale); a wrong export differs by tens of percent."""
    tolerance = tolerance or Tolerance()
    scale = max(result.output_scale, 1e-6)
    if fmt == "onnx":
        limit = (2**-7 if half else 1e-4) * max(scale, 1.0)
        over = result.max_abs_diff > limit
        return [f"max |diff| {result.max_abs_diff:.3g} > {limit:.3g}"] if over else []
    misses = []
    if result.agreement is not None and result.agreement < tolerance.agreement:
        misses.append(
            f"class agreement {100 * result.agreement:.2f}% < {100 * tolerance.agreement:g}%"
        )
    if result.psnr_db is not None and result.psnr_db < tolerance.psnr_db:
        misses.append(f"PSNR {result.psnr_db:.1f} dB < {tolerance.psnr_db:g} dB")
    if result.mean_abs_diff > tolerance.mean_diff * scale:
        misses.append(
            f"mean |diff| {result.mean_abs_diff:.3g} > {tolerance.mean_diff:g} x mean |output| "
            f"{scale:.3g}"
        )
    return misses


def within_tolerance(
    result: Comparison, fmt: str, half: bool = False, tolerance: Tolerance | None = None
) -> bool:
    return not tolerance_misses(result, fmt, half, tolerance)


def run_onnxruntime(model: onnx.ModelProto | bytes, inputs: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    data = model if isinstance(model, bytes) else model.SerializeToString()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: inputs})[0]


def run_qonnx(model: onnx.ModelProto, inputs: np.ndarray) -> np.ndarray:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    wrapper = ModelWrapper(onnx.ModelProto.FromString(model.SerializeToString()))
    wrapper = wrapper.transform(ChangeBatchSize(len(inputs))).transform(InferShapes())
    if len(inputs) > 1 and not wrapper.check_all_tensor_shapes_specified():
        # a tensor of the file's batch (1) folded into a constant (a ViT's class token
        # expanded to the batch): run the file as written, one sample at a time
        return np.concatenate([run_qonnx(model, inputs[i : i + 1]) for i in range(len(inputs))])
    name = wrapper.graph.input[0].name
    with runtime_ir_for_qonnx():
        outputs = execute_onnx(wrapper, {name: inputs})
    return outputs[wrapper.graph.output[0].name]


def run_exported(model: onnx.ModelProto, inputs: np.ndarray, fmt: str) -> np.ndarray:
    """Execute a written file (qonnx's executor or onnxruntime); a runtime that refuses
    or fails on it is one ExportError line."""
    runtime = "qonnx's executor" if fmt in ("qonnx", "finn") else "onnxruntime"
    try:
        if fmt in ("qonnx", "finn"):
            return run_qonnx(model, inputs)
        return run_onnxruntime(model, inputs)
    except Exception as err:  # each runtime raises its own exception types
        detail = " ".join(str(err).split())[:300] or type(err).__name__
        raise ExportError(
            f"the {fmt} file does not run in {runtime} ({detail}); export another format, "
            "or report the model to qdistill"
        ) from None
