"""qdistill: quantize, distil, prune and measure neural networks for real hardware."""

from qdistill.prune import ChannelPruning, prune_channels
from qdistill.quant import QuantPlan, calibrate, convert, quantize

__version__ = "0.2.0"

__all__ = [
    "ChannelPruning",
    "QuantPlan",
    "__version__",
    "calibrate",
    "convert",
    "prune_channels",
    "quantize",
]
