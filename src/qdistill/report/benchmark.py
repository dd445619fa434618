"""Benchmark report: per-backend latency/throughput/energy, per-layer cost, plots."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from qdistill.hardware.benchmark import BenchmarkResult, speedups
from qdistill.hardware.deployment import DeploymentMeasurement
from qdistill.paths import write_text
from qdistill.quant import LayerCost, ModelSize, total_bops, total_macs
from qdistill.report.plots import plot_benchmark
from qdistill.report.tables import markdown_table

HEADERS = [
    "Backend",
    "Latency b=1 (ms)",
    "Best throughput (img/s)",
    "at batch",
    "vs torch",
    "Energy (mJ/img, est.)",
    "Note",
]


def backend_rows(result: BenchmarkResult) -> list[list[str]]:
    ratios = speedups(result)
    rows = []
    for b in result.backends:
        best = b.best
        rows.append(
            [
                b.backend,
                f"{b.latency_b1_ms:.3f}" if b.latency_b1_ms is not None else "",
                f"{best.throughput:,.0f}" if best else "",
                str(best.batch) if best else "",
                f"{ratios[b.backend]:.2f}x" if b.backend in ratios else "",
                f"{b.energy_mj:.3g}" if b.energy_mj is not None else "",
                b.unavailable or "",
            ]
        )
    return rows


def benchmark_table(result: BenchmarkResult) -> Table:
    table = Table(title=f"Benchmark, input {list(result.input_shape)}, {result.threads} threads")
    for header in HEADERS:
        table.add_column(header, justify="left" if header in ("Backend", "Note") else "right")
    for row in backend_rows(result):
        table.add_row(*row)
    return table


def cost_rows(costs: list[LayerCost], size: ModelSize) -> list[list[str]]:
    bytes_by_layer = {layer.name: layer.bytes for layer in size.layers}
    return [
        [
            c.name,
            c.kind,
            f"{c.macs:,}",
            str(c.weight_bits),
            str(c.act_bits),
            f"{c.bops:,}",
            f"{bytes_by_layer.get(c.name, 0):,}",
        ]
        for c in costs
    ]


def write_benchmark_report(
    measurement: DeploymentMeasurement, out_dir: str | Path, title: str
) -> Path:
    """benchmark.md and the latency/throughput plots in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result, costs, size = measurement.benchmark, measurement.layers, measurement.size
    plots = plot_benchmark(result, out_dir)
    lines = [
        f"# Benchmark: {title}",
        "",
        f"Input {list(result.input_shape)}, {result.threads} threads, "
        f"{result.repeats} timed runs per batch size (median; p10/p90 in benchmark.json).",
        "",
        markdown_table(HEADERS, backend_rows(result)),
        "",
        *result.notes,
        "",
    ]
    for plot in plots:
        lines += [f"![{plot.stem}]({plot.name})", ""]
    lines += [
        "## Cost per layer (per image)",
        "",
        markdown_table(
            ["Layer", "Type", "MACs", "W bits", "A bits", "BOPs", "Bytes"], cost_rows(costs, size)
        ),
        "",
        f"Total: {total_macs(costs):,} MACs, {total_bops(costs):,} BOPs, "
        f"{size.total_bytes:,} bytes ({size.compression:.1f}x smaller than float32).",
        "",
    ]
    return write_text(out_dir / "benchmark.md", "\n".join(lines))
