"""The report of a student search (``search.md``): phase 1, the Pareto front of every
generation against the baseline, hypervolume per generation, the candidates that
dominate the baseline, and the chosen trade-off after full training."""

from __future__ import annotations

from pathlib import Path

from qdistill.paths import write_text
from qdistill.report.search_plots import plot_fronts, plot_hypervolume
from qdistill.report.tables import markdown_table
from qdistill.search.compare import searches_in_folder
from qdistill.search.driver import SearchOutcome, dominating_baseline
from qdistill.search.ledger import Measured

SHOWN = 12  # front rows in the table
REPORTED = ("test_error", "test_acc", "test_psnr_y", "size_bytes", "params")


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def describe(measured: Measured, same: frozenset[str] = frozenset()) -> str:
    """A candidate's architecture and recipe values, e.g. ``conv=[16, 32] fc=[64]``,
    without the keys in ``same``."""
    items = {**measured.model_options, **measured.recipe_values}
    return " ".join(f"{k}={v}" for k, v in items.items() if k not in same)


def shared_settings(outcome: SearchOutcome) -> frozenset[str]:
    """The settings every measured candidate has alike (a fixed model option), which
    tables leave out."""
    items = [
        {**m.model_options, **m.recipe_values}
        for m in [*outcome.phase1, outcome.baseline, *outcome.evaluated]
    ]
    return frozenset(k for k in items[0] if all(i.get(k) == items[0][k] for i in items))


def _candidate_table(outcome: SearchOutcome, items: list[Measured]) -> str:
    names = [o.name for o in outcome.objectives]
    extra = [k for k in REPORTED if k not in names and all(k in m.values for m in items)]
    headers = ["Candidate", "Architecture and recipe", *(o.label for o in outcome.objectives)]
    rows = []
    same = shared_settings(outcome)
    for m in items:
        tag = " (baseline)" if m.name == outcome.baseline.name else ""
        tag += " (chosen)" if outcome.chosen and m.name == outcome.chosen.name else ""
        values = [_fmt(m.values[n]) for n in [*names, *extra]]
        rows.append([m.name + tag, describe(m, same), *values])
    return markdown_table([*headers, *extra], rows)


def _phase1_section(outcome: SearchOutcome) -> list[str]:
    if not outcome.phase1:
        return []
    choice = ", ".join(f"{k}={v}" for k, v in outcome.ledger.phase1_choice.items())
    return [
        "",
        "## Phase 1: the baseline's recipe grid",
        "",
        f"Carried into phase 2: {choice} (the best validation score).",
        "",
        _candidate_table(outcome, outcome.phase1),
    ]


def _point(outcome: SearchOutcome, values: dict[str, float]) -> str:
    return ", ".join(
        f"{o.name} {_fmt(o.sign * v)}" for o, v in zip(outcome.objectives, values, strict=True)
    )


def _generations_section(outcome: SearchOutcome, out_dir: Path) -> list[str]:
    generations = outcome.ledger.generations
    rows = [
        [
            *(str(v) for v in (g.index, len(g.asked), g.new, len(g.front))),
            f"{g.hypervolume:.4f}",
            f"{g.beyond_baseline:.4f}",
        ]
        for g in generations
    ]
    curves = {
        f"whole range ({outcome.label})": [g.hypervolume for g in generations],
        f"beyond the baseline ({outcome.label})": [g.beyond_baseline for g in generations],
    }
    curve = plot_hypervolume(curves, out_dir / "search_hypervolume.png")
    controls = [g.baseline_latency_ms for g in generations if g.baseline_latency_ms is not None]
    drift = []
    if controls:
        low, high = min(controls), max(controls)
        drift = [
            "",
            f"Timing: each generation's new candidates were timed in turns with the baseline, "
            f"whose latency then read {_fmt(low)}-{_fmt(high)} ms against "
            f"{_fmt(outcome.baseline.values['latency_ms'])} ms when it was first measured; "
            "their latencies and throughputs are scaled by that drift, so that candidates of "
            "different generations compare. Differences of a few percent are within noise.",
        ]
    return [
        "",
        "## Generations",
        "",
        "Front: the feasible candidates (the baseline included) that nothing measured by then "
        "dominates. Hypervolume: the share of a box the front dominates, each objective "
        f"scaled between the best value measured ({_point(outcome, outcome.ideal)}) and "
        f"either the worst plus 10% ({_point(outcome, outcome.nadir)}; whole range) or "
        "the baseline's (beyond the baseline: 0 until a candidate dominates it).",
        "",
        markdown_table(
            ["Generation", "Asked", "New", "Front", "Hypervolume", "Beyond the baseline"], rows
        ),
        "",
        f"![hypervolume per generation]({curve.name})",
        *drift,
    ]


