"""Measure a candidate: its objectives from its run records (one per seed) and its model.

Quality is the mean over the experiment's seeds. Costs come from the first seed's model:
they depend on its architecture and bits, not its weights. Timing runs in the driver after
the generation's training has finished (parallel training never disturbs it), the
generation's candidates and the baseline in turns.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from qdistill.config import StrictConfig
from qdistill.errors import QdistillError
from qdistill.experiment.record import RunRecord
from qdistill.hardware.benchmark import benchmark_model
from qdistill.hardware.estimate import DataflowTarget, estimate_dataflow
from qdistill.models import load_model
from qdistill.quant import layer_costs, total_bops, total_macs
from qdistill.search.objectives import Objective
from qdistill.tasks import Task


class TimingConfig(StrictConfig):
    """How latency and throughput are measured on this machine: ``backend`` torch (eager
    float model) or ort_float / ort_int8 (onnxruntime), median of ``repeats`` runs after
    ``warmup`` runs; throughput is the best over ``batch_sizes``. Sub-millisecond models
    need hundreds of repeats for a stable median."""

    backend: Literal["torch", "ort_float", "ort_int8"] = "torch"
    repeats: int = Field(200, ge=3)
    warmup: int = Field(20, ge=0)
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 8, 64], min_length=1)


class FpgaConfig(StrictConfig):
    """The dataflow design the fpga_* objectives describe: folded to reach ``fps``, the
    fastest that fits board ``fit``, or PE = SIMD = 1 when neither is given."""

    clock_mhz: float = Field(100.0, gt=0)
    fps: float | None = Field(None, gt=0)
    fit: str | None = None
    utilisation: float = Field(1.0, gt=0, le=1)

    def target(self) -> DataflowTarget:
        from qdistill.hardware.boards import load_catalogue
        from qdistill.hardware.economics import board_budget

        fit = None
        if self.fit is not None:
            fit = board_budget(load_catalogue(None).board(self.fit), self.utilisation)
        return DataflowTarget(clock_mhz=self.clock_mhz, fps=self.fps, fit_within=fit)


def quality_values(records: list[RunRecord], monitor: str, headline: str) -> dict[str, float]:
    """The candidate's quality, mean over seeds: the validation ``monitor`` after its last
    stage (what the search ranks by; ``error`` too when it is an accuracy) and the test
    ``headline`` (reported, never ranked by, so the test split stays unseen)."""
    validation = [r.stages[-1].metrics.get(monitor) for r in records]
    test = [r.metrics.get(headline) for r in records]
    if None in validation or None in test:
        raise QdistillError(f"run {records[0].name} recorded no {monitor} or {headline}")
    values = {monitor: statistics.fmean(validation), headline: statistics.fmean(test)}
    if monitor == "val_acc":
        values["error"] = 100.0 - values[monitor]
        values["test_error"] = 100.0 - values[headline]
    return values


def timing_values(
    model: nn.Module, shape: tuple[int, ...], config: TimingConfig
) -> dict[str, float]:
    """``model``'s batch-1 latency (ms) and best throughput (images/s) on this machine."""
    samples = torch.rand(8, *shape, generator=torch.Generator().manual_seed(0))
    result = benchmark_model(
        model,
        shape,
        samples,
        backends=(config.backend,),
        batch_sizes=tuple(sorted({1, *config.batch_sizes})),
        repeats=max(3, config.repeats // ROUNDS),
        warmup=config.warmup,
        time_limit_s=5.0,
    )
    (backend,) = result.backends
    if backend.unavailable or backend.best is None or backend.latency_b1_ms is None:
        raise QdistillError(
            f"search timing: backend {config.backend} cannot run this candidate "
            f"({backend.unavailable or 'no measurement'}); use search.timing.backend: torch"
        )
    return {"latency_ms": backend.latency_b1_ms, "throughput": backend.best.throughput}


ROUNDS = 3  # side-by-side timing: every model once per round, the median of the rounds


def time_side_by_side(
    checkpoints: dict[str, Path], config: TimingConfig
) -> dict[str, dict[str, float]]:
    """Latency and throughput of each checkpoint's model, timed in turns (round robin)
    so that the machine's drift during the measurement affects all of them alike."""
    models = {}
    for name, path in checkpoints.items():
        model, metadata = load_model(path)
        models[name] = (model.eval(), tuple(metadata["input_shape"]))
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in models}
    for _ in range(ROUNDS):
        for name, (model, shape) in models.items():
            rounds[name].append(timing_values(model, shape, config))
    return {
        name: {key: statistics.median(r[key] for r in taken) for key in taken[0]}
        for name, taken in rounds.items()
    }


def _fpga(model: nn.Module, shape: tuple[int, ...], config: FpgaConfig) -> dict[str, float]:
    estimate = estimate_dataflow(model, shape, config.target())
    total = estimate.total
    return {
        "fpga_luts": total.lut,
        "fpga_bram": total.bram18,
        "fpga_dsp": total.dsp,
        "fpga_fps": estimate.fps,
    }


def _counts(model: nn.Module, shape: tuple[int, ...]) -> dict[str, float]:
    costs = layer_costs(model, torch.zeros(1, *shape))
    return {"macs": float(total_macs(costs)), "bops": float(total_bops(costs))}


def measure_candidate(
    records: list[RunRecord],
    out_dir: Path,
    objectives: list[Objective],
    task: Task,
    fpga: FpgaConfig,
) -> dict[str, float]:
    """The candidate's (runs ``records``) quality on validation and test, size, parameter
    count, and the counts and FPGA estimates ``objectives`` need; timing is measured
    apart, side by side (:func:`time_side_by_side`)."""
    values = quality_values(records, task.monitor, task.headline.key)
    shape = tuple(task.data.input_shape)
    first = records[0]
    values.update(size_bytes=float(first.size_bytes), params=float(first.params))
    sources = {item.source for item in objectives}
    if sources & {"model", "fpga"}:
        model, _ = load_model(out_dir / first.checkpoint)
        if "model" in sources:
            values.update(_counts(model, shape))
        if "fpga" in sources:
            values.update(_fpga(model, shape, fpga))
    return values
