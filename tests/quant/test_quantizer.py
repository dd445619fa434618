import pytest
import torch

from qdistill.quant import FakeQuantizer, QuantizerSpec, default_act_spec, default_weight_spec


def _weight_quantizer(bits=4, channels=2, **overrides):
    spec = QuantizerSpec(
        **{**default_weight_spec(bits).to_config(), "range": "minmax", **overrides}
    )
    return FakeQuantizer(spec, "weight", channel_axis=0, num_channels=channels)


def test_per_channel_weights_by_hand():
    w = torch.tensor([[0.9, -2.0, 0.5], [0.1, 0.25, -0.4]])
    out = _weight_quantizer(4)(w)
    # row 0: s = 2/7, w/s = [3.15, -7, 1.75] -> [3, -7, 2]
    assert torch.allclose(out[0], torch.tensor([6 / 7, -2.0, 4 / 7]))
    # row 1: s = 0.4/7, w/s = [1.75, 4.375, -7] -> [2, 4, -7]
    assert torch.allclose(out[1], torch.tensor([2, 4, -7]) * (0.4 / 7))


def test_per_tensor_weights_share_one_scale():
    w = torch.tensor([[1.0, -2.0, 0.5], [0.1, 0.2, -0.4]])
    q = _weight_quantizer(4, granularity="per_tensor")
    scale, _ = q.weight_qparams(w)
    assert scale.shape == (1,) and scale.item() == pytest.approx(2 / 7)
    out = q(w)
    assert torch.allclose(out[1], torch.tensor([0.0, 2 / 7, -2 / 7]))


def test_binary_weights_use_mean_abs_scale():
    w = torch.tensor([[0.5, -1.5, 0.0, 2.0], [1.0, 1.0, -1.0, -1.0]])
    out = _weight_quantizer(1)(w)
    assert out.tolist() == [[1.0, -1.0, 1.0, 1.0], [1.0, 1.0, -1.0, -1.0]]


def test_two_bit_narrow_weights_are_ternary():
    w = torch.randn(2, 50)
    q = _weight_quantizer(2)
    out = q(w)
    scale, _ = q.weight_qparams(w)
    levels = torch.unique(torch.round(out / scale[:, None]))
    assert set(levels.tolist()) <= {-1.0, 0.0, 1.0}


def test_mse_range_beats_minmax_at_low_bits():
    w = torch.randn(4, 256)
    w[:, 0] = 8.0  # one outlier per channel ruins min/max
    minmax = _weight_quantizer(3, channels=4)(w)
    mse = _weight_quantizer(3, channels=4, range="mse")(torch.nn.Parameter(w))
    assert ((mse - w) ** 2).sum() < 0.5 * ((minmax - w) ** 2).sum()


def test_activation_ema_and_minmax_observers():
    ema = FakeQuantizer(QuantizerSpec(bits=8, symmetric=False, range="ema", momentum=0.5), "act")
    ema.train()
    ema(torch.tensor([-1.0, 1.0]))
    ema(torch.tensor([-3.0, 3.0]))
    assert ema.running_min.item() == pytest.approx(-2.0)
    assert ema.running_max.item() == pytest.approx(2.0)
    minmax = FakeQuantizer(QuantizerSpec(bits=8, symmetric=False, range="minmax"), "act")
    minmax.train()
    minmax(torch.tensor([-1.0, 5.0]))
    minmax(torch.tensor([-3.0, 1.0]))
    assert (minmax.running_min.item(), minmax.running_max.item()) == (-3.0, 5.0)
    assert minmax.scale.item() == pytest.approx(8 / 255)


def test_ranges_freeze_in_eval_mode():
    q = FakeQuantizer(default_act_spec(8), "act")
    q.train()
    q(torch.tensor([0.0, 1.0]))
    q.eval()
    q(torch.tensor([0.0, 100.0]))
    assert q.running_max.item() == pytest.approx(1.0)


