"""Single-model workflows behind ``qdistill train``, ``quantize``, ``evaluate``, ``export``,
``benchmark``, ``hardware`` and ``sensitivity``."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from qdistill.console import console
from qdistill.data import build_dataset
from qdistill.errors import CheckpointError, ConfigError
from qdistill.experiment.stages.equalize import EqualizeStage, equalize_before_quantizing
from qdistill.experiment.stages.mixed_precision import (
    MixedPrecisionStage,
    allocate_by_sensitivity,
    probe_sensitivity,
)
from qdistill.experiment.stages.quantize import quantize_calibrated
from qdistill.experiment.stages.training import check_learned, train_with_validation
from qdistill.export import ExportReport, Tolerance, export_model
from qdistill.export.qonnx_import import import_qonnx
from qdistill.hardware.benchmark import cpu_throughput
from qdistill.hardware.boards import load_catalogue
from qdistill.hardware.dataflow import dataflow_units
from qdistill.hardware.deployment import DeploymentMeasurement, measure_deployment
from qdistill.hardware.economics import CostReport, board_budget, cost_report
from qdistill.hardware.estimate import DataflowTarget, check_reachable, estimate_units
from qdistill.hardware.hls4ml_view import hls4ml_view
from qdistill.models import build_model, load_model, model_task, save_model
from qdistill.paths import writable_file
from qdistill.quant import QuantPlan, is_quantized, model_size
from qdistill.quant.sensitivity import SensitivityProbe
from qdistill.runtime import collect_versions, seed_everything
from qdistill.tasks import make_task
from qdistill.train import TrainConfig

_CPU = torch.device("cpu")


def train_float(
    data: Any,
    data_options: dict[str, Any],
    model_name: str,
    model_options: dict[str, Any],
    train: TrainConfig,
    seed: int,
    out: Path,
) -> dict[str, float]:
    """Train a float model, save it to ``out`` with its recipe; return its metrics."""
    writable_file(out)
    seed_everything(seed)
    task = make_task(data, _CPU)
    model = build_model(model_name, data.input_shape, data.num_outputs, **model_options)
    summary = train_with_validation(model, task, train, seed, model_name)
    check_learned(task, summary, model_name)
    metrics = task.evaluate(model)
    save_model(
        out,
        model,
        model_name=model_name,
        model_options=model_options,
        input_shape=data.input_shape,
        num_outputs=data.num_outputs,
        extra={
            "data": {"name": data.name, "options": data_options},
            "seed": seed,
            "train": train.model_dump(mode="json"),
            "metrics": metrics,
            "train_summary": {k: v for k, v in summary.items() if k != "history"},
            "versions": collect_versions(),
        },
    )
    return metrics


def checkpoint_data(
    metadata: dict[str, Any], name: str | None, options: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    recorded = metadata.get("data") or {}
    name = name or recorded.get("name")
    if name is None:
        raise ConfigError("the checkpoint does not record its dataset; pass --data NAME")
    if not options and name == recorded.get("name"):
        options = recorded.get("options", {})
    return build_dataset(name, **options), {"name": name, "options": options}


def save_derived(
    out: Path,
    model: nn.Module,
    metadata: dict[str, Any],
    data: Any,
    extra: dict[str, Any],
    pruned_shapes: dict[str, list[int]] | None = None,
    fold_bn: bool = False,
) -> None:
    """Save a model made from a checkpoint: its registered architecture, on its data."""
    save_model(
        out,
        model,
        model_name=metadata["model"],
        model_options=metadata.get("model_options", {}),
        input_shape=data.input_shape,
        num_outputs=data.num_outputs,
        fold_bn=fold_bn,
        pruned_shapes=pruned_shapes,
        extra=extra,
    )


@dataclass(frozen=True)
class QuantizeSummary:
    """The headline test metric before and after quantizing, and the sizes."""

    headline: str
    float_value: float
    value: float
    integer_value: float  # of the converted (integer) model
    float_bytes: int
    size_bytes: int


def quantize_checkpoint(
    checkpoint: Path,
    plan: QuantPlan,
    method: str,
    train: TrainConfig | None,
    calibration_batches: int,
    fold_bn: bool,
    seed: int,
    out: Path,
    equalize: bool = False,
) -> QuantizeSummary:
    """PTQ (calibrate) or QAT (calibrate, then train) a float checkpoint, optionally after
    equalizing its activation ranges; save the result."""
    writable_file(out)
    float_model, metadata = load_model(checkpoint)
    if is_quantized(float_model):
        raise CheckpointError(f"{checkpoint} is already quantized; start from the float model")
    data, data_record = checkpoint_data(metadata, None, {})
    task = make_task(data, _CPU)
    seed_everything(seed)
    model = copy.deepcopy(float_model)
    equalized = None
    if equalize:
        equalized = equalize_before_quantizing(model, task, EqualizeStage(), console.print)
    batches = task.calibration_batches()
    model, _ = quantize_calibrated(model, plan, batches, calibration_batches, _CPU, fold_bn)
    if method == "qat":
        train_with_validation(model, task, train, seed, f"qat {plan.short}")
    metrics = task.evaluate(model)
    metrics.update(task.integer_metrics(model))
    extra = {
        "data": data_record,
        "method": method,
        "bits": plan.short,
        "equalized": equalized,
        "seed": seed,
        "source": str(checkpoint),
        "metrics": metrics,
        "versions": collect_versions(),
    }
    save_derived(out, model, metadata, data, extra, metadata.get("pruned_shapes"), fold_bn)
    key = task.headline.key
    return QuantizeSummary(
        headline=key,
        float_value=task.evaluate(float_model)[key],
        value=metrics[key],
        integer_value=metrics[task.integer.key],
        float_bytes=model_size(float_model).total_bytes,
        size_bytes=model_size(model).total_bytes,
    )


def evaluate_checkpoint(
    checkpoint: Path, data_name: str | None, data_options: dict[str, Any]
) -> dict[str, Any]:
    """Accuracy on every split, size, and (quantized models) integer-model accuracy."""
    model, metadata = load_model(checkpoint)
    data, _ = checkpoint_data(metadata, data_name, data_options)
    expected = tuple(metadata["input_shape"])
    task = make_task(data, _CPU)
    kind = model_task(metadata["model"])
    if kind != task.kind:
        raise ConfigError(
            f"{checkpoint} holds a {kind.replace('_', '-')} model ({metadata['model']}) but "
            f"dataset {data.name!r} is a {task.kind.replace('_', '-')} dataset"
        )
    # super-resolution models are fully convolutional: any image size, the same channels
    compared = 1 if task.kind == "super_resolution" else len(expected)
    if expected[:compared] != tuple(data.input_shape)[:compared]:
        what = "channels" if compared == 1 else "inputs"
        hint = f"; read it with --data-option channels={'y' if expected[0] == 1 else 'rgb'}"
        raise ConfigError(
            f"{checkpoint} expects {what} {expected[:compared]} but dataset "
            f"{data.name!r} gives {tuple(data.input_shape)[:compared]}"
            + (hint if compared == 1 else "")
        )
    result: dict[str, Any] = {"model": metadata["model"], "dataset": data.name}
    result.update(task.evaluate(model))
    if is_quantized(model):
        result.update(task.integer_metrics(model))
    size = model_size(model)
    result["size_bytes"] = size.total_bytes
    result["float32_bytes"] = size.float32_bytes
    return result


def export_checkpoint(
    checkpoint: Path,
    fmt: str,
    out: Path,
    samples: int,
    tolerance: Tolerance | None = None,
    on_mismatch: Literal["refuse", "warn"] = "refuse",
) -> ExportReport:
    """Export a qdistill checkpoint, verified on ``samples`` test inputs of its dataset."""
    model, metadata = load_model(checkpoint)
    data, _ = checkpoint_data(metadata, None, {})
    if samples < 1:
        raise ConfigError(f"--samples must be at least 1, got {samples}")
    return export_model(
        model,
        out,
        fmt,
        data.sample_inputs(samples),
        tolerance=tolerance,
        on_mismatch=on_mismatch,
    )


def benchmark_checkpoint(
    checkpoint: Path,
    backends: tuple[str, ...] | None,
    batch_sizes: tuple[int, ...],
    repeats: int,
    time_limit_s: float,
) -> DeploymentMeasurement:
    """Benchmark a checkpoint on each backend, with its per-layer costs and size."""
    model, metadata = load_model(checkpoint)
    data, _ = checkpoint_data(metadata, None, {})
    if repeats < 2 or not batch_sizes or min(batch_sizes) < 1:
        raise ConfigError("benchmark needs --repeats >= 2 and positive batch sizes")
    return measure_deployment(
        model,
        data.sample_inputs(32),
        str(checkpoint),
        backends=backends,
        batch_sizes=batch_sizes,
        repeats=repeats,
        time_limit_s=time_limit_s,
    )


def hardware_checkpoint(
    checkpoint: Path,
    target: DataflowTarget,
    *,
    input_shape: tuple[int, ...] | None = None,
    board: str | None = None,
    utilisation: float = 1.0,
    catalogue_path: Path | None = None,
    measure_cpu: bool = False,
    processor_fps: dict[str, float] | None = None,
    hls4ml_reuse: int | None = None,
) -> CostReport:
    """The dataflow estimate of a quantized checkpoint (or QONNX file) and its economics:
    folded to ``target.fps`` when given, else to the fastest design that fits ``board``;
    CPU throughput measured here with ``measure_cpu``, other processors' as given."""
    catalogue = load_catalogue(catalogue_path)
    if not 0 < utilisation <= 1:
        raise ConfigError(f"--utilisation must be in (0, 1], got {utilisation}")
    chosen = catalogue.board(board) if board else None  # unknown names fail before loading
    for name in processor_fps or {}:
        catalogue.processor(name)
    model, input_shape = _quantized_model(checkpoint, input_shape)
    if target.fps is None and chosen is not None:
        target = dataclasses.replace(target, fit_within=board_budget(chosen, utilisation))
    units = dataflow_units(model, input_shape)
    estimate = estimate_units(units, target)
    check_reachable(estimate)
    measured = {name: (fps, "given") for name, fps in (processor_fps or {}).items()}
    if measure_cpu:
        measured["cpu"] = cpu_throughput(model, input_shape)
    report = cost_report(estimate, catalogue, measured)
    if hls4ml_reuse is not None:
        report.hls4ml = hls4ml_view(units, hls4ml_reuse)
    return report


