"""The report's hardware section: each estimated run's quality beside its FPGA cost at
every target, quality versus LUTs with the Pareto front, and W x A heat maps when the
runs cover a bit-width grid."""

from __future__ import annotations

from pathlib import Path

from qdistill.experiment.hardware import HardwareRecord
from qdistill.experiment.record import RunRecord
from qdistill.report.hardware import price_notes
from qdistill.report.plots import pareto_front, plot_bits_heatmap, plot_quality_vs_cost
from qdistill.report.summary import SummaryRow, summarize
from qdistill.report.tables import markdown_table
from qdistill.tasks import Metric

HEADERS = ["LUT", "FF", "BRAM18", "DSP", "FPS", "Latency (ms)", "Cheapest board", "Cost / 1k FPS"]
HEATMAPS = (("lut", "LUT"), ("ff", "flip-flops"), ("bram18", "BRAM18"))


def _row(row: SummaryRow | None, record: HardwareRecord, metric: Metric) -> list[str]:
    quality = row.metrics.get(metric.key) if row else None
    cells = [record.run, row.bits if row else "", quality.format(metric.digits) if quality else ""]
    if record.report is None:
        return [*cells, f"no estimate: {record.error}", *[""] * len(HEADERS)]  # + "Fits on"
    report, estimate = record.report, record.report.estimate
    total = estimate.total.to_dict()
    cheapest = report.cheapest
    fitting = [f.board for f in report.boards if f.fits]
    return [
        *cells,
        *(f"{total[k]:,}" for k in ("lut", "ff", "bram18", "dsp")),
        f"{estimate.fps:,.0f}" + ("" if estimate.target_met else " (misses)"),
        f"{estimate.latency_ms:.3f}",
        cheapest.board if cheapest else "none fits",
        f"{report.currency} {cheapest.cost_per_kfps:,.2f}" if cheapest else "",
        ", ".join(fitting) or "none",
    ]


def _quality_points(
    rows: dict[str, SummaryRow], records: list[HardwareRecord], metric: Metric
) -> dict[str, tuple[float, float]]:
    points = {}
    for record in records:
        row = rows.get(record.run)
        if record.report is not None and row is not None and metric.key in row.metrics:
            points[record.run] = (record.report.estimate.total.lut, row.metrics[metric.key].mean)
    return points


def _heatmaps(
    rows: dict[str, SummaryRow], records: list[HardwareRecord], metric: Metric, out_dir: Path
) -> list[str]:
    """Heat maps over the W x A grid (when at least 2 x 2 cells have one run each)."""
    cells: dict[tuple[int, int], tuple[SummaryRow, HardwareRecord]] = {}
    for record in records:
        row = rows.get(record.run)
        if record.report is not None and row is not None and row.w_bits and row.a_bits:
            cells.setdefault((row.w_bits, row.a_bits), (row, record))
    if len({w for w, _ in cells}) < 2 or len({a for _, a in cells}) < 2:
        return []
    lines = ["", "Over weight x activation bits:", ""]
    if all(metric.key in row.metrics for row, _ in cells.values()):
        quality = {k: row.metrics[metric.key].mean for k, (row, _) in cells.items()}
        plot = plot_bits_heatmap(quality, out_dir / "hw_quality.png", metric.label, metric.digits)
        lines.append(f"![{metric.label}]({plot.name})")
    for key, label in HEATMAPS:
        values = {k: rec.report.estimate.total.to_dict()[key] for k, (_, rec) in cells.items()}
        plot = plot_bits_heatmap(values, out_dir / f"hw_{key}.png", f"{label} (estimate)")
        lines.append(f"![{label}]({plot.name})")
    return lines


def _processor_rows(records: list[HardwareRecord]) -> list[list[str]]:
    """Each processor at the design's throughput beside the cheapest board that fits."""
    rows = []
    for record in records:
        if record.report is None:
            continue
        report, cheapest = record.report, record.report.cheapest
        for p in report.processors:
            rows.append(
                [
                    record.run,
                    p.name,
                    f"{p.fps:,.1f}",
                    f"{report.estimate.fps:,.1f}",
                    str(p.units_to_match),
                    f"{report.currency} {p.cost_to_match:,.0f}" if p.cost_to_match else "no price",
                    f"{cheapest.board}, {report.currency} {cheapest.price:,.0f}"
                    if cheapest
                    else "",
                    f"{p.energy_mj:.3g} / {cheapest.energy_mj:.3g}" if cheapest else "",
                ]
            )
    return rows


