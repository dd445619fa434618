"""Pruning: structured channel pruning through the dependency graph (``structured``),
rebuilding pruned models (``reshape``) and unstructured magnitude pruning with masks
that training keeps (``magnitude``)."""

from qdistill.prune.magnitude import apply_masks, keep_pruned, magnitude_masks, weight_sparsity
from qdistill.prune.structured import ChannelPruning, PruneReport, prune_channels

__all__ = [
    "ChannelPruning",
    "PruneReport",
    "apply_masks",
    "keep_pruned",
    "magnitude_masks",
    "prune_channels",
    "weight_sparsity",
]
