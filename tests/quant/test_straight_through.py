"""A QuantLinear trains through one autograd node on the CPU; it must compute what the
composed path (one node per fake quantizer) computes, values, gradients and ranges."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qdistill import calibrate, quantize
from qdistill.quant import straight_through
from qdistill.quant.modules import QuantLinear


def _composed(layer, x):
    return F.linear(*layer._quantized_operands(x))


@pytest.mark.parametrize(
    "plan",
    [
        "w4a4",  # asymmetric EMA input range, per-channel weights
        {"bits": "w8a8", "act": {"symmetric": True, "range": "minmax"}},
        {
            "bits": "w2a4",
            "weight": {"granularity": "per_tensor", "power_of_two": True, "range": "minmax"},
        },
        "w16a16",  # no integer bias
    ],
)
@pytest.mark.parametrize("shape", [(32, 24), (4, 8, 24)])
def test_one_node_path_computes_the_composed_path(plan, shape):
    torch.manual_seed(0)
    model = quantize(nn.Sequential(nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 5)), plan)
    x = torch.randn(*shape) * 3
    calibrate(model, [x])
    fast, composed = model, copy.deepcopy(model)
    assert straight_through.straight_through_applies(fast[0], x)
    # training (ranges observed), then evaluation on inputs its ranges clip
    for mode, inputs in (("train", x), ("eval", x * 10)):
        results = []
        for net, path in ((fast, None), (composed, _composed)):
            net.train(mode == "train")
            leaf = inputs.clone().requires_grad_()
            hidden = net[0](leaf) if path is None else path(net[0], leaf)
            out = net[2](hidden.relu()) if path is None else path(net[2], hidden.relu())
            (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
            results.append((out.detach(), leaf.grad, [p.grad.clone() for p in net.parameters()]))
            net.zero_grad()
        (out_fast, grad_fast, params_fast), (out_comp, grad_comp, params_comp) = results
        # the composed path adds its integer bias as b + (grid - b), off the grid by a rounding
        assert torch.allclose(out_fast, out_comp, rtol=0, atol=1e-5)
        assert torch.allclose(grad_fast, grad_comp, rtol=0, atol=1e-6)
        for fast_grad, comp_grad in zip(params_fast, params_comp, strict=True):
            assert torch.allclose(fast_grad, comp_grad, rtol=1e-6, atol=1e-6)
        for name, buffer in fast.state_dict().items():  # observed ranges moved alike
            assert torch.equal(buffer, composed.state_dict()[name]), name
    assert (grad_fast == 0).any()  # clipped inputs pass no gradient


def test_layers_it_cannot_take_keep_the_composed_path():
    x = torch.randn(8, 24)
    for plan in ({"bits": "w4a4", "weight": {"range": "mse"}}, "w1a1",
                 {"bits": "w4a4", "act": {"range": "learned"}}):  # fmt: skip
        layer = quantize(nn.Sequential(nn.Linear(24, 4)), plan)[0]
        assert isinstance(layer, QuantLinear)
        assert not straight_through.straight_through_applies(layer, x)
    layer = quantize(nn.Sequential(nn.Linear(24, 4)), "w4a4")[0]
    layer.input_quantizer.fake_quant_enabled = False  # calibration
    assert not straight_through.straight_through_applies(layer, x)
