"""The experiment YAML schema, validated on load; errors name the file and the key.

    name: demo-digits
    seeds: [0, 1, 2]
    data: {name: digits}
    teacher:
      model: small_cnn
      train: {epochs: 30, optimizer: {name: adam, lr: 0.003}}
    students:
      - {name: ptq, method: ptq, bits: [w8a8, w4a4, w2a2]}
      - {name: qat, method: qat, bits: [w4a4, w2a2], train: {epochs: 15}}
      - name: pruned
        recipe: [{prune: {ratio: 0.5}}, {finetune: {epochs: 5}}]

Students are described in :mod:`qdistill.experiment.students`. Loading checks every
student's every sweep point, and that models, data and distillation losses fit one
task, before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from qdistill.bounded_yaml import load_yaml
from qdistill.config import FileName, StrictConfig, added_later, located_errors
from qdistill.data import DATASETS, dataset_task
from qdistill.errors import ConfigError
from qdistill.experiment.recipe import distillation_of
from qdistill.experiment.students import StudentConfig
from qdistill.export.verify import Tolerance
from qdistill.models import ModelConfig, model_task
from qdistill.tasks import TASKS
from qdistill.train import TrainConfig


class AugmentConfig(StrictConfig):
    """Training-input augmentation: random shifts (pixels, zero fill), horizontal flips of
    half the images, Gaussian noise. CIFAR's standard is ``{shift: 4, hflip: true}``."""

    shift: int = Field(0, ge=0)
    noise_std: float = Field(0.0, ge=0)
    hflip: bool = added_later(False)


class DataConfig(StrictConfig):
    name: str = "digits"
    options: dict[str, Any] = Field(default_factory=dict)
    augment: AugmentConfig = AugmentConfig()

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        with located_errors():
            DATASETS.get(name)
        return name


class TeacherConfig(StrictConfig):
    model: ModelConfig
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _trained(self) -> TeacherConfig:
        if self.train.epochs == 0 and self.model.weights is None:
            raise ValueError(
                "a teacher trained for 0 epochs teaches noise; set train.epochs >= 1, or give "
                "the model trained weights (model.weights: teacher.safetensors)"
            )
        return self


class ToleranceConfig(StrictConfig):
    """qdistill.export.Tolerance, checked when the file is read."""

    agreement: float = Field(Tolerance.agreement, ge=0, le=1)
    psnr_db: float = Tolerance.psnr_db
    mean_diff: float = Field(Tolerance.mean_diff, gt=0)

    def tolerance(self) -> Tolerance:
        return Tolerance(**self.model_dump())


class ExportConfig(StrictConfig):
    """Export runs (by run or student name; empty = every quantized run) after training."""

    runs: list[str] = Field(default_factory=list)
    formats: list[Literal["onnx", "onnx-qdq", "qonnx", "finn"]] = Field(
        default_factory=lambda: ["onnx-qdq"], min_length=1
    )
    samples: int = Field(64, ge=1)
    # how close each file must come to PyTorch, and what to do beyond that: refuse (the
    # file is kept as *.unverified.onnx) or write it with the misses in its report
    tolerance: ToleranceConfig = ToleranceConfig()
    on_mismatch: Literal["refuse", "warn"] = "refuse"


class BenchmarkConfig(StrictConfig):
    """Measure selected runs (by run or student name) on deployment backends."""

    runs: list[str] = Field(min_length=1)
    backends: list[Literal["torch", "torch_compile", "ort_float", "ort_int8", "cuda"]] | None = None
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 8, 64, 256], min_length=1)
    repeats: int = Field(10, ge=2)
    time_limit_s: float = Field(10.0, gt=0)


