import pytest
import torch

from qdistill.quant.qmath import (
    dequantize_codes,
    integer_range,
    qparams_from_range,
    quantize_codes,
)


@pytest.mark.parametrize(
    ("bits", "signed", "narrow", "expected"),
    [
        (8, True, False, (-128, 127)),
        (8, True, True, (-127, 127)),
        (8, False, False, (0, 255)),
        (4, True, False, (-8, 7)),
        (4, True, True, (-7, 7)),
        (2, True, True, (-1, 1)),  # ternary
        (1, True, False, (-1, 1)),  # binary codes {-1, +1}
        (1, False, False, (0, 1)),
        (16, True, False, (-32768, 32767)),
    ],
)
def test_integer_range(bits, signed, narrow, expected):
    assert integer_range(bits, signed, narrow) == expected


def test_asymmetric_qparams_by_hand():
    # [-1, 3] on 2 unsigned bits: s = 4/3, z = 0 - round(-1 / (4/3)) = -round(-0.75) = 1
    scale, zp = qparams_from_range(torch.tensor([-1.0]), torch.tensor([3.0]), 0, 3, False)
    assert scale.item() == pytest.approx(4 / 3)
    assert zp.item() == 1
    codes = quantize_codes(torch.tensor([-1.0, 0.0, 3.0]), scale, zp, 0, 3)
    assert codes.tolist() == [0, 1, 3]  # zero is exactly representable


def test_symmetric_qparams_by_hand():
    scale, zp = qparams_from_range(torch.tensor([-2.0]), torch.tensor([1.0]), -7, 7, True)
    assert scale.item() == pytest.approx(2 / 7)
    assert zp.item() == 0


def test_range_is_widened_to_include_zero():
    scale, zp = qparams_from_range(torch.tensor([0.5]), torch.tensor([2.0]), 0, 15, False)
    assert scale.item() == pytest.approx(2 / 15)
    assert zp.item() == 0


def test_rounding_is_half_to_even_and_clipped():
    one, zero = torch.tensor([1.0]), torch.tensor([0], dtype=torch.int32)
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 100.0, -100.0])
    assert quantize_codes(x, one, zero, -8, 7).tolist() == [0, 2, 2, 0, -2, 7, -8]


def test_per_channel_codes_use_each_channels_scale():
    x = torch.tensor([[1.0, 2.0, -3.0], [1.0, 2.0, -3.0]])
    scale = torch.tensor([1.0, 0.5])
    zp = torch.tensor([0, 1], dtype=torch.int32)
    codes = quantize_codes(x, scale, zp, -8, 7, axis=0)
    assert codes.tolist() == [[1, 2, -3], [3, 5, -5]]
    back = dequantize_codes(codes, scale, zp, axis=0)
    assert back.tolist() == [[1.0, 2.0, -3.0], [1.0, 2.0, -3.0]]


def test_binary_codes():
    codes = quantize_codes(
        torch.tensor([0.3, -0.1, 0.0]),
        torch.ones(1),
        torch.zeros(1, dtype=torch.int32),
        -1,
        1,
        binary=True,
    )
    assert codes.tolist() == [1, -1, 1]


def test_codes_match_pytorch_fake_quant_bitwise():
    x = torch.randn(1000) * 3
    scale = torch.tensor([0.137])
    zp = torch.tensor([5], dtype=torch.int32)
    codes = quantize_codes(x, scale, zp, 0, 15)
    fq = torch.fake_quantize_per_tensor_affine(x, scale, zp, 0, 15)
    assert torch.equal(dequantize_codes(codes, scale, zp), fq)


def test_bias_codes_saturate_instead_of_wrapping():
    from qdistill.quant.qmath import bias_codes

    codes = bias_codes(torch.tensor([0.3, -0.3, 1e-3]), torch.tensor(1e-10))
    assert codes.tolist() == [2**31 - 128, -(2**31 - 128), 10_000_000]
