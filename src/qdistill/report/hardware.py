"""Dataflow estimate and economics as tables: per unit, per board, per processor."""

from __future__ import annotations

from rich.table import Table

from qdistill.hardware.economics import CostReport
from qdistill.hardware.estimate import DataflowEstimate

UNIT_HEADERS = ["Unit", "Kind", "PE", "SIMD", "Cycles", "LUT", "FF", "BRAM18", "URAM", "DSP"]
BOARD_HEADERS = [
    "Board",
    "Fits",
    "LUT %",
    "FF %",
    "BRAM %",
    "DSP %",
    "Price",
    "Cost / 1k FPS",
    "Energy (mJ/img)",
]
PROCESSOR_HEADERS = [
    "Processor",
    "FPS",
    "How",
    "Units to match",
    "Cost to match",
    "Cost / 1k FPS",
    "Energy (mJ/img)",
]


def unit_rows(estimate: DataflowEstimate) -> list[list[str]]:
    rows = [
        [
            u.name,
            u.kind,
            str(u.pe),
            str(u.simd),
            f"{u.cycles:,}",
            *_resource_cells(u.resources.to_dict()),
        ]
        for u in estimate.units
    ]
    rows.append(
        [
            "total",
            "",
            "",
            "",
            f"{estimate.max_cycles:,} max",
            *_resource_cells(estimate.total.to_dict()),
        ]
    )
    return rows


def _resource_cells(resources: dict) -> list[str]:
    return [f"{resources[k]:,}" for k in ("lut", "ff", "bram18", "uram", "dsp")]


def summary_line(estimate: DataflowEstimate) -> str:
    target = f" (target {estimate.target_fps:,.0f})" if estimate.target_fps else ""
    return (
        f"{estimate.fps:,.0f} FPS{target} at {estimate.clock_mhz:g} MHz, latency "
        f"{estimate.latency_ms:.3f} ms; slowest unit {estimate.bottleneck}; "
        f"at most {estimate.max_fps:,.0f} FPS (limited by {estimate.max_fps_bottleneck})"
    )


def _money(value: float | None, currency: str) -> str:
    return "" if value is None else f"{currency} {value:,.2f}"


def board_rows(report: CostReport) -> list[list[str]]:
    cheapest = report.cheapest
    rows = []
    for fit in report.boards:
        mark = " (cheapest)" if cheapest is not None and fit.board == cheapest.board else ""
        rows.append(
            [
                fit.board + mark,
                "yes" if fit.fits else f"no ({fit.limiting})",
                *(f"{100 * fit.utilisation[k]:.1f}" for k in ("lut", "ff", "bram18", "dsp")),
                _money(fit.price, report.currency),
                _money(fit.cost_per_kfps, report.currency),
                f"{fit.energy_mj:.3g}" if fit.energy_mj is not None else "",
            ]
        )
    return rows


def processor_rows(report: CostReport) -> list[list[str]]:
    return [
        [
            p.name,
            f"{p.fps:,.0f}",
            p.source,
            str(p.units_to_match),
            _money(p.cost_to_match, report.currency),
            _money(p.cost_per_kfps, report.currency),
            f"{p.energy_mj:.3g}",
        ]
        for p in report.processors
    ]


def price_notes(report: CostReport) -> list[str]:
    """Where every price came from, and when."""
    return [f"{fit.board}: {fit.price_label}" for fit in report.boards] + [
        f"{p.name}: {p.price_label}" for p in report.processors
    ]


def rich_table(title: str, headers: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title)
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index == 0 or header == "How" else "right")
    for row in rows:
        table.add_row(*row)
    return table


HLS4ML_HEADERS = [
    "Layer",
    "n_in",
    "n_out",
    "Reuse",
    "Multipliers",
    "DSP",
    "LUT",
    "BRAM18",
    "Cycles",
]
HLS4ML_FIELDS = ("n_in", "n_out", "reuse_factor", "multipliers", "dsp", "lut", "bram18", "cycles")


def hls4ml_rows(report: CostReport) -> list[list[str]]:
    return [
        [layer.layer, *(f"{getattr(layer, k):,}" for k in HLS4ML_FIELDS)] for layer in report.hls4ml
    ]


def cost_tables(report: CostReport) -> list[Table]:
    tables = [
        rich_table("Dataflow units", UNIT_HEADERS, unit_rows(report.estimate)),
        rich_table(
            f"Boards ({report.currency}, prices dated in the catalogue)",
            BOARD_HEADERS,
            board_rows(report),
        ),
    ]
    if report.processors:
        tables.append(
            rich_table("Processors at equal throughput", PROCESSOR_HEADERS, processor_rows(report))
        )
    if report.hls4ml:
        title = "hls4ml view (io_stream, Resource strategy)"
        tables.append(rich_table(title, HLS4ML_HEADERS, hls4ml_rows(report)))
    return tables