def _quantized_model(
    path: Path, input_shape: tuple[int, ...] | None
) -> tuple[nn.Module, tuple[int, ...]]:
    """The quantized model in a checkpoint or a QONNX file (.onnx), and the input shape
    to estimate it at (``input_shape``, else the one it was made for)."""
    if path.suffix == ".onnx":
        imported = import_qonnx(path)
        model, made_for = imported.model, imported.input_shape
        if made_for is None and input_shape is None:
            raise ConfigError(f"{path} has no fixed input shape; give --input-shape C,H,W")
    else:
        model, metadata = load_model(path)
        made_for = tuple(metadata["input_shape"])
        if not is_quantized(model):
            raise ConfigError(
                f"{path} holds a float model; the dataflow estimate needs a quantized one "
                "(qdistill quantize ... first)"
            )
    input_shape = input_shape or made_for
    if min(input_shape) < 1 or (made_for is not None and len(input_shape) != len(made_for)):
        raise ConfigError(
            f"--input-shape {list(input_shape)} does not fit {path}, whose inputs are "
            f"{list(made_for)}"
        )
    return model, input_shape


def sensitivity_checkpoint(
    checkpoint: Path,
    allocation: MixedPrecisionStage,
    allocate: bool,
    log: Callable[[str], None],
) -> SensitivityProbe:
    """Quantize each stage (or layer) of a float checkpoint alone at each probed width of
    ``allocation`` and score it on the validation split; with ``allocate`` also allocate
    a plan within its budget (an Allocation)."""
    model, metadata = load_model(checkpoint)
    if is_quantized(model):
        raise CheckpointError(f"{checkpoint} is quantized; measure sensitivity on the float model")
    data, _ = checkpoint_data(metadata, None, {})
    task = make_task(data, _CPU)
    if allocate:
        return allocate_by_sensitivity(model, task, allocation, log)
    return probe_sensitivity(model, task, allocation, log)
