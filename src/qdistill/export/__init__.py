"""Export to onnx (float), onnx-qdq (int8/int4/int16 QuantizeLinear/DequantizeLinear) and
qonnx (Quant nodes of any bit width), each verified by running the written file."""

from qdistill.export.api import ExportReport, export_model, verify_file
from qdistill.export.graph import ExportError
from qdistill.export.qonnx_format import runtime_ir_for_qonnx
from qdistill.export.verify import FORMATS, Comparison

__all__ = [
    "FORMATS",
    "Comparison",
    "ExportError",
    "ExportReport",
    "export_model",
    "runtime_ir_for_qonnx",
    "verify_file",
]
