"""Cost estimators: size, parameter counts (latency, energy and FPGA models come later)."""

from qdistill.hardware.size import LayerSize, ModelSize, count_parameters, model_size

__all__ = ["LayerSize", "ModelSize", "count_parameters", "model_size"]
