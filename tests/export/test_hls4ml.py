"""hls4ml's emulated firmware against qdistill's integer model (the fpga extra)."""

import importlib.util
import shutil

import pytest
import torch
from torch import nn

from qdistill.export import ExportError, check_hls4ml_compatible, hls4ml_emulate
from qdistill.quant import calibrate, quantize

FIXED_POINT = {
    "bits": "w4a8",
    "weight": {"power_of_two": True, "granularity": "per_tensor"},
    "act": {"power_of_two": True, "symmetric": True},
}


def _prepared(model, spec=FIXED_POINT, shape=(16,)):
    torch.manual_seed(0)
    x = torch.randn(32, *shape)
    q = quantize(model.eval(), spec)
    calibrate(q, [x])
    return q.eval(), x


def test_compatibility_check_names_the_layer_and_the_fix():
    mlp = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    q, _ = _prepared(mlp, "w4a8")
    with pytest.raises(ExportError, match=r"layer '0': weight scales are not powers of two"):
        check_hls4ml_compatible(q)
    per_channel = {**FIXED_POINT, "weight": {"power_of_two": True}}
    with torch.no_grad():
        mlp[0].weight[0] *= 16  # one channel four octaves above the rest
    q, _ = _prepared(mlp, per_channel)
    with pytest.raises(ExportError, match="per_tensor"):
        check_hls4ml_compatible(q)
    asymmetric = {**FIXED_POINT, "act": {"power_of_two": True}}
    q, _ = _prepared(mlp, asymmetric)
    with pytest.raises(ExportError, match="zero point is not 0"):
        check_hls4ml_compatible(q)
    q, _ = _prepared(mlp)
    check_hls4ml_compatible(q)  # fixed point everywhere: accepted


def test_power_of_two_scales():
    q, x = _prepared(nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)))
    q(x)
    for layer in (q[0], q[2]):
        for scale in (layer.weight_quantizer.last_scale, layer.input_quantizer.last_scale):
            mantissa, _ = torch.frexp(scale)
            assert torch.all(mantissa == 0.5)
    learned = {**FIXED_POINT, "weight": {**FIXED_POINT["weight"], "range": "learned"}}
    q, x = _prepared(nn.Sequential(nn.Linear(16, 4)), learned)
    q.train()(x).sum().backward()  # the learned scale still gets a gradient
    assert torch.frexp(q[0].weight_quantizer.last_scale)[0].item() == 0.5
    assert q[0].weight_quantizer.scale.grad is not None


needs_hls4ml = pytest.mark.skipif(
    importlib.util.find_spec("hls4ml") is None,
    reason="hls4ml is not installed: pip install -e '.[fpga]' (make test-all does)",
)
needs_compiler = pytest.mark.skipif(shutil.which("g++") is None, reason="no g++ for hls4ml")


@needs_hls4ml
@needs_compiler
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_hls4ml_firmware_equals_the_integer_model(tmp_path, kind):
    if kind == "mlp":
        model = nn.Sequential(
            nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 5)
        )
        q, x = _prepared(model)
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 8, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 8 * 8, 10),
        )
        q, x = _prepared(model, shape=(1, 8, 8))
    result = hls4ml_emulate(q, x, tmp_path)
    assert result.exact and result.max_abs_diff == 0.0 and result.samples == 32


@needs_hls4ml
@needs_compiler
def test_layers_hls4ml_cannot_take_are_named(tmp_path):
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.PixelShuffle(2)
    )
    q, x = _prepared(model, shape=(1, 8, 8))
    with pytest.raises(ExportError, match="Unsupported operation type: DepthToSpace"):
        hls4ml_emulate(q, x, tmp_path)
