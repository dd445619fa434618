"""Execute an experiment locally: teacher (cached), students, evaluation, records, report."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qdistill.console import console
from qdistill.data import Augmentation, build_dataset
from qdistill.distill import (
    DistillConfig,
    TeacherOutputCache,
    cache_disabled_reason,
    distill,
    qkd,
)
from qdistill.errors import CheckpointError, ConfigError
from qdistill.experiment.deploy import benchmark_runs, export_runs
from qdistill.experiment.planner import Run, bits_label, config_hash, plan_runs
from qdistill.experiment.results import ResultsStore
from qdistill.experiment.schema import (
    ExperimentConfig,
    HalfConfig,
    ModelConfig,
    allocation_of,
)
from qdistill.experiment.steps import (
    allocate_by_sensitivity,
    equalize_before_quantizing,
    quantize_calibrated,
    train_with_validation,
    training_summary,
)
from qdistill.experiment.tasks import Task, make_task
from qdistill.hardware import count_parameters, model_size
from qdistill.models import build_model, load_model, model_task, save_model
from qdistill.quant import QuantPlan
from qdistill.quant.half import half_precision, is_half
from qdistill.runtime import collect_versions, seed_everything
from qdistill.train import TrainConfig


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available; use cpu or auto")
    return torch.device(name)


@dataclass
class RunContext:
    """What every run of one experiment shares."""

    config: ExperimentConfig
    out_dir: Path
    task: Task
    versions: dict[str, Any] = field(default_factory=collect_versions)

    @property
    def data(self):
        return self.task.data

    @property
    def device(self) -> torch.device:
        return self.task.device

    @property
    def cache_dir(self) -> Path:
        return self.out_dir / "cache"

    @property
    def augment(self) -> Augmentation:
        return Augmentation(**self.config.data.augment.model_dump())

    def batches(self, train: TrainConfig, seed: int):
        return self.task.training_batches(train.batch_size, seed, self.augment)

    def _sample_hooks(self, desc: str) -> dict[str, list] | None:
        """With evaluation.sample_images, write each epoch's SR output of a test crop."""
        if not self.config.evaluation.sample_images:
            return None
        folder = self.out_dir / "samples" / desc.replace("/", "-")

        def save(model: nn.Module, epoch: int, _metrics: dict) -> None:
            self.task.save_sample(model, folder / f"epoch-{epoch:03d}.png")

        return {"on_epoch_end": [save]}

    def fit_options(self, desc: str) -> dict[str, Any]:
        """What every training call of a run shares: device, monitor, sample hooks."""
        hooks = self._sample_hooks(desc)
        return {
            "device": self.device,
            "monitor": self.task.monitor,
            **({"hooks": hooks} if hooks else {}),
        }

    def train(self, model: nn.Module, train: TrainConfig, seed: int, desc: str) -> dict[str, Any]:
        return train_with_validation(
            model, self.task, train, seed, desc, self.augment, self._sample_hooks(desc)
        )

    def teacher_cache(
        self, teacher: nn.Module, config: DistillConfig, desc: str
    ) -> TeacherOutputCache | None:
        """The frozen teacher's training-set outputs, unless caching is off or unsound."""
        reason = (
            "disabled in the config"
            if config.cache == "off"
            else self.task.cache_disabled_reason()
            or cache_disabled_reason(self.augment.describe(), bool(config.features))
        )
        if reason is not None:
            console.print(f"  {desc}: live teacher outputs ({reason})")
            return None
        cache = TeacherOutputCache.build(
            teacher,
            self.data.train,
            self.config.eval_batch_size,
            self.device,
            self.cache_dir,
            self.augment.describe(),
        )
        console.print(f"  {desc}: teacher outputs cached ({cache.key})")
        return cache

    def save(
        self,
        path: Path,
        model: nn.Module,
        model_cfg: ModelConfig,
        extra: dict[str, Any],
        fold_bn: bool = False,
    ) -> None:
        save_model(
            path,
            model,
            model_name=model_cfg.name,
            model_options=model_cfg.options,
            input_shape=self.data.input_shape,
            num_outputs=self.task.num_outputs,
            fold_bn=fold_bn,
            extra=extra,
        )

    def build(self, model_cfg: ModelConfig) -> nn.Module:
        return build_model(
            model_cfg.name, self.data.input_shape, self.task.num_outputs, **model_cfg.options
        ).to(self.device)


def check_models_fit_task(config: ExperimentConfig, task: Task) -> None:
    """Every model of the experiment must suit the dataset's task (and its distillation
    loss the model's outputs)."""
    kind = task.kind
    models = [config.teacher.model] + [s.model for s in config.students if s.model]
    for model_cfg in models:
        if model_task(model_cfg.name) != kind:
            raise ConfigError(
                f"model {model_cfg.name!r} is a {model_task(model_cfg.name).replace('_', '-')} "
                f"model but dataset {config.data.name!r} is a {kind.replace('_', '-')} dataset"
            )
    for student in config.students:
        distillation = student.distillation
        if distillation is not None and distillation.loss != task.distill_loss:
            raise ConfigError(
                f"student {student.name!r}: distill.loss {distillation.loss!r} does not fit a "
                f"{kind.replace('_', '-')} model; use {task.distill_loss}"
            )