def test_symmetric_activation_sign_is_decided_by_first_batch():
    relu_fed = FakeQuantizer(QuantizerSpec(bits=4, symmetric=True), "act")
    relu_fed.train()
    relu_fed(torch.tensor([0.0, 3.0]))
    assert (relu_fed.q_min, relu_fed.q_max) == (0, 15)
    signed = FakeQuantizer(QuantizerSpec(bits=4, symmetric=True), "act")
    signed.train()
    signed(torch.tensor([-1.0, 3.0]))
    assert (signed.q_min, signed.q_max) == (-8, 7)


def test_percentile_range_ignores_outliers():
    q = FakeQuantizer(
        QuantizerSpec(bits=8, symmetric=False, range="percentile", percentile=99.0), "act"
    )
    q.train()
    x = torch.cat([torch.linspace(0, 1, 1000), torch.tensor([1000.0])])
    q(x)
    assert q.running_max.item() < 2.0


def test_ste_gradient_is_one_inside_and_zero_where_clipped():
    q = FakeQuantizer(QuantizerSpec(bits=2, symmetric=False, range="minmax"), "act")
    q.train()
    q(torch.tensor([0.0, 1.5]))  # s = 0.5, z = 0, codes 0..3
    q.eval()
    x = torch.tensor([-1.0, 0.2, 1.0, 2.0], requires_grad=True)
    q(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0]


def test_binary_ste_gradient():
    q = _weight_quantizer(1)
    w = torch.tensor([[0.5, -3.0], [1.0, -1.0]], requires_grad=True)  # scales 1.75, 1.0
    q(w).sum().backward()
    assert w.grad.tolist() == [[1.0, 0.0], [1.0, 1.0]]


def test_learned_scale_gradient_by_hand():
    spec = QuantizerSpec(bits=2, symmetric=True, signed=True, narrow_range=False, range="learned")
    q = FakeQuantizer(spec, "act")  # codes -2..1
    q(torch.tensor([-1.0, 1.0]))  # initialise, then set the scale by hand
    with torch.no_grad():
        q.scale.fill_(0.5)
    x = torch.tensor([0.3, 2.0, -0.1, -3.0], requires_grad=True)
    out = q(x)
    assert out.tolist() == [0.5, 0.5, 0.0, -1.0]
    out.sum().backward()
    # d/ds: in range round(x/s) - x/s = 0.4 and 0.2; clipped: q_max = 1 and q_min = -2.
    # LSQ gradient factor 1 / sqrt(4 elements * q_max 1) = 0.5.
    assert q.scale.grad.item() == pytest.approx(0.5 * (0.4 + 1.0 + 0.2 - 2.0))
    assert x.grad.tolist() == [1.0, 0.0, 1.0, 0.0]


def test_learned_weight_scale_starts_at_mse_optimum_and_trains():
    spec = default_weight_spec(2)
    assert spec.range == "learned"
    q = FakeQuantizer(spec, "weight", channel_axis=0, num_channels=3)
    w = torch.randn(3, 40)
    q(w)
    expected, _ = q.weight_qparams(w, use_mse=True)
    assert torch.allclose(q.scale.detach(), expected)
    loss = ((q(w) - w) ** 2).sum()
    loss.backward()
    assert q.scale.grad is not None and q.scale.grad.abs().sum() > 0


def test_state_dict_round_trip_restores_ranges():
    q = FakeQuantizer(QuantizerSpec(bits=4, symmetric=True), "act")
    q.train()
    q(torch.tensor([-2.0, 1.0]))
    fresh = FakeQuantizer(QuantizerSpec(bits=4, symmetric=True), "act")
    fresh.load_state_dict(q.state_dict())
    fresh.eval()
    assert fresh.is_ready and fresh.signed is True
    x = torch.randn(20)
    q.eval()
    assert torch.equal(fresh(x), q(x))


def test_sixteen_bits_is_nearly_lossless():
    q = FakeQuantizer(default_weight_spec(16), "weight", num_channels=4)
    w = torch.randn(4, 64)
    assert (q(w) - w).abs().max() < 1e-3