def _front_plots(outcome: SearchOutcome, out_dir: Path) -> list[Path]:
    """The first objective against each other one."""
    by_name = outcome.by_name
    first = outcome.objectives[0]
    born = {}
    for g in outcome.ledger.generations:
        for name in g.asked:
            born.setdefault(name, g.index)
    plots = []
    for other in outcome.objectives[1:]:

        def xy(m: Measured, other=other) -> tuple[float, float]:
            return m.values[other.name], m.values[first.name]

        points = [(*xy(m), born.get(m.name, 0)) for m in outcome.evaluated]
        fronts = [[xy(by_name[n]) for n in g.front] for g in outcome.ledger.generations]
        chosen = xy(outcome.chosen) if outcome.chosen else None
        path = out_dir / f"search_front_{first.name}_vs_{other.name}.png"
        labels = (other.label, first.label)
        plots.append(plot_fronts(points, fronts, xy(outcome.baseline), chosen, labels, path))
    return plots


def _front_section(outcome: SearchOutcome, out_dir: Path) -> list[str]:
    generations = outcome.ledger.generations
    by_name = outcome.by_name
    front = [by_name[n] for n in (generations[-1].front if generations else ())]
    front.sort(key=lambda m: outcome.scores(m)[0])
    shown = front[:SHOWN] + ([] if outcome.baseline in front else [outcome.baseline])
    better = dominating_baseline(outcome)
    constraints = ", ".join(c.text for c in outcome.constraints)
    lines = [
        "",
        "## Final front",
        "",
        f"{len(better)} of {len(outcome.evaluated)} measured candidates dominate the baseline "
        f"(no worse in any of {', '.join(o.name for o in outcome.objectives)}, better in one"
        + (f"; meeting {constraints}" if constraints else "")
        + ").",
        "",
        _candidate_table(outcome, shown),
    ]
    for plot in _front_plots(outcome, out_dir):
        lines += ["", f"![front per generation]({plot.name})"]
    return lines


def _comparison_section(outcome: SearchOutcome, out_dir: Path) -> list[str]:
    """The other searches of this folder (seeds, algorithms) beside this one."""
    searches = searches_in_folder(outcome)
    if len(searches) < 2:
        return []
    rows = [
        [
            s.label,
            str(sum(len(g.asked) for g in s.ledger.generations)),
            f"{s.ledger.generations[-1].hypervolume:.4f}" if s.ledger.generations else "",
            f"{s.ledger.generations[-1].beyond_baseline:.4f}" if s.ledger.generations else "",
            str(len(dominating_baseline(s))),
        ]
        for s in searches
    ]
    curves = {s.label: [g.beyond_baseline for g in s.ledger.generations] for s in searches}
    plot = plot_hypervolume(curves, out_dir / "search_comparison.png")
    return [
        "",
        "## The searches of this folder",
        "",
        "Every search saved here, scored between the same bounds (the best and the worst plus "
        "10% of all their candidates), so their hypervolumes compare; the curves are the "
        "hypervolume beyond the baseline.",
        "",
        markdown_table(
            ["Search", "Evaluations", "Hypervolume", "Beyond the baseline", "Dominate it"],
            rows,
        ),
        "",
        f"![hypervolume beyond the baseline per search]({plot.name})",
    ]


def _final_section(outcome: SearchOutcome) -> list[str]:
    if outcome.unmet:
        return ["", "## No candidate meets the constraints", "", outcome.unmet + "."]
    if outcome.final is None or outcome.chosen is None:
        return []
    rows = []
    for record in outcome.final.records:
        if record.group in ("baseline", "chosen"):
            tests = sorted(
                (k, v) for k, v in record.metrics.items() if k.startswith("test_") and "@" not in k
            )
            metrics = ", ".join(f"{k} {_fmt(v)}" for k, v in tests)
            row = [record.name, str(record.seed), record.recipe, f"{record.params:,}", metrics]
            rows.append(row)
    return [
        "",
        "## The chosen trade-off, fully trained",
        "",
        f"Chosen: {outcome.chosen.name} ({describe(outcome.chosen)}), trained with the "
        "search's final settings next to the baseline; their exports, benchmarks and "
        "estimates are in report.md.",
        "",
        markdown_table(["Run", "Seed", "Recipe", "Params", "Test metrics"], rows),
    ]


def write_search_report(outcome: SearchOutcome, title: str) -> Path:
    """Write ``search.md`` and its plots into the search's folder; return its path."""
    out_dir = outcome.out_dir
    generations = outcome.ledger.generations
    evaluations = sum(len(g.asked) for g in generations)
    constraints = ", ".join(c.text for c in outcome.constraints)
    lines = [
        f"# Student search: {title}",
        "",
        f"{outcome.label}: {len(generations)} generation(s), {evaluations} candidate "
        f"evaluations ({len(outcome.evaluated)} distinct), objectives "
        f"{', '.join(o.name for o in outcome.objectives)}"
        + (f", constraints {constraints}" if constraints else "")
        + f". Baseline: {describe(outcome.baseline)}. Candidates are ranked on the validation "
        "split; test metrics are reported only.",
    ]
    lines += _phase1_section(outcome)
    lines += _generations_section(outcome, out_dir)
    lines += _front_section(outcome, out_dir)
    lines += _comparison_section(outcome, out_dir)
    lines += _final_section(outcome)
    path = out_dir / "search.md"
    write_text(path, "\n".join(lines) + "\n")
    return path
