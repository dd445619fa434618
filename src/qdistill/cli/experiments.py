"""Experiment commands: ``run`` and ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qdistill.cli.app import app
from qdistill.console import console


def _run_and_report(
    experiment_path: Path, out: Path | None, force: bool, overrides: list[str] | None = None
) -> None:
    from qdistill.experiment import load_experiment, run_experiment
    from qdistill.report import results_table, write_report

    config = load_experiment(experiment_path, overrides or ())
    out_dir = out or Path("runs") / config.name
    outcome = run_experiment(config, out_dir, force=force)
    report = write_report(
        out_dir,
        outcome.records,
        config.name,
        outcome.exports,
        outcome.benchmarks,
        config.description,
        outcome.hardware,
    )
    console.print(results_table(outcome.records))
    console.print(
        f"{outcome.executed} run(s) executed, {outcome.skipped} reused from earlier. "
        f"Results: {out_dir / 'results.jsonl'}"
    )
    console.print(f"[bold green]Report:[/] {report}")


OutOption = Annotated[
    Path | None, typer.Option("--out", "-o", help="Output directory (default runs/<name>).")
]


@app.command()
def run(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML file.")],
    out: OutOption = None,
    force: Annotated[bool, typer.Option(help="Re-run runs already in results.jsonl.")] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a YAML value: key.subkey=value (repeatable)."),
    ] = None,
) -> None:
    """Run every run of an experiment YAML file and write its report."""
    _run_and_report(experiment, out, force, set_)


@app.command()
def demo(out: OutOption = None) -> None:
    """Run the shipped demo: float teacher, PTQ and QAT students on the bundled digits."""
    from qdistill.experiment.shipped import shipped_config

    _run_and_report(shipped_config("demo-digits"), out or Path("runs/demo"), False)
