"""Task families (classification, super-resolution) behind one protocol and registry."""

from qdistill.tasks import classification, super_resolution  # noqa: F401  (register them)
from qdistill.tasks.base import TASKS, Baseline, Metric, Panel, Task, make_task, sample_path

__all__ = ["TASKS", "Baseline", "Metric", "Panel", "Task", "make_task", "sample_path"]
