"""rounding: half_up rounds ties towards +inf (as FINN's thresholds compare) everywhere a
code is formed: fake quantization (fixed and learned scales), integer codes, convert(),
and the QONNX export; exports that cannot express it refuse."""

import onnx
import pytest
import torch
from torch import nn

from qdistill.errors import ConfigError
from qdistill.export import ExportError, export_model
from qdistill.quant import calibrate, convert, quantize
from qdistill.quant.kernels import fake_quantize, learned_fake_quantize_half_up
from qdistill.quant.qmath import quantize_codes
from qdistill.quant.quantizer import FakeQuantizer
from qdistill.quant.spec import QuantizerSpec, parse_layer_spec

TIES = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.25, -0.75])
HALF_EVEN = [-2.0, -2.0, 0.0, 0.0, 2.0, 2.0, 0.0, -1.0]
HALF_UP = [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 0.0, -1.0]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("covers_range", [True, False])
def test_fake_quantize_rounds_ties_as_asked(fused, covers_range):
    one = torch.ones(1)
    for half_up, expected in ((False, HALF_EVEN), (True, HALF_UP)):
        out = fake_quantize(
            TIES, one, None, -8, 7, fused=fused, covers_range=covers_range, half_up=half_up
        )
        assert out.tolist() == expected


def test_integer_codes_follow_the_same_rounding():
    zero = torch.zeros(1, dtype=torch.int32)
    codes = quantize_codes(TIES, torch.ones(1), zero, -8, 7, half_up=True)
    assert codes.tolist() == [int(v) for v in HALF_UP]
    assert quantize_codes(TIES, torch.ones(1), zero, -8, 7).tolist() == [int(v) for v in HALF_EVEN]


def test_fixed_activation_quantizer_with_zero_point_rounds_half_up():
    quantizer = FakeQuantizer(
        QuantizerSpec(bits=4, symmetric=False, signed=False, rounding="half_up"), "act"
    )
    quantizer.train()
    quantizer(torch.tensor([0.0, 1.5]))  # range [0, 1.5]: scale 0.1, zero point 0
    quantizer.eval()
    x = torch.tensor([0.05, 0.15, 0.25, 0.35]) * quantizer.scale.item() / 0.1
    q = quantizer.qparams()
    codes = quantize_codes(x, *q)
    assert torch.equal(quantizer(x), (codes - q.zero_point).float() * q.scale)


def test_learned_half_up_has_the_lsq_gradients_away_from_ties():
    torch.manual_seed(0)
    x = torch.randn(4, 6) * 2
    zero = torch.zeros(6)
    grads = []
    for ours in (True, False):
        leaf = x.clone().requires_grad_()
        scale = torch.full((6,), 0.3, requires_grad=True)
        if ours:
            out = learned_fake_quantize_half_up(leaf, scale, zero, -8, 7, 1, 0.5)
        else:
            out = torch._fake_quantize_learnable_per_channel_affine(
                leaf, scale, zero, 1, -8, 7, 0.5
            )
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        grads.append((out.detach(), leaf.grad, scale.grad))
    (out_a, gx_a, gs_a), (out_b, gx_b, gs_b) = grads
    assert torch.equal(out_a, out_b)
    assert torch.equal(gx_a, gx_b)
    assert torch.allclose(gs_a, gs_b, atol=1e-5)
    assert (gx_a == 0).any()  # some values clipped


def test_learned_half_up_rounds_ties_up():
    out = learned_fake_quantize_half_up(TIES, torch.ones(1), torch.zeros(1), -8, 7, None, 1.0)
    assert out.tolist() == HALF_UP


def test_rounding_is_parsed_and_checked():
    spec = parse_layer_spec({"bits": "w4a4", "act": {"rounding": "half_up"}})
    assert spec.act.half_up and not spec.weight.half_up
    with pytest.raises(ConfigError, match="rounding 'up' is unknown; use half_even or half_up"):
        parse_layer_spec({"bits": "w4a4", "act": {"rounding": "up"}})


def _tied_model_and_inputs(rounding: str = "half_up"):
    """A fixed-point MLP whose inputs (pixel / 16, as digits) land on many ties."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 5))
    x = torch.randint(0, 17, (64, 16)).float() / 16
    fixed_point = {"power_of_two": True, "rounding": rounding}
    plan = {"bits": "w4a4", "weight": fixed_point, "act": {**fixed_point, "symmetric": True}}
    prepared = quantize(model, plan)
    calibrate(prepared, [x])
    prepared.eval()
    return prepared, x


def test_convert_matches_fake_quant_on_ties():
    prepared, x = _tied_model_and_inputs()
    first = prepared[0].input_quantizer
    ratio = x / first.scale
    assert ((ratio - ratio.floor()) == 0.5).any()  # the inputs do tie
    assert torch.allclose(convert(prepared)(x), prepared(x), atol=1e-5)
    half_even, _ = _tied_model_and_inputs("half_even")
    assert not torch.equal(half_even(x), prepared(x))  # the ties change the function


def test_qonnx_export_writes_half_up_and_matches_exactly(tmp_path):
    prepared, x = _tied_model_and_inputs()
    report = export_model(prepared, tmp_path / "m.onnx", "qonnx", x)
    assert report.passed and report.comparison.max_abs_diff < 1e-5
    modes = {
        attr.s.decode()
        for node in onnx.load(tmp_path / "m.onnx").graph.node
        if node.op_type == "Quant"
        for attr in node.attribute
        if attr.name == "rounding_mode"
    }
    assert modes == {"HALF_UP"}


def test_qdq_export_refuses_half_up(tmp_path):
    prepared, x = _tied_model_and_inputs()
    with pytest.raises(ExportError, match="QuantizeLinear rounds ties to even"):
        export_model(prepared, tmp_path / "m.onnx", "onnx-qdq", x)
    assert not (tmp_path / "m.onnx").exists()


def test_qat_step_with_learned_half_up_ranges():
    torch.manual_seed(0)
    plan = {"bits": "w2a2", "weight": {"rounding": "half_up"}, "act": {"rounding": "half_up"}}
    model = quantize(nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)), plan)
    model.train()
    model(torch.randn(16, 8)).square().mean().backward()
    scales = [p.grad for n, p in model.named_parameters() if n.endswith("scale")]
    assert scales and all(g is not None and torch.isfinite(g).all() for g in scales)
    assert any(g.abs().sum() > 0 for g in scales)
