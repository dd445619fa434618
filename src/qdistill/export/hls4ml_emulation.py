"""Bit-exactness against hls4ml's emulated firmware (the optional ``fpga`` extra).

The QONNX export is prepared the way hls4ml documents (qonnx cleanup, Gemm -> MatMul,
channels-last for convolutions), converted with hls4ml, compiled with g++ (no vendor
tools) and run on the same inputs as qdistill's integer model (``convert``).

hls4ml stores scales in fixed point, so a match needs power-of-two scales everywhere
(``power_of_two: true``), zero points of 0 (symmetric activations), and per-tensor
weight scales: hls4ml 1.3 folds a weight's Quant node into the constant only when all
its scales are equal. Layers hls4ml has no implementation for (e.g. PixelShuffle,
exported as DepthToSpace) are reported by name.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qdistill.export.api import export_model
from qdistill.export.graph import ExportError
from qdistill.export.layers import export_layers
from qdistill.export.qonnx_format import runtime_ir_for_qonnx
from qdistill.quant import convert


@dataclass
class HLSCheck:
    max_abs_diff: float
    exact: bool
    samples: int
    seconds: float
    project_dir: str


def check_hls4ml_compatible(model: nn.Module) -> None:
    """Raise with the layer and the setting to change when hls4ml cannot match exactly."""
    for layer in export_layers(model):
        for role, quant in (("weight", layer.weight), ("input", layer.act)):
            if quant is None:
                continue
            scales = np.asarray(quant.scale, dtype=np.float64)
            if not np.all(np.frexp(scales)[0] == 0.5):
                raise ExportError(
                    f"layer {layer.name!r}: {role} scales are not powers of two; quantize "
                    f"with {{{role if role == 'weight' else 'act'}: {{power_of_two: true}}}}"
                )
            if quant.half_up:
                raise ExportError(
                    f"layer {layer.name!r}: {role} rounds half up; the hls4ml check is "
                    "bit-exact for rounding: half_even only"
                )
            if np.any(quant.zero_point != 0):
                raise ExportError(
                    f"layer {layer.name!r}: {role} zero point is not 0; use symmetric: true"
                )
            if role == "weight" and len(np.unique(scales)) > 1:
                raise ExportError(
                    f"layer {layer.name!r}: per-channel weight scales; hls4ml folds weight "
                    "quantization only with one scale per tensor (granularity: per_tensor)"
                )


def _prepare_for_hls4ml(path: Path, has_conv: bool):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    with runtime_ir_for_qonnx(), contextlib.redirect_stderr(io.StringIO()):
        wrapper = cleanup_model(ModelWrapper(str(path)))
        if has_conv:
            wrapper = wrapper.transform(ConvertToChannelsLastAndClean())
        wrapper = cleanup_model(wrapper.transform(GemmToMatMul()))
    return wrapper.model


def hls4ml_emulate(
    model: nn.Module,
    sample_inputs: torch.Tensor,
    work_dir: str | Path,
    backend: str = "Vitis",
    precision: str = "fixed<32,16>",
) -> HLSCheck:
    """Compile ``model`` with hls4ml's C++ emulation and compare it with qdistill's
    integer forward on ``sample_inputs``."""
    try:
        import hls4ml
    except ImportError:
        raise ExportError(
            "hls4ml is not installed; install the fpga extra: pip install -e '.[fpga]'"
        ) from None
    check_hls4ml_compatible(model)
    started = time.perf_counter()
    work_dir = Path(work_dir)
    qonnx_path = work_dir / "model.qonnx.onnx"
    export_model(model, qonnx_path, "qonnx", sample_inputs)
    has_conv = any(isinstance(m, nn.Conv1d | nn.Conv2d) for m in model.modules())
    prepared = _prepare_for_hls4ml(qonnx_path, has_conv)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            config = hls4ml.utils.config_from_onnx_model(
                prepared, granularity="name", backend=backend, default_precision=precision
            )
            hls_model = hls4ml.converters.convert_from_onnx_model(
                prepared,
                output_dir=str(work_dir / "hls4ml_prj"),
                backend=backend,
                hls_config=config,
            )
            hls_model.compile()
    except Exception as err:  # hls4ml raises plain Exceptions for unsupported graphs
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"hls4ml cannot convert this model: {message}") from None
    inputs = sample_inputs.detach().cpu().float()
    if has_conv and inputs.dim() == 4:
        hls_inputs = inputs.permute(0, 2, 3, 1)  # hls4ml runs channels-last
    else:
        hls_inputs = inputs.reshape(len(inputs), -1)
    predicted = np.asarray(hls_model.predict(np.ascontiguousarray(hls_inputs.numpy())))
    with torch.no_grad():
        expected = convert(model.eval())(inputs).numpy()
    predicted = predicted.reshape(expected.shape)
    diff = float(np.abs(predicted - expected).max())
    return HLSCheck(
        diff,
        diff == 0.0,
        len(inputs),
        round(time.perf_counter() - started, 2),
        str(work_dir / "hls4ml_prj"),
    )
