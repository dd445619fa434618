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

A student without ``model`` is the teacher's architecture initialised from the
teacher's weights; a student with another ``model`` starts from that model
trained in float (``pretrain``, by default the teacher's training recipe), or
from random weights with ``init: scratch``. ``distill`` makes a float or QAT
student learn from the teacher; ``method: qkd`` runs the QKD ``phases``; ``method:
half`` runs the trained float model in float16/bfloat16, keeping ``half.keep_fp32``
modules in float32. Lists under ``bits``, ``distill.alpha`` and
``distill.temperature`` are swept.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from qdistill.data import DATASETS
from qdistill.distill.config import DistillConfig, QKDPhases
from qdistill.errors import ConfigError
from qdistill.models import MODELS
from qdistill.quant import QuantPlan
from qdistill.quant.half import HalfPlan
from qdistill.quant.spec import LayerQuantSpec, parse_layer_spec
from qdistill.train import TrainConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        _check(lambda: MODELS.get(name))
        return name


class AugmentConfig(_Strict):
    """Training-input augmentation: random shifts (pixels) and Gaussian noise."""

    shift: int = Field(0, ge=0)
    noise_std: float = Field(0.0, ge=0)


class DataConfig(_Strict):
    name: str = "digits"
    options: dict[str, Any] = Field(default_factory=dict)
    augment: AugmentConfig = AugmentConfig()

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        _check(lambda: DATASETS.get(name))
        return name


class TeacherConfig(_Strict):
    model: ModelConfig
    train: TrainConfig = TrainConfig()


BitsValue = str | dict[str, Any]  # a plan: 'w4a4' or {pattern: spec}
LevelSpec = str | dict[str, Any]  # one layer spec: 'w4a4' or {bits: w4a4, weight: {...}}


def number_repeats(labels: list[str]) -> list[str]:
    """Labels made unique: one that occurs more than once gets its 1-based position,
    e.g. ``w4a4-2`` (same widths, other quantizer options)."""
    return [f"{lb}-{i + 1}" if labels.count(lb) > 1 else lb for i, lb in enumerate(labels)]


def _layer_spec(value: LevelSpec) -> LayerQuantSpec:
    spec = _check(lambda: parse_layer_spec(value))
    if spec is None:
        raise ValueError(f"{value!r} keeps layers float; give a quantization spec such as w8a8")
    return spec


class AllocationConfig(_Strict):
    """Mixed precision chosen by measured sensitivity: each stage (or layer) is quantized
    alone at ``probe`` bits (default ``low``) and scored on the validation split; the most
    sensitive get ``high`` bits, the rest ``low``, within the size ``budget`` (bytes, or a
    uniform plan such as w6a6 whose size it must not exceed). With ``levels`` (low to
    high; replaces low/high/probe) every unit is probed at every level and each gets the
    level that buys the most quality per byte. Each width is a layer spec: ``w4a4`` or a
    full one such as ``{bits: w4a4, weight: {range: learned}, act: {range: learned}}``.
    ``spend_leftover`` gives budget the measured gains leave unspent to the most sensitive
    units, a level at a time. ``label`` names the allocated plan in run names and reports
    (default ``alloc``)."""

    low: LevelSpec = "w4a4"
    high: LevelSpec = "w8a8"
    levels: list[LevelSpec] | None = None
    budget: int | str = "w6a6"
    probe: LevelSpec | None = None
    granularity: Literal["stages", "layers"] = "stages"
    calibration_batches: int = Field(8, ge=1)
    spend_leftover: bool = False
    label: str = Field("alloc", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

    @field_validator("low", "high", "probe")
    @classmethod
    def _one_spec(cls, value: LevelSpec | None) -> LevelSpec | None:
        if value is not None:
            _layer_spec(value)
        return value

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: list[LevelSpec] | None) -> list[LevelSpec] | None:
        if value is not None:
            specs = [_layer_spec(level) for level in value]
            if len(specs) < 2 or len(set(specs)) < len(specs):
                raise ValueError("levels needs at least two different specs, low to high")
        return value

    @field_validator("budget")
    @classmethod
    def _budget(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"budget must be positive bytes, got {value}")
        if isinstance(value, str):
            _check(lambda: QuantPlan.from_config(value))
        return value

    @model_validator(mode="after")
    def _levels_replace_low_high(self) -> AllocationConfig:
        if self.levels is not None and self.model_fields_set & {"low", "high", "probe"}:
            raise ValueError("give either levels or low/high/probe, not both")
        return self

    @property
    def labelled_levels(self) -> dict[str, LevelSpec]:
        """The levels, low to high, by a readable label (``w4a4``; equal short names are
        numbered ``w4a4-1``, ``w4a4-2``)."""
        levels = list(self.levels) if self.levels else [self.low, self.high]
        labels = number_repeats([_layer_spec(level).short for level in levels])
        return dict(zip(labels, levels, strict=True))

    @property
    def labelled_probes(self) -> dict[str, LevelSpec]:
        """The widths each unit is measured at, by label (all the levels, or the one
        ``probe``, by default ``low``)."""
        if self.levels:
            return self.labelled_levels
        probe = self.probe or self.low
        return {_layer_spec(probe).short: probe}


def allocation_of(bits: Any) -> AllocationConfig | None:
    """The allocation settings of a ``bits: {allocate: {...}}`` entry, else None."""
    if isinstance(bits, dict) and "allocate" in bits:
        if set(bits) != {"allocate"}:
            raise ValueError("a bits entry with 'allocate' takes no other keys")
        return AllocationConfig.model_validate(bits["allocate"] or {})
    return None


class HalfConfig(_Strict):
    """Half-precision inference (method ``half``): the type, and the modules (plan
    patterns) that stay float32."""

    dtype: Literal["float16", "bfloat16"] = "float16"
    keep_fp32: list[str] = []

    @property
    def plan(self) -> HalfPlan:
        return HalfPlan(self.dtype, tuple(self.keep_fp32))


class EqualizeConfig(_Strict):
    """Equalize activation ranges across layer pairs before quantizing (function-preserving
    rescaling, see :mod:`qdistill.quant.equalize`): ``strength`` 1 gives every channel
    entering a layer the full activation range, 0.5 balances activation and weight
    ranges; ``consumers`` (plan patterns such as ``[body]``) limits it to the pairs
    feeding those layers; ``batches`` calibration batches measure the ranges.
    ``equalize: true`` takes the defaults."""

    strength: float = Field(0.5, ge=0.0, le=1.0)
    consumers: list[str] | None = None  # plan patterns; None = every equalizable pair
    batches: int = Field(8, ge=1)


class StudentConfig(_Strict):
    name: str = Field(min_length=1)
    method: Literal["float", "ptq", "qat", "qkd", "half"]
    model: ModelConfig | None = None
    init: Literal["pretrained", "scratch"] = "pretrained"
    bits: BitsValue | list[BitsValue] | None = None
    fold_bn: bool = False
    calibration_batches: int = Field(8, ge=1)
    train: TrainConfig | None = None  # qat and float students
    pretrain: TrainConfig | None = None  # float training of a different architecture
    distill: DistillConfig | None = None  # learn from the teacher (float, qat, qkd)
    phases: QKDPhases | None = None  # qkd only
    compare_to: str | None = None  # report this student's gain over another student
    half: HalfConfig | None = None  # method half only (default: all float16)
    equalize: EqualizeConfig | None = None  # ptq, qat, qkd: equalize ranges first

    @field_validator("equalize", mode="before")
    @classmethod
    def _equalize_switch(cls, value: Any) -> Any:
        if value is True:
            return {}
        return None if value is False else value

    @field_validator("bits")
    @classmethod
    def _parse_bits(cls, value: Any) -> Any:
        for entry in value if isinstance(value, list) else [value]:
            if entry is not None and allocation_of(entry) is None:
                _check(lambda e=entry: QuantPlan.from_config(e))
        if isinstance(value, list) and not value:
            raise ValueError("bits list is empty")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StudentConfig:
        if self.method in ("ptq", "qat") and self.bits is None:
            raise ValueError(f"method {self.method} needs 'bits' (e.g. w4a4)")
        if self.method == "float" and self.bits is not None:
            raise ValueError("method float takes no 'bits'; use ptq or qat to quantize")
        if self.method == "ptq" and self.train is not None:
            raise ValueError("method ptq does not train; remove 'train' or use qat")
        if self.init == "scratch" and self.method == "ptq":
            raise ValueError("ptq of random weights is meaningless; use init: pretrained")
        if self.method == "ptq" and self.distill is not None:
            raise ValueError("method ptq does not train, so it cannot distil; use qat or qkd")
        if self.method == "half":
            extra = [k for k in ("bits", "train", "distill") if getattr(self, k) is not None]
            if extra or self.init == "scratch":
                raise ValueError(
                    "method half converts the trained float model without training; remove "
                    + (", ".join(repr(k) for k in extra) or "'init: scratch'")
                )
        elif self.half is not None:
            raise ValueError(f"'half' belongs to method half, not {self.method}")
        if self.equalize is not None and self.method not in ("ptq", "qat", "qkd"):
            raise ValueError(f"'equalize' prepares quantization; method {self.method} has none")
        if self.method == "qkd":
            if self.phases is None:
                raise ValueError("method qkd needs 'phases' (self_study, co_study, tutoring)")
            if self.train is not None:
                raise ValueError("method qkd trains per phase; move 'train' under 'phases'")
        elif self.phases is not None:
            raise ValueError(f"'phases' belong to method qkd, not {self.method}")
        return self

    @property
    def trains(self) -> bool:
        """QAT, QKD and distilled students always train; other float students when given
        ``train`` or from scratch."""
        return self.method in ("qat", "qkd") or (
            self.method == "float"
            and (self.train is not None or self.init == "scratch" or self.distill is not None)
        )

    @property
    def distillation(self) -> DistillConfig | None:
        """The distillation settings in force: QKD's co-study and tutoring distil with the
        defaults when none are given; a self-study-only QKD does not distil at all."""
        if self.method == "qkd" and not (self.phases.co_study or self.phases.tutoring):
            return None
        if self.distill is None and self.method == "qkd":
            return DistillConfig()
        return self.distill

    def bits_list(self) -> list[BitsValue | None]:
        return list(self.bits) if isinstance(self.bits, list) else [self.bits]


class ExportConfig(_Strict):
    """Export runs (by run or student name; empty = every quantized run) after training."""

    runs: list[str] = Field(default_factory=list)
    formats: list[Literal["onnx", "onnx-qdq", "qonnx"]] = Field(
        default_factory=lambda: ["onnx-qdq"], min_length=1
    )
    samples: int = Field(64, ge=1)


class BenchmarkConfig(_Strict):
    """Measure selected runs (by run or student name) on deployment backends."""

    runs: list[str] = Field(min_length=1)
    backends: list[Literal["torch", "torch_compile", "ort_float", "ort_int8", "cuda"]] | None = None
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 8, 64, 256], min_length=1)
    repeats: int = Field(10, ge=2)
    time_limit_s: float = Field(10.0, gt=0)


class EvaluationConfig(_Strict):
    """Extra evaluation settings: LPIPS backbone weights (a local torchvision AlexNet state
    dict; or $QDISTILL_LPIPS_WEIGHTS) and per-epoch sample images of super-resolution runs."""

    lpips_weights: str | None = None
    sample_images: bool = False


class ExperimentConfig(_Strict):
    name: str = Field(min_length=1)
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


def _check(action: Callable[[], Any]) -> Any:
    """Run a registry/plan check, turning its ConfigError into a pydantic-located error."""
    try:
        return action()
    except ConfigError as err:
        raise ValueError(str(err)) from None


def format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "(top level)"
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
    path: str | Path, overrides: list[str] | tuple[str, ...] = ()
) -> ExperimentConfig:
    """Read and validate an experiment YAML file (safe_load only), with ``overrides``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file") from None
    if overrides:
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: an experiment must be a mapping")
        raw = apply_overrides(raw, overrides)
    return parse_experiment(raw, str(path))