def float_model(
    ctx: RunContext, model_cfg: ModelConfig, train: TrainConfig, seed: int, desc: str
) -> tuple[nn.Module, dict[str, Any]]:
    """A float model trained with ``train``, cached on disk by its full recipe."""
    recipe = {
        "data": ctx.config.data.model_dump(mode="json"),
        "model": model_cfg.model_dump(mode="json"),
        "train": train.model_dump(mode="json"),
        "seed": seed,
        "qdistill": ctx.versions.get("qdistill"),
    }
    path = ctx.cache_dir / f"float-{model_cfg.name}-{config_hash(recipe)}.safetensors"
    if path.is_file():
        try:
            model, metadata = load_model(path)
            console.print(f"  {desc}: loaded cached float model {path.name}")
            return model.to(ctx.device), {"cached": True, **metadata.get("train_summary", {})}
        except CheckpointError as err:
            console.print(f"[yellow]warning:[/] {err}; training it again")
    seed_everything(seed)
    model = ctx.build(model_cfg)
    summary = ctx.train(model, train, seed, desc)
    ctx.save(
        path,
        model,
        model_cfg,
        extra={
            "recipe": recipe,
            "train_summary": {k: v for k, v in summary.items() if k != "history"},
        },
    )
    return model, {"cached": False, **summary}


def _bit_widths(bits: Any) -> tuple[int | None, int | None]:
    """(weight bits, activation bits) of a plan's default rule ('*'); None for plans
    without one and for allocated plans."""
    if bits is None:
        return 32, 32
    if allocation_of(bits):
        return None, None
    defaults = [spec for pattern, spec in QuantPlan.from_config(bits).rules if pattern == "*"]
    if not defaults:
        return None, None
    spec = defaults[-1]
    if spec is None:
        return 32, 32
    return (spec.weight.bits if spec.weight else 32), (spec.act.bits if spec.act else 32)


def train_student(
    ctx: RunContext, run: Run, model: nn.Module, teacher: nn.Module | None, desc: str
) -> dict[str, Any]:
    """Train a (prepared) student: plainly, with offline KD, or through the QKD phases."""
    student = run.student
    seed_everything(run.seed)
    if student.method == "qkd":
        results = qkd(
            model,
            teacher,
            lambda train: ctx.batches(train, run.seed),
            student.phases,
            run.distill,
            evaluate=ctx.task.validate,
            desc=desc,
            cache_factory=lambda tutor: ctx.teacher_cache(tutor, run.distill, desc),
            task_loss=ctx.task.loss_fn(student.phases.self_study or TrainConfig()),
            **ctx.fit_options(desc),
        )
        phases = dict(student.phases.named())
        return {
            "phases": {
                name: training_summary(result, phases[name]) for name, result in results.items()
            }
        }
    train = student.train or TrainConfig()
    if run.distill is None:
        return ctx.train(model, train, run.seed, desc)
    result = distill(
        model,
        teacher,
        ctx.batches(train, run.seed),
        train,
        run.distill,
        cache=ctx.teacher_cache(teacher, run.distill, desc),
        evaluate=ctx.task.validate,
        desc=desc,
        **ctx.fit_options(desc),
    )
    return training_summary(result, train)


