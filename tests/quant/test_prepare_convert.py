import pytest
import torch
from torch import nn

from qdistill.errors import ConfigError
from qdistill.quant import (
    IntegerLayer,
    QuantLayer,
    calibrate,
    convert,
    fold_batchnorm,
    iter_quant_layers,
    layer_specs,
    plan_of,
    quantize,
)
from qdistill.quant.qmath import dequantize_codes


class Mixed(nn.Module):
    """Every quantizable layer type, BatchNorm, and a residual add."""

    def __init__(self):
        super().__init__()
        self.conv1d = nn.Conv1d(2, 4, 3, padding=1)
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.up = nn.ConvTranspose2d(8, 8, 2, stride=2, groups=2)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4, bias=False)
        self.head = nn.Linear(8 * 8 * 8 + 4 * 5, 10)

    def forward(self, x):
        seq = self.conv1d(x.flatten(2)[:, :, :10].reshape(-1, 2, 5)).flatten(1)
        y = torch.relu(self.bn(self.conv(x)))
        y = self.down(torch.relu(self.up(y))) + y
        return self.head(torch.cat([y.flatten(1), seq], 1))


PLANS = [
    "w8a8",
    "w4a4",
    "w2a2",
    "w1a1",
    "w16a16",
    "w4",
    {"*": "w4a4", "@first": "w8a8", "head": "float"},
    {"bits": "w4a8", "weight": {"symmetric": False, "granularity": "per_tensor"}},
    {"bits": "w3a3", "weight": {"range": "mse"}, "act": {"symmetric": True}},
]


@pytest.mark.parametrize("plan", PLANS, ids=str)
def test_convert_reproduces_fake_quant(plan):
    model = Mixed().eval()
    x = torch.randn(16, 1, 8, 8)
    prepared = quantize(model, plan)
    calibrate(prepared, [x[:8], x[8:]])
    prepared.eval()
    integer = convert(prepared)
    assert any(isinstance(m, IntegerLayer) for m in integer.modules())
    expected, got = prepared(x), integer(x)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
    assert torch.equal(got.argmax(1), expected.argmax(1))
    # integer weight codes dequantize to exactly the fake-quantized weights
    for name, layer in iter_quant_layers(prepared):
        if layer.weight_quantizer is None:
            continue
        int_layer = integer.get_submodule(name)
        fq = layer.weight_quantizer(layer.weight).detach()
        if layer.weight_quantizer.binary:
            deq = int_layer.weight_codes.float() * int_layer.weight_scale.reshape(
                [-1 if d == int_layer.weight_axis else 1 for d in range(fq.dim())]
            )
        else:
            deq = dequantize_codes(
                int_layer.weight_codes.int(),
                int_layer.weight_scale,
                int_layer.weight_zero_point,
                int_layer.weight_axis,
            )
        assert torch.equal(deq, fq), name


def test_integer_weights_are_stored_as_integers():
    prepared = quantize(nn.Sequential(nn.Linear(4, 3)), "w4a8")
    calibrate(prepared, [torch.randn(4, 4)])
    layer = convert(prepared)[0]
    assert layer.weight_codes.dtype == torch.int8
    assert layer.weight_codes.abs().max() <= 7


def test_quantize_keeps_parameters_and_original_model():
    model = Mixed()
    prepared = quantize(model, "w4a4")
    assert not any(isinstance(m, QuantLayer) for m in model.modules())
    assert set(dict(model.named_parameters())) <= set(dict(prepared.named_parameters()))
    inplace = quantize(model, "w4a4", inplace=True)
    assert inplace is model


def test_qat_step_updates_weights_and_learned_scales():
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    prepared = quantize(model, "w2a2")
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    calibrate(prepared, [x])
    prepared.train()
    opt = torch.optim.SGD(prepared.parameters(), lr=0.1)
    before = {k: v.detach().clone() for k, v in prepared.named_parameters()}
    nn.functional.cross_entropy(prepared(x), y).backward()
    opt.step()
    changed = {k for k, v in prepared.named_parameters() if not torch.equal(v, before[k])}
    assert "0.weight" in changed and "2.weight_quantizer.scale" in changed


def test_plan_of_recreates_structure():
    prepared = quantize(Mixed(), {"*": "w4a4", "head": "w8a8", "conv1d": "float"})
    again = quantize(Mixed(), plan_of(prepared).to_config())
    assert layer_specs(again) == layer_specs(prepared)
    assert "conv1d" not in layer_specs(prepared)


def test_prepare_errors():
    with pytest.raises(ConfigError, match="no Linear"):
        quantize(nn.Sequential(nn.ReLU()), "w4a4")
    with pytest.raises(ConfigError, match="already quantized"):
        quantize(quantize(nn.Linear(2, 2), "w4a4"), "w4a4")