class HardwareTargetConfig(StrictConfig):
    """One folding to estimate: a throughput (``fps``, or ``match_cpu``: the throughput
    this machine's CPU reaches with the run), the fastest design that fits a board, or
    PE = SIMD = n in every MVAU; none of them means PE = SIMD = 1. ``runs`` narrows the
    block's runs for this target."""

    runs: list[str] = Field(default_factory=list)
    fps: float | None = Field(None, gt=0)
    match_cpu: bool = False
    fit: str | None = None
    uniform: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one(self) -> HardwareTargetConfig:
        chosen = (self.fps, self.match_cpu or None, self.fit, self.uniform)
        if sum(v is not None for v in chosen) > 1:
            raise ValueError("a hardware target sets one of fps, match_cpu, fit or uniform")
        return self

    @property
    def label(self) -> str:
        if self.match_cpu:
            return "CPU throughput"
        if self.fps is not None:
            return f"{self.fps:g} FPS"
        if self.fit is not None:
            return f"fastest on {self.fit}"
        return f"PE=SIMD={self.uniform}" if self.uniform is not None else "PE=SIMD=1"


class HardwareConfig(StrictConfig):
    """FPGA dataflow estimates of selected runs (by run or student name; empty = every
    quantized run) at each target, with board fit and economics. ``input_shape``
    estimates at another input size than the data's (e.g. a full image for
    super-resolution models trained on patches). ``measure_cpu`` times each run on this
    machine's CPU for the comparison (implied by a ``match_cpu`` target);
    ``processors`` gives other catalogue processors' throughputs (images/s)."""

    runs: list[str] = Field(default_factory=list)
    targets: list[HardwareTargetConfig] = Field(
        default_factory=lambda: [HardwareTargetConfig()], min_length=1
    )
    clock_mhz: float = Field(100.0, gt=0)
    boards: list[str] = Field(default_factory=list)
    catalogue: str | None = None
    utilisation: float = Field(1.0, gt=0, le=1)
    input_shape: list[int] | None = Field(None, min_length=1)
    measure_cpu: bool = False
    processors: dict[str, float] = Field(default_factory=dict)
    mvau_wwidth_max: int = Field(36, ge=1)  # FINN's cap on SIMD x weight bits when folding

    @model_validator(mode="after")
    def _known_names(self) -> HardwareConfig:
        from qdistill.hardware.boards import load_catalogue

        with located_errors():
            catalogue = load_catalogue(self.catalogue)
            for name in [*self.boards, *(t.fit for t in self.targets if t.fit)]:
                catalogue.board(name)
            for name, fps in self.processors.items():
                catalogue.processor(name)
                if not fps > 0:
                    raise ValueError(f"processor {name}: throughput must be positive, got {fps}")
        return self

    @property
    def measures_cpu(self) -> bool:
        return self.measure_cpu or any(t.match_cpu for t in self.targets)


class EvaluationConfig(StrictConfig):
    """Extra evaluation settings: LPIPS backbone weights (a local torchvision AlexNet state
    dict; or $QDISTILL_LPIPS_WEIGHTS) and per-epoch sample images of super-resolution runs."""

    lpips_weights: str | None = None
    sample_images: bool = False


class ReferenceBlock(StrictConfig):
    """Published ``values`` of ``metric`` (the task's headline when left out) by run or
    student name, where they come from and the ``data`` they were measured on (the
    report compares only runs on the same dataset)."""

    source: str = Field(min_length=1)
    data: str | None = None  # the dataset they were measured on
    metric: str | None = None
    values: dict[str, float] = Field(min_length=1)


