"""Pruning: unstructured magnitude pruning with masks that training keeps."""

from qdistill.prune.magnitude import apply_masks, keep_pruned, magnitude_masks, weight_sparsity

__all__ = ["apply_masks", "keep_pruned", "magnitude_masks", "weight_sparsity"]
