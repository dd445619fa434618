"""Execute one run: its start model, its stages in order, evaluation, checkpoint and
record. Executors call this in the driver, in worker processes or as Ray tasks."""

from __future__ import annotations

import copy
import time
from datetime import datetime, timezone
from pathlib import Path

from torch import nn

from qdistill.experiment.context import RunContext
from qdistill.experiment.planner import SPEC_VERSION, TEACHER, Run
from qdistill.experiment.recipe import recipe_title
from qdistill.experiment.record import RunRecord, StageRecord
from qdistill.experiment.stages import StageConfig, StudentState, definition_of
from qdistill.hardware.benchmark import eager_latency_ms
from qdistill.paths import inside
from qdistill.quant import count_parameters, is_quantized, layer_costs, model_size, total_macs
from qdistill.quant.half import is_half
from qdistill.runtime import seed_everything
from qdistill.tasks import sample_path

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
