"""Execute an experiment locally: each run's start model, its stages in order, evaluation,
checkpoint and record; finished runs are found in results.jsonl and skipped."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from qdistill.console import console
from qdistill.data import build_dataset
from qdistill.errors import ConfigError, QdistillError
from qdistill.experiment.context import RunContext, resolve_device
from qdistill.experiment.deploy import BenchmarkRecord, ExportRecord, benchmark_runs, export_runs
from qdistill.experiment.hardware import HardwareRecord, estimate_runs
from qdistill.experiment.lock import output_lock
from qdistill.experiment.planner import SPEC_VERSION, TEACHER, Run, check_selections, plan_runs
from qdistill.experiment.recipe import recipe_title
from qdistill.experiment.record import RunRecord, StageRecord
from qdistill.experiment.schema import ExperimentConfig
from qdistill.experiment.stages import StageConfig, StudentState, definition_of
from qdistill.experiment.store import ResultsStore
from qdistill.hardware.benchmark import eager_latency_ms
from qdistill.paths import inside, writable_folder, write_text
from qdistill.quant import count_parameters, is_quantized, layer_costs, model_size, total_macs
from qdistill.quant.half import is_half
from qdistill.runtime import seed_everything
from qdistill.tasks import Task, make_task, sample_path

START_TITLES = {"teacher": "teacher", "pretrained": "float", "scratch": "random init"}


def _stage_record(
    ctx: RunContext, stage: str, title: str, started: float, model: nn.Module, details: dict
) -> StageRecord:
    """The model's validation metrics and size after a stage that began at ``started``."""
    wall_s = round(time.perf_counter() - started, 3)
    metrics = ctx.task.validate(model)
    example = ctx.task.sample_inputs(1).to(ctx.task.device)
    return StageRecord(
        stage,
        title,
        wall_s,
        metrics,
        model_size(model).total_bytes,
        details,
        macs=total_macs(layer_costs(model, example)),
        latency_ms=round(eager_latency_ms(model, example), 4),
    )


def start_model(ctx: RunContext, run: Run, teacher: nn.Module | None) -> nn.Module:
    """The model a run's recipe begins with."""
    if run.start == "teacher":
        return copy.deepcopy(teacher)
    if run.start == "scratch":
        seed_everything(run.seed)
        return ctx.build(run.model)
    model, _ = ctx.float_model(run.model, run.pretrain, run.seed, f"{run.name}-float")
    return model


def run_stage(ctx: RunContext, run: Run, config: StageConfig, state: StudentState) -> StageRecord:
    started = time.perf_counter()
    desc = f"{run.name}/s{run.seed}"
    details = definition_of(config).run(config, state, ctx.stage_context(run.seed, desc))
    return _stage_record(ctx, config.stage, config.title, started, state.model, details)


def execute_run(ctx: RunContext, run: Run) -> RunRecord:
    """Produce, evaluate and record one run."""
    started = time.perf_counter()
    teacher, teacher_info = ctx.teacher(run.seed) if run.needs_teacher else (None, {})
    state = StudentState(start_model(ctx, run, teacher), teacher)
    details = {"start": run.start, **({"training": teacher_info} if run.group == TEACHER else {})}
    title = START_TITLES[run.start]
    stages = [_stage_record(ctx, "start", title, started, state.model, details)]
    stages += [run_stage(ctx, run, config, state) for config in run.stages]
    metrics = ctx.task.evaluate(state.model)
    if is_quantized(state.model):
        metrics.update(ctx.task.integer_metrics(state.model))
    ctx.task.save_sample(state.model, sample_path(ctx.out_dir / "images", run.name, run.seed))
    checkpoint = inside(
        ctx.out_dir / "checkpoints", f"{run.name}-s{run.seed}-{run.run_id}.safetensors"
    )
    extra = {"run_id": run.run_id, "data": ctx.config.data.model_dump(mode="json")}
    extra["metrics"] = metrics
    ctx.save(checkpoint, state.model, run.model, extra, state.fold_bn, state.pruned_shapes)
    return _record(ctx, run, state, tuple(stages), metrics, checkpoint, started)


def _record(
    ctx: RunContext,
    run: Run,
    state: StudentState,
    stages: tuple[StageRecord, ...],
    metrics: dict[str, float],
    checkpoint: Path,
    started: float,
) -> RunRecord:
    model, labels = state.model, run.labels
    size = model_size(model)
    return RunRecord(
        experiment=ctx.config.name,
        run_id=run.run_id,
        name=run.name,
        group=run.group,
        seed=run.seed,
        spec_version=SPEC_VERSION,
        task=ctx.task.kind,
        model=run.model.name,
        method=run.method,
        recipe=recipe_title(run.stages),
        bits=labels.bits,
        w_bits=labels.w_bits,
        a_bits=labels.a_bits,
        alpha=labels.alpha,
        temperature=labels.temperature,
        phases=labels.phases,
        plan=state.plan if is_quantized(model) else None,
        half_plan=model.half_plan if is_half(model) else None,
        config=run.config,
        compare_to=run.compare_to,
        metrics=metrics,
        stages=stages,
        size_bytes=size.total_bytes,
        float32_bytes=size.float32_bytes,
        params=count_parameters(model),
        wall_s=round(time.perf_counter() - started, 3),
        allocation=state.allocation,
        checkpoint=str(checkpoint.relative_to(ctx.out_dir)),
        data=ctx.task.data.summary(),
        experiment_config=ctx.config.model_dump(mode="json"),
        versions=ctx.versions,
        device=str(ctx.task.device),
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        notes=ctx.task.notes(),
    )


