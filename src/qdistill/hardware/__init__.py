"""Deployment measurements: latency and throughput versus batch size per backend, and
energy estimates from an editable power table."""

from qdistill.hardware.benchmark import BenchmarkResult, benchmark_model, speedups
from qdistill.hardware.power import energy_per_image_j, power_table

__all__ = ["BenchmarkResult", "benchmark_model", "energy_per_image_j", "power_table", "speedups"]