def execute_run(ctx: RunContext, run: Run) -> dict[str, Any]:
    """Produce, evaluate and record one run."""
    started = time.perf_counter()
    config = ctx.config
    desc = f"{run.name}/s{run.seed}"
    student = run.student
    model_cfg = config.teacher.model if student is None or student.model is None else student.model
    teacher = None
    training: dict[str, Any] | None = None
    needs_teacher = (
        student is None
        or run.distill is not None
        or (student.model is None and student.init == "pretrained")
    )
    if needs_teacher:
        teacher, teacher_info = float_model(
            ctx, config.teacher.model, config.teacher.train, run.seed, f"teacher/s{run.seed}"
        )
    if student is None:
        model, training = teacher, teacher_info
    elif student.init == "scratch":
        seed_everything(run.seed)
        model = ctx.build(model_cfg)
    elif student.model is None:
        model = copy.deepcopy(teacher)
    else:
        pretrain = student.pretrain or config.teacher.train
        model, _ = float_model(ctx, student.model, pretrain, run.seed, f"{run.name}-float")

    calibration_s = None
    if student is not None and student.method == "half":
        model = half_precision(model, (student.half or HalfConfig()).plan)
    quantized = student is not None and student.method in ("ptq", "qat", "qkd")
    equalized = None
    if quantized and student.equalize is not None:
        equalized = equalize_before_quantizing(
            model, ctx.task, student.equalize, lambda line: console.print(f"  {desc}: {line}")
        )
    plan, sensitivity = run.bits, None
    allocation = allocation_of(run.bits)
    if quantized and allocation is not None:
        plan, sensitivity = allocate_by_sensitivity(
            model, ctx.task, allocation, lambda line: console.print(f"  {desc}: {line}")
        )
    if quantized:
        model, calibration_s = quantize_calibrated(
            model,
            plan,
            ctx.task.calibration_batches(),
            student.calibration_batches,
            ctx.device,
            student.fold_bn,
        )
    if student is not None and student.trains:
        training = train_student(ctx, run, model, teacher, desc)

    metrics = ctx.task.evaluate(model)
    if quantized:
        metrics.update(ctx.task.integer_metrics(model))
    ctx.task.save_sample(model, ctx.out_dir / "images" / f"{run.name}-s{run.seed}.png")
    size = model_size(model)
    checkpoint = ctx.out_dir / "checkpoints" / f"{run.name}-s{run.seed}-{run.run_id}.safetensors"
    ctx.save(
        checkpoint,
        model,
        model_cfg,
        fold_bn=bool(student and student.fold_bn),
        extra={
            "run_id": run.run_id,
            "data": config.data.model_dump(mode="json"),
            "metrics": metrics,
        },
    )
    w_bits, a_bits = _bit_widths(run.bits)
    label = bits_label(run.bits)
    if is_half(model):
        plan, label = model.half_plan.to_config(), model.half_plan.label
        w_bits = a_bits = None if model.half_plan.keep_fp32 else 16
    return {
        "run_id": run.run_id,
        "experiment": config.name,
        "task": ctx.task.kind,
        "headline": ctx.task.headline,
        **ctx.task.record_fields(),
        "name": run.name,
        "group": run.student.name if run.student else run.name,
        "model": model_cfg.name,
        "method": run.method,
        "phases": student.phases.label if student and student.phases else None,
        "bits": label,
        "plan": plan,
        "sensitivity": sensitivity,
        "equalized": equalized,
        "w_bits": w_bits,
        "a_bits": a_bits,
        "alpha": run.distill.alpha if run.distill else None,
        "temperature": (
            run.distill.temperature if run.distill and run.distill.uses_temperature else None
        ),
        "compare_to": student.compare_to if student else None,
        "seed": run.seed,
        "metrics": metrics,
        "size_bytes": size.total_bytes,
        "float32_bytes": size.float32_bytes,
        "params": count_parameters(model),
        "calibration_s": calibration_s,
        "training": training,
        "wall_s": round(time.perf_counter() - started, 3),
        "checkpoint": str(checkpoint.relative_to(ctx.out_dir)),
        "config": run.config(),
        "experiment_config": config.model_dump(mode="json"),
        "data": ctx.data.summary(),
        "versions": ctx.versions,
        "device": str(ctx.device),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


@dataclass
class ExperimentOutcome:
    records: list[dict[str, Any]]
    executed: int
    skipped: int
    out_dir: Path
    exports: list[dict[str, Any]] = field(default_factory=list)
    benchmarks: list[dict[str, Any]] = field(default_factory=list)


def run_experiment(
    config: ExperimentConfig, out_dir: str | Path, *, force: bool = False
) -> ExperimentOutcome:
    """Run every planned run not already in ``out_dir/results.jsonl`` (all with ``force``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = ResultsStore(out_dir / "results.jsonl")
    runs = plan_runs(config)
    done = set() if force else store.completed_ids()
    data = build_dataset(config.data.name, **config.data.options)
    task = make_task(
        data, resolve_device(config.device), config.eval_batch_size, config.evaluation.lpips_weights
    )
    check_models_fit_task(config, task)
    ctx = RunContext(config, out_dir, task)
    task.prepare_outputs(out_dir / "images")
    (out_dir / "experiment.json").write_text(json.dumps(config.model_dump(mode="json"), indent=2))
    to_do = sum(run.run_id not in done for run in runs)
    console.print(
        f"[bold]{config.name}[/]: {len(runs)} runs ({to_do} to do) on {data.name} "
        f"{list(data.input_shape)}, device {ctx.device}, out {out_dir}"
    )
    executed = skipped = 0
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
        headline = record["metrics"][task.headline]
        console.print(
            f"{prefix}: {task.headline.replace('_', ' ')} {headline:.2f}{task.unit}  "
            f"size {record['size_bytes'] / 1024:.1f} KiB  {record['wall_s']:.1f}s"
        )
    by_id = {run.run_id: run for run in runs}
    records = [r for r in store.latest() if r.get("run_id") in by_id]
    for record in records:  # report-only settings follow the current file, not the old run
        student = by_id[record["run_id"]].student
        record["compare_to"] = student.compare_to if student else None
    outcome = ExperimentOutcome(records, executed, skipped, out_dir)
    if config.export is not None:
        console.print("[bold]exports[/]")
        outcome.exports = export_runs(config.export, records, task, out_dir)
    if config.benchmark is not None:
        console.print("[bold]benchmarks[/]")
        outcome.benchmarks = benchmark_runs(config.benchmark, records, task, out_dir)
    return outcome
