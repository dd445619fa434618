"""Input-quantized average pooling: a quantization point only a plan rule naming the
pooling places, kept through checkpoints, convert(), exports and the dataflow estimate."""

import onnx
import pytest
import torch

from qdistill import calibrate, convert, quantize
from qdistill.errors import ConfigError
from qdistill.export import export_model
from qdistill.hardware.dataflow import DataflowError, dataflow_units
from qdistill.models import build_model, load_model, save_model
from qdistill.quant.modules import QuantAdaptiveAvgPool2d

PLAN = {"*": "w4a4", "@first": {"bits": "w4a4", "act": {"symmetric": True}}, "pool.0": "a4"}


@pytest.fixture
def pooled(digits):
    torch.manual_seed(0)
    model = quantize(build_model("small_cnn", (1, 8, 8), 10), PLAN, fold_bn=True)
    calibrate(model, [digits.train.x[:128], digits.train.x[128:256]])
    return model.eval()


def test_only_a_rule_naming_the_pooling_quantizes_its_input(pooled):
    assert isinstance(pooled.pool[0], QuantAdaptiveAvgPool2d)
    plain = quantize(build_model("small_cnn", (1, 8, 8), 10), "w4a4")
    assert type(plain.pool[0]) is torch.nn.AdaptiveAvgPool2d  # a wildcard does not
    with pytest.raises(ConfigError, match=r"average poolings \(pool.0\) take @pooling or a rule"):
        quantize(build_model("small_cnn", (1, 8, 8), 10), {"*": "w4a4", "pool": "a4"})
    with pytest.raises(ConfigError, match="names an average pooling, which has no weights"):
        quantize(build_model("small_cnn", (1, 8, 8), 10), {"*": "w4a4", "pool.0": "w4a4"})
    x = torch.randn(4, 1, 8, 8)
    features = pooled.features(x)
    expected = pooled.classifier(pooled.pool[0].input_quantizer(features).mean((2, 3)))
    assert torch.allclose(pooled(x), expected)


def test_checkpoint_and_convert_keep_it(pooled, digits, tmp_path):
    path = tmp_path / "pooled.safetensors"
    save_model(path, pooled, model_name="small_cnn", model_options={}, input_shape=(1, 8, 8),
               num_outputs=10, fold_bn=True)  # fmt: skip
    loaded, _ = load_model(path)
    x = digits.test.x[:32]
    with torch.no_grad():
        assert torch.equal(loaded(x), pooled(x))
        assert torch.allclose(convert(pooled)(x), pooled(x), atol=1e-5)


def test_qonnx_and_finn_exports_quantize_the_pooling_input(pooled, digits, tmp_path):
    for fmt in ("qonnx", "finn"):
        report = export_model(pooled, tmp_path / f"{fmt}.onnx", fmt, digits.test.x[:32])
        assert report.passed and report.comparison.max_abs_diff < 1e-6  # float sums vary by CPU
        ops = [n.op_type for n in onnx.load(str(tmp_path / f"{fmt}.onnx")).graph.node]
        pool = "AveragePool" if fmt == "finn" else "ReduceMean"  # FINN's QuantAvgPool2d form
        assert ops[ops.index(pool) - 1] == "Quant"
        if fmt == "finn":
            assert ops[ops.index(pool) : ops.index(pool) + 4] == [
                "AveragePool",
                "Mul",
                "Trunc",
                "Mul",
            ]


def test_the_dataflow_estimate_maps_a_quantized_global_pool(pooled):
    units = dataflow_units(pooled, (1, 8, 8))
    # FINN pools the square 4 x 4 map as one window; the sum is thresholded again
    assert [u.kind for u in units][-7:] == [
        "mvau", "sliding_window", "pool", "thresholding", "mvau", "elementwise", "elementwise",
    ]  # fmt: skip
    assert units[-4].input_bits == 4 + 4
    unpooled = quantize(build_model("small_cnn", (1, 8, 8), 10), "w4a4")
    unpooled.train()
    unpooled(torch.randn(8, 1, 8, 8))
    with pytest.raises(DataflowError, match=r"add a plan rule naming it, e.g. \{'pool.0': 'a8'\}"):
        dataflow_units(unpooled.eval(), (1, 8, 8))


def test_the_pooling_selector_quantizes_every_average_pooling():
    plan = {"*": "w8a8", "@pooling": "a8"}
    model = quantize(build_model("small_cnn", (1, 8, 8), 10), plan)
    assert isinstance(model.pool[0], QuantAdaptiveAvgPool2d)
    assert model.pool[0].input_quantizer.spec.bits == 8
    exact = quantize(build_model("small_cnn", (1, 8, 8), 10), {**plan, "pool.0": "a4"})
    assert exact.pool[0].input_quantizer.spec.bits == 4  # a rule naming it wins
    with pytest.raises(ConfigError, match="no average pooling for @pooling"):
        quantize(build_model("mlp", (1, 8, 8), 10), plan)
    with pytest.raises(ConfigError, match="names an average pooling, which has no weights"):
        quantize(build_model("small_cnn", (1, 8, 8), 10), {"*": "w8a8", "@pooling": "w8a8"})


def test_onnxruntime_runs_integer_kernels_through_a_quantized_global_pooling(digits, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    kernels = {}
    for label, plan in (("float head", "w8a8"), ("pooled", {"*": "w8a8", "@pooling": "a8"})):
        torch.manual_seed(0)
        model = quantize(build_model("small_cnn", (1, 8, 8), 10), plan, fold_bn=True)
        calibrate(model, [digits.train.x[:128]])
        path = tmp_path / "model.onnx"
        report = export_model(model.eval(), path, "onnx-qdq", digits.test.x[:32])
        assert report.passed and bool(report.hints) == (label == "float head")
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        kernels[label] = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    assert "Conv" in kernels["float head"]  # the last convolution runs in float (hinted)
    assert "QLinearGlobalAveragePool" in kernels["pooled"]
    assert not {"Conv", "FusedConv", "ReduceMean", "DequantizeLinear"} & set(kernels["pooled"])
