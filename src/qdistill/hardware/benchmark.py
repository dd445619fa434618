"""Latency and throughput versus batch size for several backends, with energy estimates.

Backends: PyTorch eager (float), torch.compile (float, when it compiles), onnxruntime
float, onnxruntime int8 QDQ (quantized models), PyTorch on CUDA when a GPU is present.
Each batch size gets a warm-up and repeated timed runs (median and 10th/90th
percentiles); larger batch sizes stop once a run exceeds the time limit or memory runs
out. onnxruntime models are qdistill's verified exports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from qdistill.errors import ConfigError
from qdistill.export import ExportError, export_model
from qdistill.export.graph import float_shadow
from qdistill.hardware.power import energy_per_image_j, power_table
from qdistill.quant import is_quantized

DEFAULT_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
BACKENDS = ("torch", "torch_compile", "ort_float", "ort_int8", "cuda")
PLATFORM = {
    "torch": "cpu",
    "torch_compile": "cpu",
    "ort_float": "cpu",
    "ort_int8": "cpu",
    "cuda": "cuda",
}


@dataclass
class Point:
    batch: int
    latency_ms: float  # median per batch
    p10_ms: float
    p90_ms: float
    throughput: float  # images per second

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BackendResult:
    backend: str
    points: list[Point] = field(default_factory=list)
    unavailable: str | None = None  # why the backend did not run
    platform: str = "cpu"
    watts: float | None = None
    energy_mj: float | None = None  # estimated energy per image (mJ)

    @property
    def latency_b1_ms(self) -> float | None:
        return next((p.latency_ms for p in self.points if p.batch == 1), None)

    @property
    def best(self) -> Point | None:
        return max(self.points, key=lambda p: p.throughput, default=None)

    def to_dict(self) -> dict:
        best = self.best
        return {
            **asdict(self),
            "latency_b1_ms": self.latency_b1_ms,
            "best_throughput": best.throughput if best else None,
            "best_batch": best.batch if best else None,
        }

    @classmethod
    def from_dict(cls, data: dict) -> BackendResult:
        fields = {f.name for f in dataclasses.fields(cls)} - {"points"}
        points = [Point(**point) for point in data["points"]]
        return cls(**{k: data[k] for k in fields if k in data}, points=points)


@dataclass
class BenchmarkResult:
    input_shape: tuple[int, ...]
    threads: int
    backends: list[BackendResult]
    repeats: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "threads": self.threads,
            "repeats": self.repeats,
            "notes": self.notes,
            "backends": [b.to_dict() for b in self.backends],
        }

    @classmethod
    def from_dict(cls, data: dict) -> BenchmarkResult:
        return cls(
            input_shape=tuple(data["input_shape"]),
            threads=data["threads"],
            backends=[BackendResult.from_dict(b) for b in data["backends"]],
            repeats=data["repeats"],
            notes=list(data["notes"]),
        )


def _time_batches(
    make_runner: Callable[[int], Callable[[], object]],
    batches: tuple[int, ...],
    repeats: int,
    warmup: int,
    time_limit_s: float,
    sync: Callable[[], None] = lambda: None,
) -> list[Point]:
    points = []
    for batch in batches:
        try:
            run = make_runner(batch)
            for _ in range(warmup):
                run()
            sync()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                sync()
                times.append(time.perf_counter() - start)
        except (RuntimeError, MemoryError) as err:  # out of memory at this batch size
            if "memory" in str(err).lower() or isinstance(err, MemoryError):
                break
            raise
        median = statistics.median(times)
        quantiles = statistics.quantiles(times, n=10) if len(times) > 1 else [median] * 9
        points.append(
            Point(batch, 1e3 * median, 1e3 * quantiles[0], 1e3 * quantiles[-1], batch / median)
        )
        if median * repeats > time_limit_s:
            break
    return points


def _torch_runner(model: nn.Module, shape: tuple[int, ...], device: str):
    def make(batch: int):
        x = torch.randn(batch, *shape, device=device)

        def run():
            with torch.no_grad():
                return model(x)

        return run

    return make


def _ort_runner(path: Path, shape: tuple[int, ...]):
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def make(batch: int):
        x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
        return lambda: session.run(None, {name: x})

    return make


def benchmark_model(
    model: nn.Module,
    input_shape: tuple[int, ...],
    sample_inputs: torch.Tensor,
    *,
    backends: tuple[str, ...] | None = None,
    batch_sizes: tuple[int, ...] = DEFAULT_BATCHES,
    repeats: int = 20,
    warmup: int = 3,
    time_limit_s: float = 10.0,
    power_path: str | None = None,
) -> BenchmarkResult:
    """Measure ``model`` (float or quantized) on every requested backend."""
    unknown = set(backends or ()) - set(BACKENDS)
    if unknown:
        raise ConfigError(f"unknown backend(s) {sorted(unknown)}; use {', '.join(BACKENDS)}")
    quantized = is_quantized(model)
    if backends is None:
        backends = ("torch", "ort_float") + (("ort_int8",) if quantized else ())
        backends += ("cuda",) if torch.cuda.is_available() else ()
    float_model = float_shadow(model) if quantized else model.eval()
    platforms = power_table(power_path)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            result = BackendResult(backend, platform=PLATFORM[backend])
            try:
                make = _runner(
                    backend, model, float_model, input_shape, sample_inputs, Path(tmp), quantized
                )
                sync = torch.cuda.synchronize if backend == "cuda" else (lambda: None)
                result.points = _time_batches(
                    make, tuple(batch_sizes), repeats, warmup, time_limit_s, sync
                )
            except _Unavailable as why:
                result.unavailable = str(why)
            platform = platforms.get(result.platform)
            if platform and result.points and result.latency_b1_ms:
                result.watts = platform.watts
                result.energy_mj = 1e3 * energy_per_image_j(
                    platform.watts, result.latency_b1_ms / 1e3, result.best.throughput
                )
            results.append(result)
    used = [p for p in platforms.values() if p.name in {r.platform for r in results}]
    power = "; ".join(f"{p.name} {p.watts:g} W ({p.note})" for p in used)
    notes = [
        "energy per image = min(P x batch-1 latency, P / best throughput), P from the power "
        f"table: {power}. Estimates, not measurements."
    ]
    return BenchmarkResult(tuple(input_shape), torch.get_num_threads(), results, repeats, notes)


class _Unavailable(Exception):
    """A backend cannot run here (with the reason)."""


def _runner(backend, model, float_model, shape, sample, tmp: Path, quantized: bool):
    if backend == "torch":
        return _torch_runner(float_model, shape, "cpu")
    if backend == "cuda":
        if not torch.cuda.is_available():
            raise _Unavailable("no CUDA GPU on this machine")
        import copy

        return _torch_runner(copy.deepcopy(float_model).cuda(), shape, "cuda")
    if backend == "torch_compile":
        compiled = torch.compile(float_model)
        try:
            with contextlib.redirect_stderr(None), torch.no_grad():
                compiled(torch.randn(2, *shape))
        except Exception as err:  # compilation fails in many ways (no compiler, ops)
            raise _Unavailable(f"torch.compile failed: {str(err).splitlines()[0][:120]}") from None
        return _torch_runner(compiled, shape, "cpu")
    if backend == "ort_float":
        path = tmp / "float.onnx"
        export_model(float_model, path, "onnx", sample, write_report=False)
        return _ort_runner(path, shape)
    if not quantized:
        raise _Unavailable("the model is not quantized")
    path = tmp / "int8.onnx"
    try:
        export_model(model, path, "onnx-qdq", sample, write_report=False)
    except ExportError as err:
        raise _Unavailable(str(err)) from None
    return _ort_runner(path, shape)


def eager_latency_ms(model: nn.Module, example: torch.Tensor, repeats: int = 7) -> float:
    """Median PyTorch eager latency (ms) of ``model`` on inputs shaped like ``example``
    (batch 1) on ``example``'s device, after two warm-up runs."""
    shape, device = tuple(example.shape[1:]), str(example.device)
    sync = torch.cuda.synchronize if example.is_cuda else (lambda: None)
    runner = _torch_runner(model.eval(), shape, device)
    (point,) = _time_batches(runner, (1,), repeats, 2, math.inf, sync)
    return point.latency_ms


def speedups(result: BenchmarkResult, reference: str = "torch") -> dict[str, float]:
    """Best throughput of each backend relative to ``reference``."""
    base = next((b for b in result.backends if b.backend == reference and b.best), None)
    if base is None:
        return {}
    return {b.backend: b.best.throughput / base.best.throughput for b in result.backends if b.best}


def cpu_throughput(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[float, str]:
    """(best throughput, how it was reached) of ``model`` on this machine's CPU: PyTorch
    eager and onnxruntime int8 (when the model exports to QDQ), batch 1, 8 and 64, quick
    settings (5 timed runs, 2 s per batch size). Timing needs no real data: the inputs
    (also those the int8 export is verified on) are seeded uniform noise."""
    samples = torch.rand(8, *input_shape, generator=torch.Generator().manual_seed(0))
    result = benchmark_model(
        model,
        input_shape,
        samples,
        backends=("torch", "ort_int8"),
        batch_sizes=(1, 8, 64),
        repeats=5,
        time_limit_s=2.0,
    )
    best = max((b for b in result.backends if b.best is not None), key=lambda b: b.best.throughput)
    return best.best.throughput, f"measured here: {best.backend}, batch {best.best.batch}"
