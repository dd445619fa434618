"""Super-resolution parts of the report: quality table with the bicubic baseline, the
picture grid of one held-out image, and the sensitivity / allocated-plan tables."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from qdistill.quant.spec import parse_layer_spec
from qdistill.report.summary import Stat, SummaryRow

SR_HEADERS = [
    "Run",
    "Model",
    "Method",
    "Bits",
    "alpha",
    "Seeds",
    "PSNR-Y (dB)",
    "SSIM-Y",
    "PSNR-RGB (dB)",
    "SSIM-RGB",
    "HaarPSI",
    "LPIPS",
    "Δ PSNR-Y vs teacher",
    "Integer model PSNR-Y",
    "Size (KiB)",
    "Compression",
]
_QUALITY = ["test_psnr_y", "test_ssim_y", "test_psnr_rgb", "test_ssim_rgb", "test_haarpsi"]
_DIGITS = {"test_psnr_y": 2, "test_psnr_rgb": 2}


def _cell(stat: Stat | None, key: str) -> str:
    return stat.format(_DIGITS.get(key, 4)) if stat else ""


def sr_columns(row: SummaryRow, teacher: SummaryRow | None) -> list[str]:
    psnr = row.metrics.get("test_psnr_y")
    delta = ""
    if psnr and teacher and row is not teacher and "test_psnr_y" in teacher.metrics:
        delta = f"{psnr.mean - teacher.metrics['test_psnr_y'].mean:+.2f}"
    return [
        row.name,
        row.model,
        row.method,
        row.bits,
        "" if row.alpha is None else f"{row.alpha:g}",
        str(len(row.seeds)),
        *[_cell(row.metrics.get(k), k) for k in _QUALITY],
        _cell(row.metrics.get("test_lpips"), "test_lpips") or "n/a",
        delta,
        _cell(row.metrics.get("test_psnr_y_integer"), "test_psnr_y"),
        f"{row.size_bytes / 1024:.1f}",
        f"{row.compression:.1f}x" if math.isfinite(row.compression) else "",
    ]


def bicubic_columns(rows: list[SummaryRow]) -> list[str] | None:
    source = next((r for r in rows if "bicubic_test_psnr_y" in r.metrics), None)
    if source is None:
        return None
    cells = [_cell(source.metrics.get(f"bicubic_{k}"), k) for k in _QUALITY]
    lpips = source.metrics.get("bicubic_test_lpips")
    return ["bicubic", "", "interpolation", "", "", "", *cells, _cell(lpips, "") or "n/a"] + [
        ""
    ] * 4


def lpips_note(records: list[dict[str, Any]]) -> str:
    reason = next((r.get("lpips") for r in records if r.get("lpips")), None)
    if any("test_lpips" in r.get("metrics", {}) for r in records):
        return f"LPIPS (AlexNet, lower is better) from {reason}."
    return f"LPIPS: unavailable ({reason})." if reason else ""


def picture_grid(out_dir: Path, records: list[dict[str, Any]], max_runs: int = 6) -> Path | None:
    """LR | bicubic | SR of up to ``max_runs`` runs (first seed) | HR, for one test crop."""
    images = out_dir / "images"
    if not (images / "hr.png").is_file():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    seed = min(r["seed"] for r in records)
    panels = [("LR (input)", images / "lr.png"), ("bicubic", images / "bicubic.png")]
    for record in [r for r in records if r["seed"] == seed][:max_runs]:
        path = images / f"{record['name']}-s{seed}.png"
        if path.is_file():
            label = f"{record['name']}\n{record['metrics'].get('test_psnr_y', math.nan):.2f} dB"
            panels.append((label, path))
    panels.append(("HR (ground truth)", images / "hr.png"))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.6))
    for ax, (label, path) in zip(axes, panels, strict=True):
        image = Image.open(path)
        ax.imshow(image, cmap="gray" if image.mode == "L" else None, vmin=0, vmax=255)
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    path = out_dir / "picture_grid.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _spec_label(spec: Any) -> str:
    """``w4a4``, with ``(learned ranges)`` when the spec learns its ranges."""
    if spec is None:
        return ""
    parsed = parse_layer_spec(spec)
    if parsed is None:
        return "float"
    learned = any(q is not None and q.range == "learned" for q in (parsed.weight, parsed.act))
    return parsed.short + (" (learned ranges)" if learned else "")


def sensitivity_sections(records: list[dict[str, Any]]) -> list[str]:
    """One table per allocated run (first seed): each unit's drop and the chosen plan."""
    from qdistill.report.markdown import markdown_table

    lines: list[str] = []
    shown: set[str] = set()
    for record in records:
        report = record.get("sensitivity")
        if not report or record["name"] in shown:
            continue
        shown.add(record["name"])
        plan = record.get("plan") or {}
        levels = report.get("levels") or {report["probe"]: report["units"]}
        drops = {level: {u["unit"]: u["drop"] for u in units} for level, units in levels.items()}
        rows = [
            [
                u["unit"],
                str(u["layers"]),
                f"{u['params']:,}",
                *(f"{drops[level][u['unit']]:+.3f}" for level in levels),
                _spec_label(plan.get(u["unit"], plan.get("*"))),
            ]
            for u in report["units"]
        ]
        headers = ["Unit", "Layers", "Params", *(f"Drop at {lv}" for lv in levels), "Allocated"]
        lines += [
            "",
            f"## Sensitivity and allocated plan: {record['name']} (seed {record['seed']})",
            "",
            f"Each unit quantized alone (PTQ), the rest float; drop of {report['metric']} "
            f"from the float model's {report['float_score']:.3f}. Budget "
            f"{report['budget_bytes']:,} bytes; the plan's size is "
            f"{record['size_bytes']:,} bytes.",
            "",
            markdown_table(headers, rows),
        ]
    return lines
