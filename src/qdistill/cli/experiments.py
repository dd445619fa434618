"""Experiment commands: ``run`` and ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qdistill.cli.app import app
from qdistill.console import console
from qdistill.errors import RunsFailedError

if TYPE_CHECKING:
    from qdistill.experiment.executors import Execution


def _run_and_report(
    experiment_path: Path,
    out: Path | None,
    force: bool,
    overrides: list[str] | None = None,
    execution: Execution | None = None,
    profile: str | None = None,
) -> None:
    from qdistill.experiment import load_experiment, run_experiment
    from qdistill.report import results_table, write_report

    config = load_experiment(experiment_path, overrides or (), profile)
    out_dir = out or Path("runs") / config.name
    outcome = run_experiment(config, out_dir, force=force, execution=execution)
    report = write_report(
        out_dir,
        outcome.records,
        config.name,
        outcome.exports,
        outcome.benchmarks,
        config.description,
        outcome.hardware,
        config.references,
    )
    console.print(results_table(outcome.records))
    console.print(
        f"{outcome.executed} run(s) executed, {outcome.skipped} reused from earlier. "
        f"Results: {out_dir / 'results.jsonl'}"
    )
    console.print(f"[bold green]Report:[/] {report}")
    if outcome.failures:
        first = outcome.failures[0]
        raise RunsFailedError(
            f"{len(outcome.failures)} run(s) failed twice (first: {first.name} seed "
            f"{first.seed}: {first.error}); details in {out_dir / 'failures.jsonl'} and "
            f"{out_dir / 'logs'}; the same command runs only what is missing"
        )


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
    executor: Annotated[
        str, typer.Option(help="Where runs execute: local (this machine) or ray.")
    ] = "local",
    workers: Annotated[
        int | None,
        typer.Option(
            help="Runs side by side (default: 1 locally, every CPU of the Ray cluster); "
            "each gets an equal share of the CPU threads."
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join (e.g. auto); without it a local Ray starts."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(help="Torch threads per run (default: the CPUs shared among --workers)."),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(help="Apply a profile the file defines (e.g. smoke: a short version)."),
    ] = None,
) -> None:
    """Run every run of an experiment YAML file and write its report."""
    from qdistill.experiment.executors import Execution

    execution = Execution(executor, workers, address, threads)  # type: ignore[arg-type]
    _run_and_report(experiment, out, force, set_, execution, profile)


@app.command()
def demo(out: OutOption = None) -> None:
    """Run the shipped demo: float teacher, PTQ and QAT students on the bundled digits."""
    from qdistill.experiment.shipped import shipped_config

    _run_and_report(shipped_config("demo-digits"), out or Path("runs/demo"), False)
