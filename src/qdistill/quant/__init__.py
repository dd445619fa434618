"""Quantization engine: specs and plans, fake quantizers, prepare/calibrate/convert, and
the size and bit operations of a model at the widths it uses."""

from qdistill.quant.bops import LayerCost, layer_costs, total_bops, total_macs
from qdistill.quant.calibrate import calibrate, calibration_mode
from qdistill.quant.convert import IntegerLayer, convert
from qdistill.quant.equalize import equalize_ranges
from qdistill.quant.fold import fold_batchnorm
from qdistill.quant.modules import QuantLayer, iter_quant_layers, iter_quantizers
from qdistill.quant.plan import QuantPlan
from qdistill.quant.prepare import (
    UnquantizedWarning,
    is_quantized,
    layer_specs,
    plan_of,
    quantizable_layers,
    quantize,
    unquantized_parameters,
)
from qdistill.quant.quantizer import FakeQuantizer, QParams
from qdistill.quant.size import LayerSize, ModelSize, count_parameters, model_size
from qdistill.quant.spec import (
    LayerQuantSpec,
    QuantizerSpec,
    default_act_spec,
    default_weight_spec,
    parse_layer_spec,
)

__all__ = [
    "FakeQuantizer",
    "IntegerLayer",
    "LayerCost",
    "LayerQuantSpec",
    "LayerSize",
    "ModelSize",
    "QParams",
    "QuantLayer",
    "QuantPlan",
    "QuantizerSpec",
    "UnquantizedWarning",
    "calibrate",
    "calibration_mode",
    "convert",
    "count_parameters",
    "default_act_spec",
    "default_weight_spec",
    "equalize_ranges",
    "fold_batchnorm",
    "is_quantized",
    "iter_quant_layers",
    "iter_quantizers",
    "layer_costs",
    "layer_specs",
    "model_size",
    "parse_layer_spec",
    "plan_of",
    "quantizable_layers",
    "quantize",
    "total_bops",
    "total_macs",
    "unquantized_parameters",
]
