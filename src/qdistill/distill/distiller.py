"""The Distiller: the training loss of a student learning from a teacher.

It combines an output loss (Hinton KD or pixel-wise KD) with optional feature
terms, reads teacher outputs from a cache when allowed, and in co-study mode
adds the teacher's own loss towards the student so both update together. Its
``loss`` method is the ``loss_fn`` of :func:`qdistill.train.fit`; the models are
never edited, features are captured by module path with forward hooks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, Literal

import torch
from torch import nn

from qdistill.distill.cache import TeacherOutputCache
from qdistill.distill.capture import FeatureCapture
from qdistill.distill.config import DistillConfig
from qdistill.distill.output_losses import build_output_loss
from qdistill.distill.terms import FeatureTerm, build_term
from qdistill.errors import ConfigError

Mode = Literal["offline", "co_study"]


def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    if isinstance(batch, (tuple, list)):
        x = batch[0]
        y = batch[1] if len(batch) > 1 else None
        index = batch[2] if len(batch) > 2 else None
        return x, y, index
    return batch, None, None


class Distiller(nn.Module):
    """Holds the feature terms (trainable) and refers to, not owns, the two models."""

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        config: DistillConfig,
        mode: Mode = "offline",
        cache: TeacherOutputCache | None = None,
    ) -> None:
        super().__init__()
        if isinstance(config.alpha, list) or isinstance(config.temperature, list):
            raise ConfigError("a Distiller needs single alpha/temperature values, not sweeps")
        if cache is not None and mode != "offline":
            raise ConfigError("teacher outputs can only be cached for a frozen (offline) teacher")
        self._models = (student, teacher)  # a tuple: not registered as submodules
        self.config = config
        self.mode = mode
        self.cache = cache
        self.output_loss = build_output_loss(config)
        self.terms = nn.ModuleList(build_term(t) for t in config.features)
        self._captures: tuple[FeatureCapture, FeatureCapture] | None = None
        self._ready = not config.features

    @property
    def student(self) -> nn.Module:
        return self._models[0]

    @property
    def teacher(self) -> nn.Module:
        return self._models[1]

    @contextmanager
    def active(self) -> Iterator[Distiller]:
        """Hooks on both models while training; an offline teacher is frozen in eval mode."""
        teacher = self.teacher
        was_training = teacher.training
        grad_flags = [p.requires_grad for p in teacher.parameters()]
        if self.mode == "offline":
            teacher.eval()
            teacher.requires_grad_(False)
        with ExitStack() as stack:
            if self.config.features:
                student_paths = [p for t in self.terms for p in t.student_paths]
                teacher_paths = [p for t in self.terms for p in t.teacher_paths]
                self._captures = (
                    stack.enter_context(FeatureCapture(self.student, student_paths, "student")),
                    stack.enter_context(FeatureCapture(teacher, teacher_paths, "teacher")),
                )
            try:
                yield self
            finally:
                self._captures = None
                teacher.train(was_training)
                for param, flag in zip(teacher.parameters(), grad_flags, strict=True):
                    param.requires_grad_(flag)

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Training loss of ``model`` (the student) on one batch; see the module doc."""
        x, y, index = _unpack(batch)
        out = model(x)
        student_features = self._captures[0].take() if self._captures else {}
        use_cache = self.cache is not None and index is not None
        if use_cache:
            reference, teacher_features = self.cache.lookup(index), {}
        elif self.mode == "co_study":
            reference = self.teacher(x)
            teacher_features = self._captures[1].take() if self._captures else {}
        else:
            with torch.no_grad():
                reference = self.teacher(x)
            teacher_features = self._captures[1].take() if self._captures else {}
        loss = self.output_loss(out, reference.detach(), y)
        if self.terms:
            if not self._ready:
                self._setup_terms(student_features, teacher_features)
            detached = {k: v.detach() for k, v in teacher_features.items()}
            loss = loss + sum(term(student_features, detached) for term in self.terms)
        if self.mode == "co_study":  # the teacher moves towards the student too
            loss = loss + self.output_loss(reference, out.detach(), y)
        return loss

    def _setup_terms(self, student: dict, teacher: dict) -> None:
        for term in self.terms:
            term.setup(student, teacher)
        self._ready = True

    @torch.no_grad()
    def prepare(self, batch: Any) -> None:
        """Size the feature terms' learnable parts on one batch, before the optimiser exists."""
        if self._ready:
            return
        x, _, _ = _unpack(batch)
        student_was_training = self.student.training
        self.student.eval()  # no BatchNorm or range updates from this probe
        try:
            with self.active():
                self.student(x)
                self.teacher(x)
                self._setup_terms(self._captures[0].take(), self._captures[1].take())
        finally:
            self.student.train(student_was_training)

    def trainable_terms(self) -> list[FeatureTerm]:
        return [term for term in self.terms if any(True for _ in term.parameters())]
