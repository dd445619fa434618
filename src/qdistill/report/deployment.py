"""Report sections of the deploy step: verified exports and the deployment benchmark."""

from __future__ import annotations

from qdistill.experiment.deploy import BenchmarkRecord, ExportRecord
from qdistill.report.tables import markdown_table


def _export_row(e: ExportRecord) -> list[str]:
    report = e.report
    if report is None:
        return [e.run, e.format, e.file, "", "", "", f"no: {e.error}"]
    c = report.comparison
    if c.agreement is not None:
        match = f"agreement {100 * c.agreement:.2f}%"
    else:
        match = f"PSNR {c.psnr_db:.1f} dB" if c.psnr_db is not None else ""
    return [
        e.run,
        e.format,
        e.file,
        f"{report.file_bytes / 1024:.1f}",
        f"{c.max_abs_diff:.3g}",
        match,
        "yes"
        if report.passed
        else f"with warnings: {'; '.join(report.misses)}; {report.where_it_diverges()}",
    ]


def export_section(exports: list[ExportRecord]) -> list[str]:
    if not exports:
        return []
    headers = ["Run", "Format", "File", "KiB", "Max abs diff", "Match", "Verified"]
    return [
        "",
        "## Exports",
        "",
        "Each file was executed (onnxruntime; qonnx's executor for QONNX) on test "
        "inputs and compared with the PyTorch model before it was written; one outside "
        "the tolerance was written only when the experiment said `on_mismatch: warn`.",
        "",
        markdown_table(headers, [_export_row(e) for e in exports]),
    ]


def benchmark_section(benchmarks: list[BenchmarkRecord]) -> list[str]:
    if not benchmarks:
        return []
    rows = []
    for b in benchmarks:
        for backend in b.measurement.benchmark.backends:
            best = backend.best
            rows.append(
                [
                    b.run,
                    backend.backend,
                    f"{backend.latency_b1_ms:.3f}" if backend.latency_b1_ms else "",
                    f"{best.throughput:,.0f}" if best else "",
                    str(best.batch) if best else "",
                    f"{backend.energy_mj:.3g}" if backend.energy_mj else "",
                    backend.unavailable or "",
                ]
            )
    headers = [
        "Run",
        "Backend",
        "Latency b=1 (ms)",
        "Best img/s",
        "at batch",
        "Energy (mJ/img, est.)",
        "Note",
    ]
    return [
        "",
        "## Deployment benchmark",
        "",
        markdown_table(headers, rows),
        "",
        *benchmarks[0].measurement.benchmark.notes,
        "Per-run details and plots: `benchmarks/<run>/benchmark.md`.",
    ]