PROCESSOR_HEADERS = [
    "Run", "Processor", "Its FPS", "FPGA FPS", "Units to match", "Cost to match",
    "Cheapest board", "Energy mJ/img (processor / FPGA)",
]  # fmt: skip


def _side_by_side(hardware: list[HardwareRecord], targets: list[str]) -> list[str]:
    """Runs estimated at several targets: FPS, LUTs and fit on the first shown board."""
    cells: dict[str, dict[str, HardwareRecord]] = {}
    for record in hardware:
        if record.report is not None:
            cells.setdefault(record.run, {})[record.target] = record
    runs = [run for run, by_target in cells.items() if len(by_target) > 1]
    if len(targets) < 2 or not runs:
        return []
    board = next(iter(cells[runs[0]].values())).report.boards[0].board

    def cell(record: HardwareRecord | None) -> str:
        if record is None:
            return ""
        estimate, fit = record.report.estimate, record.report.boards[0]
        mark = "fits" if fit.fits else "too big"
        return f"{estimate.fps:,.0f} FPS, {estimate.total.lut:,.0f} LUT ({mark})"

    table = [[run, *(cell(cells[run].get(t)) for t in targets)] for run in runs]
    return [
        "",
        f"### Targets side by side (fit on {board})",
        "",
        markdown_table(["Run", *targets], table),
    ]


def hardware_section(
    records: list[RunRecord], hardware: list[HardwareRecord], metric: Metric, out_dir: Path
) -> list[str]:
    if not hardware:
        return []
    rows = {row.name: row for row in summarize(records)}
    first = hardware[0].report
    lines = [
        "",
        "## Hardware: FPGA dataflow estimates",
        "",
        "Each run as a FINN-style dataflow accelerator (one streaming unit per layer; "
        "cycles, LUT and BRAM from FINN's own analytic estimators, agreeing with "
        "finn-plus on its reference designs; flip-flops are qdistill's estimate, see "
        "docs/hardware.md). Estimated from the first seed's checkpoint; quality is the "
        "mean over seeds. 'Fits on' lists the catalogue boards whose LUT, FF, BRAM, URAM "
        "and DSP all suffice.",
    ]
    targets = list(dict.fromkeys(r.target for r in hardware))
    headers = ["Run", "Bits", metric.label, *HEADERS, "Fits on"]
    for index, target in enumerate(targets):
        chosen = [r for r in hardware if r.target == target]
        table = [_row(rows.get(r.run), r, metric) for r in chosen]
        lines += ["", f"### {target}", "", markdown_table(headers, table)]
        points = _quality_points(rows, chosen, metric)
        if len(points) >= 2:
            name = f"hw_quality_vs_lut_{index}.png"
            plot_quality_vs_cost(points, out_dir / name, "LUTs (estimate)", metric)
            front = [run for run, p in points.items() if p in pareto_front(list(points.values()))]
            lines += ["", f"![quality vs LUTs]({name})", "", f"Pareto front: {', '.join(front)}"]
        missed = [r for r in chosen if r.report and not r.report.estimate.target_met]
        if missed:
            lines += [
                "",
                "Targets missed (the fastest folding and the unit that limits it): "
                + "; ".join(
                    f"{r.run}: {r.report.estimate.max_fps:,.0f} FPS, "
                    f"{r.report.estimate.max_fps_bottleneck}"
                    for r in missed
                ),
            ]
        processor_rows = _processor_rows(chosen)
        if processor_rows:
            lines += ["", markdown_table(PROCESSOR_HEADERS, processor_rows)]
        if index == 0:
            lines += _heatmaps(rows, chosen, metric, out_dir)
    lines += _side_by_side(hardware, targets)
    if first is not None:
        lines += ["", f"Prices ({first.currency}): " + "; ".join(price_notes(first)) + "."]
    return lines