def test_a_single_layer_model_is_quantized_and_converted():
    prepared = quantize(nn.Linear(3, 2), "w8a8")
    assert isinstance(prepared, QuantLayer)
    x = torch.randn(5, 3)
    calibrate(prepared, [x])
    assert torch.allclose(convert(prepared)(x), prepared.eval()(x), atol=1e-5)


def test_convert_requires_calibration_and_calibration_requires_data():
    prepared = quantize(nn.Sequential(nn.Linear(2, 2)), "w4a4")
    with pytest.raises(ConfigError, match="calibrate"):
        prepared.eval()(torch.randn(3, 2))  # evaluating uncalibrated ranges is an error
    with pytest.raises(ConfigError, match="calibrate"):
        convert(prepared)
    with pytest.raises(ConfigError, match="empty"):
        calibrate(prepared, [])


def test_calibration_does_not_change_bn_statistics_or_mode():
    model = Mixed().train()
    prepared = quantize(model, "w8a8")
    before = prepared.bn.running_mean.clone()
    calibrate(prepared, [torch.randn(8, 1, 8, 8)])
    assert torch.equal(prepared.bn.running_mean, before)
    assert prepared.training


def _with_stats(model):
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())

    def forward(self, x):
        if x.sum() > -1e9:  # data-dependent control flow defeats torch.fx
            return self.body(x)
        return x


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4)),
        nn.Sequential(nn.ConvTranspose2d(1, 4, 2, stride=2), nn.BatchNorm2d(4)),
        Untraceable(),
    ],
    ids=["conv", "linear", "conv_transpose", "untraceable"],
)
def test_fold_batchnorm_is_inference_equivalent(model):
    model = _with_stats(model)
    x = (
        torch.randn(3, 1, 6, 6)
        if not isinstance(model[0] if isinstance(model, nn.Sequential) else None, nn.Linear)
        else torch.randn(3, 5)
    )
    expected = model(x)
    folded = fold_batchnorm(model)
    assert len(folded) == 1
    assert not any(isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) for m in model.modules())
    assert torch.allclose(model(x), expected, atol=1e-5)


def test_integer_bias_lies_on_the_accumulator_grid():
    torch.manual_seed(0)
    layer = quantize(nn.Linear(6, 3), "w4a4")
    x = torch.randn(16, 6)
    calibrate(layer, [x])
    layer.eval()(x)
    s = layer.input_quantizer.last_scale * layer.weight_quantizer.last_scale
    bias = layer.quantized_bias()
    assert torch.allclose(bias / s, torch.round(bias / s), atol=1e-4)
    assert not torch.equal(bias, layer.bias)  # it really was rounded
    bias.sum().backward()  # straight-through: the float bias gets the gradient
    assert torch.equal(layer.bias.grad, torch.ones(3))
    integer = convert(layer)
    assert integer.bias_codes.dtype == torch.int32 and integer.bias is None
    assert torch.allclose(integer(x), layer(x), atol=1e-5)
    float_bias = quantize(nn.Linear(6, 3), {"bits": "w4a4", "bias": "float"})
    calibrate(float_bias, [x])
    float_bias.eval()(x)
    assert float_bias.quantized_bias() is float_bias.bias
    weights_only = quantize(nn.Linear(6, 3), "w4")  # no accumulator grid without an input scale
    assert not weights_only.layer_spec.integer_bias


class _Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True, proj_size=12)  # not unpacked
        self.norm = nn.LayerNorm(12)
        self.scale = nn.Parameter(torch.ones(12))  # a raw parameter in the computation
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        return self.head(self.norm(self.lstm(x)[0][:, -1]) * self.scale)


def test_parameters_no_rule_can_quantize_are_named_loudly_or_refused():
    from qdistill.quant import UnquantizedWarning, unquantized_parameters

    with pytest.warns(UnquantizedWarning, match=r"scale, lstm.weight_ih_l0") as caught:
        model = quantize(_Recurrent(), "w8a8")
    assert "norm" not in str(caught[0].message)  # normalisation stays float by design
    assert unquantized_parameters(model)[0] == "scale"
    with pytest.raises(ConfigError, match=r"stay float.*strict=True"):
        quantize(_Recurrent(), "w8a8", strict=True)
    attention = nn.MultiheadAttention(16, 2, add_bias_kv=True)  # not unpacked
    with pytest.warns(UnquantizedWarning, match=r"in_proj_weight.*out_proj.weight"):
        quantize(_Attention(attention), "w8a8")
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
    assert unquantized_parameters(quantize(plain, "w4a4", strict=True)) == []


class _Attention(nn.Module):
    def __init__(self, attention):
        super().__init__()
        self.attention = attention
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        return self.head(self.attention(x, x, x)[0])
