"""Execute an experiment: check everything, hold the output folder, execute the runs not
yet in results.jsonl (in the driver, a local pool or on Ray), then export, benchmark and
estimate the selected runs."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from qdistill.console import console
from qdistill.errors import ConfigError, QdistillError
from qdistill.experiment.context import RunContext, build_context
from qdistill.experiment.deploy import BenchmarkRecord, ExportRecord, benchmark_runs, export_runs
from qdistill.experiment.dispatch import Dispatch, RunFailure, record_failures
from qdistill.experiment.executors import (
    Execution,
    InProcessExecutor,
    make_executor,
    start_fork_server,
)
from qdistill.experiment.hardware import HardwareRecord, estimate_runs
from qdistill.experiment.lock import output_lock
from qdistill.experiment.planner import Run, check_selections, plan_runs
from qdistill.experiment.progress import SweepProgress
from qdistill.experiment.record import RunRecord
from qdistill.experiment.schedule import RunScheduler, float_models_needed
from qdistill.experiment.schema import ExperimentConfig
from qdistill.experiment.stages.quantize import QuantizeStage
from qdistill.experiment.store import ResultsStore
from qdistill.models import ModelConfig
from qdistill.paths import writable_folder, write_text
from qdistill.quant import quantize
from qdistill.tasks import Task


@dataclass
class ExperimentOutcome:
    records: list[RunRecord]
    executed: int
    skipped: int
    out_dir: Path
    failures: list[RunFailure] = field(default_factory=list)
    exports: list[ExportRecord] = field(default_factory=list)
    benchmarks: list[BenchmarkRecord] = field(default_factory=list)
    hardware: list[HardwareRecord] = field(default_factory=list)
    task: Task | None = None


def check_models(runs: list[Run], task: Task) -> None:
    """Build every run's model on the meta device (no memory) and quantize it there with
    each plan its recipe names, so a bad model option or a plan that fits no layer fails
    before the first run (and before experiment.json is rewritten), not hours into the
    sweep."""
    shape, outputs = task.data.input_shape, task.num_outputs
    models: dict[str, torch.nn.Module] = {}
    checked: set[tuple[str, str, bool]] = set()
    for run in runs:
        key = json.dumps(run.model.model_dump(), sort_keys=True, default=str)
        if key not in models:
            models[key] = _meta_model(run.model, shape, outputs)
        for stage in run.stages:
            if not isinstance(stage, QuantizeStage) or stage.bits is None:
                continue
            plan = (key, repr(stage.bits), stage.fold_bn)
            if plan in checked:
                continue
            checked.add(plan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # float leftovers are reported when it runs
                try:
                    quantize(models[key], stage.bits, fold_bn=stage.fold_bn)
                except ConfigError as err:
                    raise ConfigError(f"student {run.group}: {err}") from None


def _meta_model(model: ModelConfig, shape: tuple[int, ...], outputs: int) -> torch.nn.Module:
    try:
        with torch.device("meta"):
            return model.build(shape, outputs)
    except QdistillError:
        raise
    except Exception as err:  # a factory's own check (ValueError, TypeError, ...)
        raise ConfigError(
            f"model {model.name} with options {model.options} cannot be built for inputs "
            f"{list(shape)}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from None


def write_config(config: ExperimentConfig, out_dir: Path) -> None:
    write_text(out_dir / "experiment.json", json.dumps(config.model_dump(mode="json"), indent=2))


def _prepare(config: ExperimentConfig, out_dir: Path, runs: list[Run]) -> RunContext:
    ctx = build_context(config, out_dir)
    check_models(runs, ctx.task)
    ctx.task.prepare_outputs(out_dir / "images")
    return ctx


def _execute_all(
    ctx: RunContext, runs: list[Run], done: set[str], store: ResultsStore, execution: Execution
) -> tuple[int, list[RunFailure]]:
    """Execute the runs not in ``done``; the records go to ``store`` as each finishes."""
    for run in runs:
        if run.run_id in done:
            console.print(f"{run.name} seed {run.seed}: done earlier, skipped")
    to_do = [run for run in runs if run.run_id not in done]
    if not to_do:
        return 0, []
    scheduler = RunScheduler(to_do, lambda run: float_models_needed(ctx.config, run, ctx.cache_dir))
    executor = make_executor(execution, ctx)
    live = not isinstance(executor, InProcessExecutor)  # a run in the driver draws its own bars
    finished = False
    try:
        with SweepProgress(len(to_do), ctx.task, live) as progress:
            dispatch = Dispatch(executor, scheduler, progress, store.append)
            try:
                failures = dispatch.run_all()
            finally:
                record_failures(ctx.out_dir / "failures.jsonl", dispatch.failures)
        finished = True
    finally:
        executor.close(cancel=not finished)
    return progress.done, failures


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    force: bool = False,
    execution: Execution | None = None,
) -> ExperimentOutcome:
    """Run every planned run not already in ``out_dir/results.jsonl`` (all with ``force``),
    where ``execution`` says (in the driver by default). Runs that failed after a retry are
    in ``outcome.failures`` (and failures.jsonl); a qdistill error in a run is raised.

    Everything is checked before anything is written: the plan, the selections, every
    model's options, the data, and that ``out_dir`` is writable and no other sweep holds it.
    """
    out_dir = Path(out_dir)
    runs = plan_runs(config)
    check_selections(config, runs)
    writable_folder(out_dir)
    with output_lock(out_dir):
        return _run_locked(config, out_dir, runs, force, execution or Execution())


def _run_locked(
    config: ExperimentConfig, out_dir: Path, runs: list[Run], force: bool, execution: Execution
) -> ExperimentOutcome:
    outcome = execute_planned(config, out_dir, runs, execution, force, record_config=True)
    deploy_runs(config, outcome, out_dir)
    return outcome


def execute_planned(
    config: ExperimentConfig,
    out_dir: Path,
    runs: list[Run],
    execution: Execution,
    force: bool = False,
    record_config: bool = False,
) -> ExperimentOutcome:
    """Execute ``runs`` of ``config`` not yet recorded in ``out_dir`` (all with ``force``);
    the caller holds the output lock. The outcome's records are those of ``runs``. With
    ``record_config`` the config is written to experiment.json once every model and the
    data have been checked."""
    store = ResultsStore(out_dir / "results.jsonl")
    done = set() if force else store.completed_ids()
    if execution.executor == "local" and (execution.workers or 1) > 1:
        start_fork_server()  # its imports overlap the preparation
    ctx = _prepare(config, out_dir, runs)
    if record_config:
        write_config(config, out_dir)
    to_do = sum(run.run_id not in done for run in runs)
    data = ctx.task.data
    console.print(
        f"[bold]{config.name}[/]: {len(runs)} runs ({to_do} to do) on {data.name} "
        f"{list(data.input_shape)}, device {ctx.task.device}, out {out_dir}"
    )
    executed, failures = _execute_all(ctx, runs, done, store, execution)
    skipped = sum(run.run_id in done for run in runs)
    by_id = {run.run_id: run for run in runs}
    order = {run_id: index for index, run_id in enumerate(by_id)}
    # in plan order, whichever finished first; report-only settings follow the current
    # file, not the one a reused run ran with
    records = [
        replace(r, compare_to=by_id[r.run_id].compare_to)
        for r in sorted(store.latest(), key=lambda r: order.get(r.run_id, -1))
        if r.run_id in by_id
    ]
    return ExperimentOutcome(records, executed, skipped, out_dir, failures, task=ctx.task)


def deploy_runs(config: ExperimentConfig, outcome: ExperimentOutcome, out_dir: Path) -> None:
    """Export, benchmark and estimate the runs the experiment's blocks select."""
    records, task = outcome.records, outcome.task
    if config.export is not None:
        console.print("[bold]exports[/]")
        outcome.exports = export_runs(config.export, records, task, out_dir)
    if config.benchmark is not None:
        console.print("[bold]benchmarks[/]")
        outcome.benchmarks = benchmark_runs(config.benchmark, records, task, out_dir)
    if config.hardware is not None:
        console.print("[bold]hardware estimates[/]")
        outcome.hardware = estimate_runs(config.hardware, records, task, out_dir)
