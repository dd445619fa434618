"""Distillation settings, validated on load (shared by the Python API and YAML files)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from qdistill.config import StrictConfig
from qdistill.train.config import TrainConfig


class FeatureTermConfig(StrictConfig):
    """One feature-level term added to the output loss.

    ``attention_transfer`` and ``feature_mse`` match (student path, teacher path)
    ``pairs``; ``afd`` learns attention weights over every pair of
    ``student_layers`` x ``teacher_layers``.
    """

    type: Literal["attention_transfer", "feature_mse", "afd"]
    pairs: list[tuple[str, str]] = Field(default_factory=list)
    student_layers: list[str] = Field(default_factory=list)
    teacher_layers: list[str] = Field(default_factory=list)
    weight: float = Field(1.0, gt=0)
    embed_dim: int = Field(32, ge=1)  # afd query/key size

    @model_validator(mode="after")
    def _layers_given(self) -> FeatureTermConfig:
        if self.type == "afd":
            if not self.student_layers or not self.teacher_layers:
                raise ValueError("afd needs student_layers and teacher_layers")
        elif not self.pairs:
            raise ValueError(f"{self.type} needs pairs: [[student_path, teacher_path], ...]")
        return self


class DistillConfig(StrictConfig):
    """Output loss (``kd_kl`` for classifiers, ``pixel_kd`` for image outputs), its
    alpha/temperature, extra feature terms, and the teacher-output cache policy
    (``auto``: cache when the teacher is frozen, inputs are not augmented and no feature
    term needs live teacher features)."""

    loss: Literal["kd_kl", "pixel_kd"] = "kd_kl"
    alpha: float = Field(0.7, ge=0.0, le=1.0)
    temperature: float = Field(8.0, gt=0.0)
    pixel_loss: Literal["l1", "l2", "charbonnier"] = "l2"
    features: list[FeatureTermConfig] = Field(default_factory=list)
    cache: Literal["auto", "off"] = "auto"

    @property
    def uses_temperature(self) -> bool:
        """Only the classifier loss softens outputs; pixel-wise KD has no temperature."""
        return self.loss == "kd_kl"


class QKDPhases(StrictConfig):
    """The three QKD phases; leave one out (or null) to skip it."""

    self_study: TrainConfig | None = None
    co_study: TrainConfig | None = None
    tutoring: TrainConfig | None = None

    @model_validator(mode="after")
    def _some_phase(self) -> QKDPhases:
        if not (self.self_study or self.co_study or self.tutoring):
            raise ValueError("QKD needs at least one of self_study, co_study, tutoring")
        return self

    @property
    def label(self) -> str:
        """The study's abbreviation of the phases run, e.g. ``SS+CS+TS``."""
        short = {"self_study": "SS", "co_study": "CS", "tutoring": "TS"}
        return "+".join(short[name] for name, _ in self.named())

    def named(self) -> list[tuple[str, TrainConfig]]:
        phases = [
            ("self_study", self.self_study),
            ("co_study", self.co_study),
            ("tutoring", self.tutoring),
        ]
        return [(name, config) for name, config in phases if config is not None]
