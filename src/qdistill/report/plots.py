"""Plots for reports (matplotlib, written as PNG files)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from qdistill.report.comparisons import Grid, sweeps_kd
from qdistill.report.summary import SummaryRow
from qdistill.tasks import Baseline, Metric, Panel


def _bits_label(row: SummaryRow) -> str:
    w = "32" if row.w_bits in (None, 32) else str(row.w_bits)
    a = "32" if row.a_bits in (None, 32) else str(row.a_bits)
    return f"W{w}A{a}"


def plot_quality_vs_bits(
    rows: list[SummaryRow], path: Path, metric: Metric, baselines: Sequence[Baseline] = ()
) -> Path | None:
    """Metric of each student group across its bit settings; the teacher and the task's
    baselines (e.g. bicubic upscaling) as lines.

    Returns None when no quantized group has a uniform bit width to plot.
    """
    points = [
        r
        for r in rows
        if r.w_bits is not None
        and metric.key in r.metrics
        and r.name != "teacher"
        and not sweeps_kd(rows, r.group)  # those get an alpha x T grid instead
    ]
    if not any(r.quantized for r in points):
        return None
    labels = sorted(
        {_bits_label(r) for r in points}, key=lambda lab: tuple(-int(x) for x in lab[1:].split("A"))
    )
    position = {label: i for i, label in enumerate(labels)}
    fig, ax = plt.subplots(figsize=(7, 4.2))
    groups: dict[str, list[SummaryRow]] = {}
    for row in points:
        groups.setdefault(row.group, []).append(row)
    for group, members in groups.items():
        members.sort(key=lambda r: position[_bits_label(r)])
        xs = [position[_bits_label(r)] for r in members]
        ys = [r.metrics[metric.key].mean for r in members]
        errs = [r.metrics[metric.key].se or 0.0 for r in members]
        method = members[0].method
        label = group if group == method else f"{group} ({method})"
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=label)
    teacher = next((r for r in rows if r.name == "teacher" and metric.key in r.metrics), None)
    if teacher is not None:
        ax.axhline(
            teacher.metrics[metric.key].mean,
            color="gray",
            linestyle="--",
            label=f"float teacher ({teacher.model})",
        )
    for baseline in baselines:
        key = baseline.prefix + metric.key
        source = next((r for r in rows if key in r.metrics), None)
        if source is not None:
            ax.axhline(source.metrics[key].mean, color="black", linestyle=":", label=baseline.name)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("bit width (weights / activations)")
    ax.set_ylabel(metric.label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_grid(grid: Grid, path: Path, metric: Metric) -> Path:
    """Heat-map of a metric over alpha (rows) x temperature (columns)."""
    import numpy as np

    values = np.array(
        [[cell.mean if cell else np.nan for cell in row] for row in grid.values], dtype=float
    )
    size = (1.2 + 1.1 * len(grid.temperatures), 1 + 0.5 * len(grid.alphas))
    fig, ax = plt.subplots(figsize=size)
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(grid.temperatures)), [f"{t:g}" for t in grid.temperatures])
    ax.set_yticks(range(len(grid.alphas)), [f"{a:g}" for a in grid.alphas])
    ax.set_xlabel("temperature T")
    ax.set_ylabel("alpha")
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", color="white", fontsize=8)
    ax.set_title(f"{grid.group} {grid.bits}: {metric.label}")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_benchmark(result, out_dir: Path) -> list[Path]:
    """Latency and throughput versus batch size, one line per backend (log-log)."""
    paths = []
    for key, label, name in (
        ("latency_ms", "latency per batch (ms)", "latency_vs_batch"),
        ("throughput", "throughput (images/s)", "throughput_vs_batch"),
    ):
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for backend in result.backends:
            if backend.points:
                ax.plot(
                    [p.batch for p in backend.points],
                    [getattr(p, key) for p in backend.points],
                    marker="o",
                    label=backend.backend,
                )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_picture_grid(panels: list[Panel], path: Path) -> Path:
    """The panels side by side, each with its label."""
    from PIL import Image

    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.6))
    for ax, panel in zip(axes, panels, strict=True):
        image = Image.open(panel.path)
        ax.imshow(image, cmap="gray" if image.mode == "L" else None, vmin=0, vmax=255)
        ax.set_title(panel.label, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both cost (x, lower is better) and quality
    (y, higher is better), sorted by cost."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def plot_quality_vs_cost(
    points: dict[str, tuple[float, float]], path: Path, x_label: str, metric: Metric
) -> Path:
    """Quality (y) versus a cost (x; log scale when it spans 10x) per run, the Pareto
    front marked."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs, ys = zip(*points.values(), strict=True)
    ax.scatter(xs, ys, color="tab:blue", zorder=3)
    for name, (x, y) in points.items():
        ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = pareto_front(list(points.values()))
    ax.step(*zip(*front, strict=True), where="post", color="tab:red", label="Pareto front")
    if max(xs) > 10 * min(xs) > 0:
        ax.set_xscale("log")
        x_label += ", log scale"
    ax.set_xlabel(x_label)
    ax.set_ylabel(metric.label)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_bits_heatmap(
    values: dict[tuple[int, int], float], path: Path, title: str, digits: int = 0
) -> Path:
    """A value over weight bits (rows) x activation bits (columns)."""
    import numpy as np

    w_bits = sorted({w for w, _ in values})
    a_bits = sorted({a for _, a in values})
    grid = np.array([[values.get((w, a), np.nan) for a in a_bits] for w in w_bits], dtype=float)
    fig, ax = plt.subplots(figsize=(1.5 + 0.7 * len(a_bits), 1.2 + 0.55 * len(w_bits)))
    image = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(len(a_bits)), [str(a) for a in a_bits])
    ax.set_yticks(range(len(w_bits)), [str(w) for w in w_bits])
    ax.set_xlabel("activation bits")
    ax.set_ylabel("weight bits")
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            if np.isfinite(value):
                text = f"{value:,.{digits}f}" if value < 1e5 else f"{value / 1e3:,.0f}k"
                ax.text(j, i, text, ha="center", va="center", color="white", fontsize=7)
    ax.set_title(title)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
