"""Export to onnx (float), onnx-qdq (8/16-bit and 4-bit-in-8 QuantizeLinear/DequantizeLinear) and
qonnx (Quant nodes of any bit width), each verified by running the written file."""

from qdistill.export.api import ExportReport, export_model, saved_export, verify_file
from qdistill.export.graph import ExportError
from qdistill.export.hls4ml_emulation import HLSCheck, check_hls4ml_compatible, hls4ml_emulate
from qdistill.export.qonnx_format import runtime_ir_for_qonnx
from qdistill.export.verify import FORMATS, Comparison, Tolerance

__all__ = [
    "FORMATS",
    "Comparison",
    "ExportError",
    "ExportReport",
    "HLSCheck",
    "Tolerance",
    "check_hls4ml_compatible",
    "export_model",
    "hls4ml_emulate",
    "runtime_ir_for_qonnx",
    "saved_export",
    "verify_file",
]
