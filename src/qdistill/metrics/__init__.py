"""Quality metrics."""

from qdistill.metrics.classification import evaluate_classifier, top1_accuracy

__all__ = ["evaluate_classifier", "top1_accuracy"]
