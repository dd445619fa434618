"""A model's deployment measurement: throughput and latency per backend (with energy
estimates), MACs/BOPs per layer and its size, saved as JSON with a stamp saying what it
measured, so a later run reuses it while that has not changed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from qdistill.hardware.benchmark import BenchmarkResult, benchmark_model
from qdistill.paths import write_text
from qdistill.quant import LayerCost, ModelSize, layer_costs, model_size

MEASUREMENT_FILE = "benchmark.json"


@dataclass(frozen=True)
class DeploymentMeasurement:
    benchmark: BenchmarkResult
    layers: list[LayerCost]
    size: ModelSize
    stamp: str  # what was measured (e.g. a run id)

    def to_dict(self) -> dict:
        return {
            **self.benchmark.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
            "size": self.size.to_dict(),
            "stamp": self.stamp,
        }

    @classmethod
    def from_dict(cls, data: dict) -> DeploymentMeasurement:
        return cls(
            BenchmarkResult.from_dict(data),
            [LayerCost.from_dict(layer) for layer in data["layers"]],
            ModelSize.from_dict(data["size"]),
            data["stamp"],
        )

    def save(self, directory: Path) -> Path:
        return write_text(directory / MEASUREMENT_FILE, json.dumps(self.to_dict(), indent=2))


def saved_measurement(directory: Path, stamp: str) -> DeploymentMeasurement | None:
    """The measurement saved in ``directory`` if it measured ``stamp``, else None (none
    saved, another stamp, or a file this version cannot read)."""
    path = directory / MEASUREMENT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return DeploymentMeasurement.from_dict(data) if data.get("stamp") == stamp else None
    except (ValueError, KeyError, TypeError):
        return None


def measure_deployment(
    model: nn.Module, sample: torch.Tensor, stamp: str, **benchmark_options
) -> DeploymentMeasurement:
    """Benchmark ``model`` on ``sample``-shaped inputs (see :func:`benchmark_model` for the
    options) and count its per-layer costs and size."""
    result = benchmark_model(model, tuple(sample.shape[1:]), sample, **benchmark_options)
    return DeploymentMeasurement(result, layer_costs(model, sample[:1]), model_size(model), stamp)
