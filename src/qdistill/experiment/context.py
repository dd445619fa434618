"""What every run of one experiment shares: the task, the output folder, the versions,
and the float models cached on disk by their training recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qdistill.console import console
from qdistill.data import Augmentation, build_dataset
from qdistill.distill import DistillConfig, TeacherOutputCache, cache_disabled_reason
from qdistill.errors import CheckpointError, ConfigError
from qdistill.experiment.planner import config_hash, spec_key
from qdistill.experiment.schema import ExperimentConfig
from qdistill.experiment.stages import StageContext
from qdistill.experiment.stages.training import check_learned, train_with_validation
from qdistill.models import ModelConfig, load_model, save_model
from qdistill.runtime import collect_versions, seed_everything
from qdistill.tasks import Task, make_task
from qdistill.train import TrainConfig


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available; use cpu or auto")
    return torch.device(name)


def build_context(config: ExperimentConfig, out_dir: Path) -> RunContext:
    """The data, device and task of ``config``'s runs, writing under ``out_dir``."""
    data = build_dataset(config.data.name, **config.data.options)
    device = resolve_device(config.device)
    task = make_task(data, device, config.eval_batch_size, config.evaluation.lpips_weights)
    return RunContext(config, out_dir, task)


def float_model_recipe(
    config: ExperimentConfig, model_cfg: ModelConfig, train: TrainConfig, seed: int
) -> dict[str, Any]:
    """Everything a cached float model depends on."""
    return {
        "data": config.data.model_dump(mode="json"),
        "model": model_cfg.model_dump(mode="json"),
        "train": train.model_dump(mode="json"),
        "seed": seed,
        **spec_key(),
    }


def float_model_path(cache_dir: Path, model_cfg: ModelConfig, recipe: dict[str, Any]) -> Path:
    stem = model_cfg.name.replace(":", "-")  # torchvision:resnet18 -> a portable file name
    return cache_dir / f"float-{stem}-{config_hash(recipe)}.safetensors"


@dataclass
class RunContext:
    config: ExperimentConfig
    out_dir: Path
    task: Task
    versions: dict[str, Any] = field(default_factory=collect_versions)

    @property
    def cache_dir(self) -> Path:
        return self.out_dir / "cache"

    @property
    def augment(self) -> Augmentation:
        return Augmentation(**self.config.data.augment.model_dump())

    def sample_hooks(self, desc: str) -> dict[str, list] | None:
        """With evaluation.sample_images, write each epoch's output of the sample picture."""
        if not self.config.evaluation.sample_images:
            return None
        folder = self.out_dir / "samples" / desc.replace("/", "-")

        def save(model: nn.Module, epoch: int, _metrics: dict) -> None:
            self.task.save_sample(model, folder / f"epoch-{epoch:03d}.png")

        return {"on_epoch_end": [save]}

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
            self.task.data.train,
            self.config.eval_batch_size,
            self.task.device,
            self.cache_dir,
            self.augment.describe(),
        )
        console.print(f"  {desc}: teacher outputs cached ({cache.key})")
        return cache

    def stage_context(self, seed: int, desc: str) -> StageContext:
        return StageContext(
            task=self.task,
            seed=seed,
            desc=desc,
            augment=self.augment,
            log=lambda line: console.print(f"  {desc}: {line}"),
            teacher_cache=lambda teacher, config: self.teacher_cache(teacher, config, desc),
            hooks=self.sample_hooks(desc),
        )

    def build(self, model: ModelConfig) -> nn.Module:
        return model.build(self.task.data.input_shape, self.task.num_outputs).to(self.task.device)

    def save(
        self,
        path: Path,
        model: nn.Module,
        model_cfg: ModelConfig,
        extra: dict[str, Any],
        fold_bn: bool = False,
        pruned_shapes: dict[str, list[int]] | None = None,
    ) -> None:
        save_model(
            path,
            model,
            model_name=model_cfg.name,
            model_options=model_cfg.options,
            input_shape=self.task.data.input_shape,
            num_outputs=self.task.num_outputs,
            fold_bn=fold_bn,
            pruned_shapes=pruned_shapes,
            extra=extra,
        )

    def float_model(
        self, model_cfg: ModelConfig, train: TrainConfig, seed: int, desc: str
    ) -> tuple[nn.Module, dict[str, Any]]:
        """A float model trained with ``train``, cached on disk by its full recipe."""
        recipe = float_model_recipe(self.config, model_cfg, train, seed)
        path = float_model_path(self.cache_dir, model_cfg, recipe)
        if path.is_file():
            try:
                model, metadata = load_model(path)
                console.print(f"  {desc}: loaded cached float model {path.name}")
                summary = metadata.get("train_summary", {})
                return model.to(self.task.device), {"cached": True, **summary}
            except CheckpointError as err:
                console.print(f"[yellow]warning:[/] {err}; training it again")
        seed_everything(seed)
        model = self.build(model_cfg)
        summary = train_with_validation(
            model, self.task, train, seed, desc, self.augment, self.sample_hooks(desc)
        )
        check_learned(self.task, summary, desc)
        kept = {k: v for k, v in summary.items() if k != "history"}
        self.save(path, model, model_cfg, extra={"recipe": recipe, "train_summary": kept})
        return model, {"cached": False, **summary}

    def teacher(self, seed: int) -> tuple[nn.Module, dict[str, Any]]:
        teacher = self.config.teacher
        return self.float_model(teacher.model, teacher.train, seed, f"teacher/s{seed}")