@dataclass
class ExperimentOutcome:
    records: list[RunRecord]
    executed: int
    skipped: int
    out_dir: Path
    exports: list[ExportRecord] = field(default_factory=list)
    benchmarks: list[BenchmarkRecord] = field(default_factory=list)
    hardware: list[HardwareRecord] = field(default_factory=list)


def check_models(runs: list[Run], task: Task) -> None:
    """Build every run's model on the meta device (no memory), so a bad model option
    fails before the first run rather than hours into the sweep."""
    shape, outputs = task.data.input_shape, task.num_outputs
    for model in {
        json.dumps(run.model.model_dump(), sort_keys=True, default=str): run.model for run in runs
    }.values():
        try:
            with torch.device("meta"):
                model.build(shape, outputs)
        except QdistillError:
            raise
        except Exception as err:  # a factory's own check (ValueError, TypeError, ...)
            raise ConfigError(
                f"model {model.name} with options {model.options} cannot be built for inputs "
                f"{list(shape)}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            ) from None


def _prepare(config: ExperimentConfig, out_dir: Path, runs: list[Run]) -> RunContext:
    data = build_dataset(config.data.name, **config.data.options)
    device = resolve_device(config.device)
    task = make_task(data, device, config.eval_batch_size, config.evaluation.lpips_weights)
    check_models(runs, task)
    write_text(out_dir / "experiment.json", json.dumps(config.model_dump(mode="json"), indent=2))
    task.prepare_outputs(out_dir / "images")
    return RunContext(config, out_dir, task)


def _execute_all(
    ctx: RunContext, runs: list[Run], done: set[str], store: ResultsStore
) -> tuple[int, int]:
    executed = skipped = 0
    task = ctx.task
    for index, run in enumerate(runs, 1):
        prefix = f"[{index}/{len(runs)}] {run.name} seed {run.seed}"
        if run.run_id in done:
            console.print(f"{prefix}: done earlier, skipped")
            skipped += 1
            continue
        console.print(f"[bold cyan]{prefix}[/] ({run.method}, {run.run_id})")
        record = execute_run(ctx, run)
        store.append(record)
        executed += 1
        headline = record.metrics[task.headline.key]
        console.print(
            f"{prefix}: {task.headline.key.replace('_', ' ')} {headline:.2f}{task.unit}  "
            f"size {record.size_bytes / 1024:.1f} KiB  {record.wall_s:.1f}s"
        )
    return executed, skipped


def run_experiment(
    config: ExperimentConfig, out_dir: str | Path, *, force: bool = False
) -> ExperimentOutcome:
    """Run every planned run not already in ``out_dir/results.jsonl`` (all with ``force``).

    Everything is checked before anything is written: the plan, the selections, every
    model's options, the data, and that ``out_dir`` is writable and no other sweep holds it.
    """
    out_dir = Path(out_dir)
    runs = plan_runs(config)
    check_selections(config, runs)
    writable_folder(out_dir)
    with output_lock(out_dir):
        return _run_locked(config, out_dir, runs, force)


def _run_locked(
    config: ExperimentConfig, out_dir: Path, runs: list[Run], force: bool
) -> ExperimentOutcome:
    store = ResultsStore(out_dir / "results.jsonl")
    done = set() if force else store.completed_ids()
    ctx = _prepare(config, out_dir, runs)
    to_do = sum(run.run_id not in done for run in runs)
    data = ctx.task.data
    console.print(
        f"[bold]{config.name}[/]: {len(runs)} runs ({to_do} to do) on {data.name} "
        f"{list(data.input_shape)}, device {ctx.task.device}, out {out_dir}"
    )
    executed, skipped = _execute_all(ctx, runs, done, store)
    by_id = {run.run_id: run for run in runs}
    # report-only settings follow the current file, not the one a reused run ran with
    records = [
        replace(r, compare_to=by_id[r.run_id].compare_to)
        for r in store.latest()
        if r.run_id in by_id
    ]
    outcome = ExperimentOutcome(records, executed, skipped, out_dir)
    if config.export is not None:
        console.print("[bold]exports[/]")
        outcome.exports = export_runs(config.export, records, ctx.task, out_dir)
    if config.benchmark is not None:
        console.print("[bold]benchmarks[/]")
        outcome.benchmarks = benchmark_runs(config.benchmark, records, ctx.task, out_dir)
    if config.hardware is not None:
        console.print("[bold]hardware estimates[/]")
        outcome.hardware = estimate_runs(config.hardware, records, ctx.task, out_dir)
    return outcome
