"""Attention and LSTM/GRU layers rebuilt from Linears: same function, then quantized,
converted and exported like any Linear."""

import pytest
import torch
from torch import nn

from qdistill.quant import calibrate, convert, quantize, unquantized_parameters
from qdistill.quant.modules import QuantLinear, iter_quant_layers
from qdistill.quant.unpacked import UnpackedMultiheadAttention, UnpackedRecurrent
from sequence_models import SequenceClassifier


def _max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kdim", [None, 12])
def test_unpacked_attention_computes_what_multihead_attention_computes(batch_first, kdim):
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(16, 4, batch_first=batch_first, kdim=kdim, vdim=kdim)
    attention.eval()
    unpacked = UnpackedMultiheadAttention(attention).eval()
    q, k, v = torch.randn(3, 5, 16), torch.randn(3, 7, kdim or 16), torch.randn(3, 7, kdim or 16)
    if not batch_first:
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))
    padding = torch.rand(3, 7) > 0.7
    padding[:, 0] = False
    blocked = torch.rand(5, 7) > 0.8
    blocked[:, 0] = False
    for options in (
        {},
        {"key_padding_mask": padding},
        {"attn_mask": blocked, "need_weights": False},
        {"attn_mask": blocked.float() * -3, "average_attn_weights": False},
        {"attn_mask": blocked.repeat(3 * 4, 1, 1), "key_padding_mask": padding},
    ):
        expected, expected_weights = attention(q, k, v, **options)
        output, weights = unpacked(q, k, v, **options)
        assert _max_diff(output, expected) < 1e-6, options
        if expected_weights is None:
            assert weights is None
        else:
            assert _max_diff(weights, expected_weights) < 1e-6, options
    x = torch.randn(5, 16)
    if kdim is None:  # unbatched self-attention
        assert _max_diff(unpacked(x, x, x)[0], attention(x, x, x)[0]) < 1e-6


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_unpacked_recurrent_layers_compute_what_torch_computes(kind, batch_first, bidirectional):
    torch.manual_seed(0)
    recurrent = kind(6, 8, num_layers=2, batch_first=batch_first, bidirectional=bidirectional)
    recurrent.eval()
    unpacked = UnpackedRecurrent(recurrent).eval()
    x = torch.randn(3, 5, 6)
    expected, expected_state = recurrent(x)
    output, state = unpacked(x)
    assert output.shape == expected.shape and _max_diff(output, expected) < 1e-6
    for got, want in zip(
        state if kind is nn.LSTM else [state],
        expected_state if kind is nn.LSTM else [expected_state],
        strict=True,
    ):
        assert _max_diff(got, want) < 1e-6
    directions = 2 if bidirectional else 1
    batch = 3 if batch_first else 5
    h0 = torch.randn(2 * directions, batch, 8)
    given = (h0, torch.randn_like(h0)) if kind is nn.LSTM else h0
    assert _max_diff(unpacked(x, given)[0], recurrent(x, given)[0]) < 1e-6
    single = torch.randn(5, 6)  # unbatched
    assert _max_diff(unpacked(single)[0], recurrent(single)[0]) < 1e-6


def test_quantize_unpacks_attention_and_recurrent_layers_and_leaves_nothing_float():
    torch.manual_seed(0)
    model = SequenceClassifier().eval()
    x = torch.randn(64, 7, 6)
    quantized = quantize(model, "w8a8", strict=True)  # strict: nothing may stay float
    assert unquantized_parameters(quantized) == []
    names = [name for name, _ in iter_quant_layers(quantized)]
    assert names == [
        "embed",
        "attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.out_proj",
        "lstm.cells.l0.ih", "lstm.cells.l0.hh", "lstm.cells.l0_reverse.ih",
        "lstm.cells.l0_reverse.hh",
        "gru.cells.l0.ih", "gru.cells.l0.hh",
        "head",
    ]  # fmt: skip
    assert isinstance(model.attention, nn.MultiheadAttention)  # the float model is untouched
    calibrate(quantized, [x[:32], x[32:]])
    quantized.eval()
    with torch.no_grad():
        reference, fake = model(x), quantized(x)
        integer = convert(quantized)(x)
    relative_rms = (fake - reference).square().mean().sqrt() / reference.std()
    assert 0 < relative_rms < 0.05  # quantized (not float), and close at 8 bits
    assert _max_diff(integer, fake) < 1e-4  # convert() computes what fake quantization does


def test_out_proj_style_linear_subclasses_are_quantized_but_changed_forwards_are_not():
    class Renamed(nn.Linear):  # same computation: quantized as a Linear
        pass

    class Doubled(nn.Linear):  # its own forward: left alone, and reported
        def forward(self, x):
            return 2 * super().forward(x)

    model = nn.Sequential(Renamed(4, 4), Doubled(4, 2))
    with pytest.warns(UserWarning, match=r"1\.weight"):
        quantized = quantize(model, "w8a8")
    assert isinstance(quantized[0], QuantLinear) and type(quantized[1]) is Doubled


def test_a_hidden_state_quantizer_measures_the_whole_sequence_once_per_batch():
    torch.manual_seed(0)
    lstm = nn.LSTM(4, 6, batch_first=True)
    x = torch.randn(16, 9, 4)
    quantized = quantize(lstm, "w8a8")
    calibrate(quantized, [x])  # one batch: its range is the range, no EMA
    as_calibrated = quantize(lstm, "w8")  # calibration: quantized weights, float inputs
    with torch.no_grad():
        outputs = as_calibrated(x)[0]
    states = torch.cat([torch.zeros(16, 1, 6), outputs[:, :-1]], dim=1)  # what hh reads
    observed = quantized.cells.l0.hh.input_quantizer
    assert observed.running_min.item() == pytest.approx(states.min().item(), abs=1e-6)
    assert observed.running_max.item() == pytest.approx(states.max().item(), abs=1e-6)
