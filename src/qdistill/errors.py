"""Errors the user can fix.

Every exception derived from :class:`QdistillError` carries a one-line message that
says what is wrong and what to do about it. The CLI prints that line and exits
with status 2; any other exception is a bug in qdistill.
"""

from __future__ import annotations


class QdistillError(Exception):
    """Base class for problems with the user's input (config, data, model, checkpoint)."""


class ConfigError(QdistillError):
    """A configuration value (YAML key, plan, bit width, option) is invalid."""


class UnknownNameError(ConfigError):
    """A registry lookup (model, dataset, optimiser, ...) used a name nobody registered."""


class DatasetError(QdistillError):
    """A dataset the user pointed to is missing, incomplete or not in the expected format."""


class CheckpointError(QdistillError):
    """A checkpoint file is missing, corrupt, or does not fit the model."""


class NonFiniteLossError(QdistillError):
    """Training produced a NaN or infinite loss and was stopped."""


class DivergenceError(QdistillError):
    """Training diverged: the loss exploded against its start, or the model ended no
    better than chance."""


class ShapeMismatchError(QdistillError):
    """Two tensors or models that must agree in shape do not."""


class OutputError(QdistillError):
    """An output location cannot be written: not a folder, no permission, disk full."""


class RunsFailedError(QdistillError):
    """Runs of a sweep failed twice (a crashed worker, a lost node); the finished runs
    are recorded and the same command runs only what is missing."""


class ConstraintsUnmetError(QdistillError):
    """No candidate of a search met its constraints; the measured candidates are kept."""
