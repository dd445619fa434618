"""Each dataflow unit's cycle and resource formula on hand-computed cases."""

import pytest

from qdistill.hardware.dot_product import MatrixVector
from qdistill.hardware.units import (
    Elementwise,
    Fold,
    GlobalPool,
    Padding,
    Pool,
    SlidingWindow,
    Thresholding,
    bram18_for_memory,
)


def mvau(**overrides):
    fields = dict(
        name="fc:mvau", layer="fc", channels=64, pixels=1, mw=64, weight_bits=4,
        input_bits=4, input_signed=False, acc_bits=13, output_bits=4,
    )  # fmt: skip
    return MatrixVector(**{**fields, **overrides})


def test_mvau_cycles_are_mw_over_simd_times_mh_over_pe_times_pixels():
    assert mvau().cycles(Fold(1, 1)) == 64 * 64
    assert mvau().cycles(Fold(4, 8)) == (64 // 4) * (64 // 8)
    assert mvau(pixels=16).cycles(Fold(2, 2)) == 32 * 32 * 16


def test_mvau_luts_follow_finns_hls_model():
    # mult = 8 * (2 * ceil(8 / 6) - 1) * 8 = 192, adder tree = 8 * (2 * 8 - 1) = 120,
    # accumulator min(13, ceil(log2(64) + 4 + 4 - 1 + eps + 1) = 15) = 13:
    # 300 + 1.1 * 1 * (192 + 120 + 13) = 657.5 -> 657 (FINN truncates)
    assert mvau().resources(Fold(1, 8)).lut == 657
    # PE multiplies the per-PE datapath: 300 + 1.1 * 4 * 325
    assert mvau().resources(Fold(4, 8)).lut == int(300 + 1.1 * 4 * 325)
    # the data-type bound caps a loose accumulator: signed inputs, bound = 14
    assert mvau(acc_bits=32, input_signed=True).lut_acc_bits() == 14


def test_mvau_weight_memory_goes_to_bram18_by_depth_and_width():
    # depth 64*64/(1*8) = 512 words of 8*4 = 32 bits -> ceil(512/512) * ceil(32/36) = 1
    assert mvau().resources(Fold(1, 8)).bram18 == 1
    # depth 4096 of 4 bits -> ceil(4096/4096) * 1 = 1; PE=4, SIMD=8: depth 128, width 128
    assert mvau().resources(Fold(1, 1)).bram18 == 1
    assert mvau().resources(Fold(4, 8)).bram18 == 4
    assert mvau().resources(Fold(1, 1)).dsp == 0  # LUT multipliers, as FINN's HLS MVAU


@pytest.mark.parametrize(
    ("depth", "width", "expected"),
    [
        (16384, 1, 1), (16385, 1, 2), (8192, 2, 1), (4096, 4, 1), (4097, 3, 2),
        (2048, 9, 1), (1024, 18, 1), (512, 36, 1), (513, 36, 2), (512, 72, 2),
    ],
)  # fmt: skip
def test_bram18_packing(depth, width, expected):
    assert bram18_for_memory(depth, width) == expected


def test_sliding_window_cycles_and_lutram():
    window = SlidingWindow(
        name="c:sliding_window", layer="c", channels=16, pixels=64, in_h=10, in_w=10,
        out_h=8, out_w=8, kernel=(3, 3), bits=4,
    )  # fmt: skip
    # buffer (2*10 + 2 + 1) * 16 = 368; per output row max(8*9*16, 1*10*16) = 1152
    assert window.cycles(Fold(simd=1)) == 368 + 8 * 1152
    assert window.cycles(Fold(simd=16)) == 23 + 8 * 72
    # LUTRAM buffer: 300 + width 4 * ceil(368 / 38)
    assert window.resources(Fold(simd=1)).lut == 300 + 4 * 10
    # parallel window: one input value per cycle
    assert window.cycles(Fold(simd=16, parallel_window=True)) == 100 + 2


def test_depthwise_window_of_a_2x2_max_pool():
    window = SlidingWindow(
        name="p:pool_window", layer="p", channels=8, pixels=16, in_h=8, in_w=8,
        out_h=4, out_w=4, kernel=(2, 2), stride=(2, 2), bits=4, depthwise=True,
    )  # fmt: skip
    # buffer (8 + 1 + 1) * 8 = 80; rows: max(4*4*8, 2*8*8) + 4*1*7 = 156; + 1*8*8
    assert window.cycles(Fold(simd=1)) == 80 + 4 * 156 + 64
    pool = Pool(name="p:max_pool", layer="p", channels=8, pixels=16, kernel=2, bits=4)
    assert pool.cycles(Fold(pe=1)) == 8 * 4 * 16
    assert pool.cycles(Fold(pe=8)) == 4 * 16


def test_thresholding_padding_pools_and_elementwise():
    thresholds = Thresholding(
        name="t", layer="t", channels=64, pixels=1, input_bits=32, output_bits=4
    )
    assert thresholds.cycles(Fold(pe=1)) == 64
    # comparators 32 * 1 + LUTRAM 1 * 32 * 15 * ceil(64 / 64)
    assert thresholds.resources(Fold(pe=1)).lut == 32 + 480
    one_channel = Thresholding(name="t", layer="t", channels=1, pixels=64, output_bits=4)
    assert one_channel.cycles(Fold()) == 64 and one_channel.resources(Fold()).lut == 32
    padding = Padding(name="p", layer="p", channels=8, pixels=36, bits=4)
    assert padding.cycles(Fold(simd=2)) == 36 * 4
    glob = GlobalPool(name="g", layer="g", channels=64, pixels=16, bits=4)
    assert glob.cycles(Fold(pe=4)) == 16 * 16 + 16 and glob.out_bits == 8
    add = Elementwise(name="a", layer="a", channels=10, pixels=1, operation="mul", bits=13)
    assert add.cycles(Fold(pe=5)) == 2


def test_a_folding_that_does_not_divide_is_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match=r"PE=3 must divide 64 \(allowed: 1, 2, 4, 8"):
        mvau().check(Fold(3, 1))
    with pytest.raises(ValueError, match="SIMD=5 must divide 64"):
        mvau().check(Fold(1, 5))
