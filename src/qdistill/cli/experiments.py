"""Experiment commands: ``run``, ``search``, ``spaces`` and ``demo``."""

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


SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a YAML value: key.subkey=value (repeatable)."),
]
ExecutorOption = Annotated[
    str, typer.Option(help="Where runs execute: local (this machine) or ray.")
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        help="Runs side by side (default: 1 locally, every CPU of the Ray cluster); "
        "each gets an equal share of the CPU threads."
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(help="Ray cluster to join (e.g. auto); without it a local Ray starts."),
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(help="Torch threads per run (default: the CPUs shared among --workers)."),
]
ProfileOption = Annotated[
    str | None,
    typer.Option(help="Apply a profile the file defines (e.g. smoke: a short version)."),
]


@app.command()
def run(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML file.")],
    out: OutOption = None,
    force: Annotated[bool, typer.Option(help="Re-run runs already in results.jsonl.")] = False,
    set_: SetOption = None,
    executor: ExecutorOption = "local",
    workers: WorkersOption = None,
    address: AddressOption = None,
    threads: ThreadsOption = None,
    profile: ProfileOption = None,
) -> None:
    """Run every run of an experiment YAML file and write its report."""
    from qdistill.experiment.executors import Execution

    execution = Execution(executor, workers, address, threads)  # type: ignore[arg-type]
    _run_and_report(experiment, out, force, set_, execution, profile)


@app.command()
def search(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML file with a search block.")],
    out: OutOption = None,
    set_: SetOption = None,
    executor: ExecutorOption = "local",
    workers: WorkersOption = None,
    address: AddressOption = None,
    threads: ThreadsOption = None,
    profile: ProfileOption = None,
) -> None:
    """Search student architectures (and bits, pruning, KD settings) for the best
    trade-offs; resumes where a killed search stopped."""
    from qdistill.errors import ConstraintsUnmetError
    from qdistill.experiment import load_experiment
    from qdistill.experiment.executors import Execution
    from qdistill.report import write_report
    from qdistill.report.search import write_search_report
    from qdistill.search.config import search_of
    from qdistill.search.driver import run_search

    config = load_experiment(experiment, set_ or (), profile)
    search_block = search_of(config, str(experiment))
    out_dir = out or Path("runs") / config.name
    execution = Execution(executor, workers, address, threads)  # type: ignore[arg-type]
    outcome = run_search(config, search_block, out_dir, execution)
    report = write_search_report(outcome, config.name)
    if outcome.final is not None:
        final = outcome.final
        write_report(
            out_dir,
            final.records,
            config.name,
            final.exports,
            final.benchmarks,
            config.description,
            final.hardware,
            config.references,
        )
    console.print(f"[bold green]Search report:[/] {report}")
    if outcome.unmet:
        raise ConstraintsUnmetError(
            f"{outcome.unmet}; relax a constraint or widen the space (measured candidates are "
            f"kept in {out_dir / 'search'})"
        )


@app.command()
def spaces() -> None:
    """List the registered search spaces (for a search's ``space:``) and what they vary."""
    from qdistill.search import SPACES

    for name in SPACES.names():
        space = SPACES.get(name)
        layers = [
            f"{option}: depth {r.depth}, widths {r.widths}" for option, r in space.layers.items()
        ]
        choices = [f"{option}: {values}" for option, values in space.choices.items()]
        console.print(f"{name:<14} model {space.model}; " + "; ".join(layers + choices))


@app.command()
def demo(out: OutOption = None) -> None:
    """Run the shipped demo: float teacher, PTQ and QAT students on the bundled digits."""
    from qdistill.experiment.shipped import shipped_config

    _run_and_report(shipped_config("demo-digits"), out or Path("runs/demo"), False)
