"""qdistill: quantize, distil, prune and measure neural networks for real hardware."""

from qdistill.quant import QuantPlan, calibrate, convert, quantize

__version__ = "0.2.0"

__all__ = ["QuantPlan", "__version__", "calibrate", "convert", "quantize"]
