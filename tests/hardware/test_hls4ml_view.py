"""The hls4ml-style view: multipliers by reuse factor, DSP for wide weights, BRAM."""

import pytest

from qdistill.errors import ConfigError
from qdistill.hardware.dot_product import MatrixVector
from qdistill.hardware.hls4ml_view import hls4ml_layer, hls4ml_view, valid_reuse_factor
from qdistill.hardware.units import Padding


def unit(bits=4, mw=64, mh=64, pixels=1):
    return MatrixVector(
        name="fc:mvau", layer="fc", channels=mh, pixels=pixels, mw=mw, weight_bits=bits,
        input_bits=bits, acc_bits=16,
    )  # fmt: skip


def test_multipliers_luts_and_bram_at_a_reuse_factor():
    layer = hls4ml_layer(unit(), 16)
    assert (layer.multipliers, layer.dsp, layer.cycles) == (256, 0, 16)
    # per product (2 * ceil(8 / 6) - 1) * 8 = 24 LUTs, plus an 8-bit adder each
    assert layer.lut == 256 * (24 + 8)
    # 64 * 64 * 4 bits in 36-bit columns 16 deep: ceil(16384 / 576) = 29
    assert layer.bram18 == 29
    assert hls4ml_layer(unit(), 1).bram18 == 0  # R = 1: weights in registers


def test_wide_weights_multiply_in_dsps():
    layer = hls4ml_layer(unit(bits=10), 4)
    assert layer.dsp == layer.multipliers == 1024
    assert hls4ml_layer(unit(bits=8), 4).dsp == 0


def test_reuse_factor_is_made_to_divide_and_conv_cycles_scale_with_pixels():
    assert valid_reuse_factor(64, 10, 7) == 8
    assert valid_reuse_factor(3, 1, 100) == 3
    with pytest.raises(ConfigError, match="reuse factor must be at least 1"):
        valid_reuse_factor(4, 4, 0)
    view = hls4ml_view([Padding(name="p", layer="p", channels=1, pixels=4), unit(pixels=9)], 4)
    assert len(view) == 1 and view[0].cycles == 4 * 9