class ExperimentConfig(StrictConfig):
    name: FileName
    description: str = ""
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    eval_batch_size: int = Field(256, ge=1)
    data: DataConfig = DataConfig()
    teacher: TeacherConfig
    students: list[StudentConfig] = Field(default_factory=list)
    evaluation: EvaluationConfig = EvaluationConfig()
    export: ExportConfig | None = None
    benchmark: BenchmarkConfig | None = None
    hardware: HardwareConfig | None = None
    # Named sets of --set assignments shipped with the file (e.g. ``smoke``: the same
    # study on bundled data, short), applied by ``qdistill run --profile NAME``.
    profiles: dict[FileName, list[str]] = added_later({})
    # Published numbers to print next to ours in the report.
    references: list[ReferenceBlock] = added_later([])
    # A student search, read and checked by qdistill.search (``qdistill search``), which
    # depends on the experiment layer and not the other way round.
    search: dict[str, Any] | None = added_later(None)

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentConfig:
        names = [s.name for s in self.students]
        duplicates = sorted({n for n in names if names.count(n) > 1} | ({"teacher"} & set(names)))
        if duplicates:
            raise ValueError(f"student names must be unique and not 'teacher': {duplicates}")
        for student in self.students:
            if student.compare_to is not None and student.compare_to not in names:
                raise ValueError(
                    f"student {student.name!r}: compare_to {student.compare_to!r} is not a "
                    f"student; students are {names}"
                )
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat: {self.seeds}")
        return self

    @model_validator(mode="after")
    def _models_fit_the_task(self) -> ExperimentConfig:
        """Every model must suit the dataset's task, and every distillation loss the
        task's outputs."""
        task = TASKS.get(dataset_task(self.data.name))
        kind = task.kind.replace("_", "-")
        models = [self.teacher.model] + [s.model for s in self.students if s.model]
        for model in models:
            if model_task(model.name) != task.kind:
                raise ValueError(
                    f"model {model.name!r} is a {model_task(model.name).replace('_', '-')} "
                    f"model but dataset {self.data.name!r} is a {kind} dataset"
                )
        for student in self.students:
            losses = {
                config.loss
                for variant in student.variants
                for stage in variant.stages
                if (config := distillation_of(stage)) is not None
            }
            for loss in sorted(losses - {task.distill_loss}):
                raise ValueError(
                    f"student {student.name!r}: distill.loss {loss!r} does not fit a {kind} "
                    f"model; use {task.distill_loss}"
                )
        return self


def format_validation_error(err: ValidationError, source: str, within: str = "") -> str:
    """One line for ``err``: the file, the key (under ``within``), the first problem."""
    first = err.errors()[0]
    location = ".".join([*filter(None, [within]), *(str(part) for part in first["loc"])])
    location = location or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {err.error_count() - 1} more problem(s))" if err.error_count() > 1 else ""
    return f"{source}: {location}: {message}{more}"


def parse_experiment(raw: Any, source: str = "<experiment>") -> ExperimentConfig:
    """Validate an already-parsed YAML/JSON mapping."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: an experiment must be a mapping with name, teacher, students")
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def apply_overrides(raw: Any, assignments: list[str] | tuple[str, ...]) -> Any:
    """Set ``dotted.key=value`` assignments (values read as YAML) in a parsed experiment.

    Numeric path parts index lists (``students.0.bits=w4a4``); missing mapping keys are
    created (``data.options.root=/data/mnist``).
    """
    for assignment in assignments:
        path, sep, text = assignment.partition("=")
        keys = path.split(".")
        if not sep or not all(keys):
            raise ConfigError(f"override {assignment!r} must look like key.subkey=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = raw
        for depth, key in enumerate(keys):
            last = depth == len(keys) - 1
            where = ".".join(keys[: depth + 1])
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise ConfigError(f"override {path}: {where} is not an index of the list")
                key = int(key)
            elif not isinstance(node, dict):
                raise ConfigError(f"override {path}: {where} is inside a {type(node).__name__}")
            if last:
                node[key] = value
            else:
                if isinstance(node, dict) and key not in node:
                    node[key] = {}
                node = node[key]
    return raw


def load_experiment(
    path: str | Path, overrides: list[str] | tuple[str, ...] = (), profile: str | None = None
) -> ExperimentConfig:
    """Read and validate an experiment YAML file (safe_load only), with its ``profile``'s
    assignments and then ``overrides`` applied."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment file {path} does not exist")
    try:
        raw = load_yaml(path, "experiment file")
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
    if overrides or profile:
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: an experiment must be a mapping")
        raw = apply_overrides(raw, [*profile_assignments(raw, profile, path), *overrides])
    return parse_experiment(raw, str(path))


def profile_assignments(raw: dict, profile: str | None, path: Path) -> list[str]:
    if profile is None:
        return []
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, dict) or profile not in profiles:
        known = ", ".join(sorted(profiles)) if isinstance(profiles, dict) else ""
        raise ConfigError(
            f"{path} has no profile {profile!r}; "
            + (f"its profiles are: {known}" if known else "it defines no profiles")
        )
    assignments = profiles[profile]
    if not isinstance(assignments, list) or not all(isinstance(a, str) for a in assignments):
        raise ConfigError(f"{path}: profiles.{profile} must be a list of key=value strings")
    return assignments
