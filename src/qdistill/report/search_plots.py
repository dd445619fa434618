"""Plots of a student search: the front of each generation, and hypervolume curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

Point = tuple[float, float]


def plot_fronts(
    points: list[tuple[float, float, int]],
    fronts: list[list[Point]],
    baseline: Point,
    chosen: Point | None,
    labels: tuple[str, str],
    path: Path,
) -> Path:
    """Every measured candidate (x, y, generation), each generation's front as a step line
    (later ones darker), the baseline and the chosen candidate marked."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs, ys, generations = zip(*points, strict=True)
    scatter = ax.scatter(xs, ys, c=generations, cmap="viridis", s=18, zorder=3)
    fig.colorbar(scatter, ax=ax, label="generation measured")
    for index, front in enumerate(fronts, start=1):
        if not front:  # nothing feasible yet
            continue
        line = sorted(front)
        shade = 0.25 + 0.75 * index / len(fronts)
        ax.step(*zip(*line, strict=True), where="post", color=(0.8, 0.1, 0.1, shade), lw=1)
    ax.scatter(*baseline, marker="*", s=220, color="black", zorder=4, label="baseline")
    if chosen is not None:
        ax.scatter(
            *chosen,
            marker="o",
            s=140,
            facecolors="none",
            edgecolors="tab:red",
            lw=2,
            zorder=4,
            label="chosen",
        )
    if max(xs) > 10 * min(xs) > 0:
        ax.set_xscale("log")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_hypervolume(curves: dict[str, list[float]], path: Path) -> Path:
    """Hypervolume per generation, one line per search; searches whose labels share a
    first word (an algorithm: "nsga2 seed 0", "nsga2 seed 1") share a colour."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    groups = list(dict.fromkeys(label.split()[0] for label in curves))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for label, values in curves.items():
        colour = colours[groups.index(label.split()[0]) % len(colours)]
        ax.plot(range(1, len(values) + 1), values, marker="o", label=label, color=colour)
    ax.set_xlabel("generation")
    ax.set_ylabel("hypervolume (normalised)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
