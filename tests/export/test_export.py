import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from qdistill.errors import ConfigError
from qdistill.export import ExportError, export_model, runtime_ir_for_qonnx, verify_file
from qdistill.export.graph import RUNTIME_IR_VERSION
from qdistill.models import build_model
from qdistill.quant import calibrate, quantize


@pytest.fixture(scope="module")
def digits_inputs():
    from qdistill.data import build_dataset

    data = build_dataset("digits")
    return data.train.x[:128], data.test.x[:48]


def prepared(name, bits, digits_inputs, **options):
    torch.manual_seed(0)
    model = build_model(name, (1, 8, 8), 10, **options)
    q = quantize(model, bits)
    calibrate(q, [digits_inputs[0][:64], digits_inputs[0][64:]])
    return q.eval()


CASES = [
    ("small_cnn", "w8a8", "onnx-qdq"),
    ("small_cnn", "w4a4", "onnx-qdq"),
    ("small_cnn", "w16a16", "onnx-qdq"),
    ("small_cnn", "w8a8", "qonnx"),
    ("small_cnn", "w2a2", "qonnx"),
    ("small_cnn", "w1a1", "qonnx"),
    ("kl_mlp_student", "w8a8", "onnx-qdq"),
    ("kl_mlp_student", "w4a4", "onnx-qdq"),
    ("kl_mlp_student", "w3a3", "qonnx"),
]


@pytest.mark.parametrize(("name", "bits", "fmt"), CASES, ids=lambda v: str(v))
def test_exports_reproduce_the_quantized_model(tmp_path, digits_inputs, name, bits, fmt):
    model = prepared(name, bits, digits_inputs)
    path = tmp_path / f"{name}-{bits}.onnx"
    report = export_model(model, path, fmt, digits_inputs[1])
    assert report.passed and path.is_file()
    assert report.comparison.agreement == 1.0
    # exact but for rare rounding ties (onnx divides by the scale, qdistill multiplies by
    # its reciprocal), which flip one code by one step
    assert report.comparison.mean_abs_diff <= 1e-5
    assert report.comparison.max_abs_diff <= 1e-3
    assert set(report.layers.values()) == {bits}
    saved = json.loads((tmp_path / f"{name}-{bits}.onnx.report.json").read_text())
    assert saved["comparison"]["samples"] == 48
    graph = onnx.load(str(path)).graph
    ops = {n.op_type for n in graph.node}
    if fmt == "onnx-qdq":
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
        int_weights = [
            i
            for i in graph.initializer
            if ".weight_q" in i.name
            and i.data_type != onnx.TensorProto.FLOAT
            and "scale" not in i.name
        ]
        assert int_weights  # weights are stored as integers
    else:
        assert ops & {"Quant", "BipolarQuant"}
        assert graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1  # FINN: batch 1


def test_float_onnx_export_of_plain_and_quantized_models(tmp_path, digits_inputs):
    model = build_model("small_cnn", (1, 8, 8), 10).eval()
    report = export_model(model, tmp_path / "f.onnx", "onnx", digits_inputs[1])
    assert report.comparison.max_abs_diff < 1e-4 and report.layers == {}
    q = prepared("small_cnn", "w4a4", digits_inputs)
    report = export_model(q, tmp_path / "fq.onnx", "onnx", digits_inputs[1])
    with torch.no_grad():  # the float computation: quantizers bypassed
        assert report.passed and not any(
            n.op_type == "QuantizeLinear" for n in onnx.load(str(tmp_path / "fq.onnx")).graph.node
        )


def test_float_export_holds_no_arithmetic_on_constants(tmp_path, digits_inputs):
    # A convolution without bias was given a zero bias computed at run time from the
    # weight's shape and the input's type: onnxruntime then fused no BatchNorm into it.
    model = build_model("small_cnn", (1, 8, 8), 10).eval()
    export_model(model, tmp_path / "f.onnx", "onnx", digits_inputs[1])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "f.onnx")).graph.node]
    assert not {"Expand", "CastLike", "Cast"} & set(ops) and ops.count("BatchNormalization") == 3
    assert "BatchNormalization" not in _runtime_ops(tmp_path / "f.onnx")


def test_onnx_qdq_refuses_widths_it_cannot_hold(tmp_path, digits_inputs):
    model = prepared("small_cnn", {"*": "w8a8", "features.1.0": "w2a8"}, digits_inputs)
    with pytest.raises(ExportError, match=r"layer 'features.1.0' has 2-bit weights.*qonnx"):
        export_model(model, tmp_path / "x.onnx", "onnx-qdq", digits_inputs[1])
    binary = prepared("kl_mlp_student", "w1a8", digits_inputs)
    with pytest.raises(ExportError, match="binary weights"):
        export_model(binary, tmp_path / "b.onnx", "onnx-qdq", digits_inputs[1])
    assert not list(tmp_path.glob("*.onnx"))


def test_bad_requests(tmp_path, digits_inputs):
    model = build_model("mlp", (1, 8, 8), 10)
    with pytest.raises(ConfigError, match="format 'tflite' is unknown"):
        export_model(model, tmp_path / "x", "tflite", digits_inputs[1])
    with pytest.raises(ExportError, match="needs a quantized model"):
        export_model(model, tmp_path / "x", "onnx-qdq", digits_inputs[1])


def test_verification_catches_a_corrupted_export(tmp_path, digits_inputs):
    model = prepared("small_cnn", "w8a8", digits_inputs)
    path = tmp_path / "m.onnx"
    export_model(model, path, "onnx-qdq", digits_inputs[1])
    comparison, passed = verify_file(path, model, digits_inputs[1], "onnx-qdq")
    assert passed and comparison.mean_abs_diff < 1e-5
    proto = onnx.load(str(path))
    target = next(i for i in proto.graph.initializer if i.name.startswith("classifier.weight_q"))
    codes = numpy_helper.to_array(target).copy()
    codes[:, : codes.shape[1] // 2] *= -1  # flip the sign of half the classifier's weights
    target.CopyFrom(numpy_helper.from_array(codes, target.name))
    onnx.save(proto, str(path))
    comparison, passed = verify_file(path, model, digits_inputs[1], "onnx-qdq")
    assert not passed and comparison.mean_abs_diff > 0.1 * comparison.output_scale


def _runtime_refuses_ir(ir_version: int) -> bool:
    """Whether the installed onnxruntime refuses a model stamped with ``ir_version``."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = ir_version
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except (ort.capi.onnxruntime_pybind11_state.Fail, RuntimeError):
        return True
    return False


def test_qonnx_executor_gets_a_runtime_compatible_ir_version():
    """onnx 1.23 stamps IR 14 on new models; onnxruntime 1.31 refuses it (1.32 accepts it).
    qonnx's executor builds a model per node, so qdistill lowers the IR version while it
    runs; whichever pair is installed, the executor must work inside the context."""
    import onnxruntime as ort
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    model = ModelWrapper(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    model.model.ir_version = 10
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    assert not _runtime_refuses_ir(RUNTIME_IR_VERSION)
    if _runtime_refuses_ir(onnx.IR_VERSION):  # the trap exists with this onnx/onnxruntime pair
        with pytest.raises((ort.capi.onnxruntime_pybind11_state.Fail, RuntimeError)):
            execute_onnx(model, {"x": x})
    with runtime_ir_for_qonnx():
        out = execute_onnx(model, {"x": x})["y"]
    assert out.tolist() == [[0.0, 0.5, 2.0]]


def test_untraceable_model_gives_a_clear_error(tmp_path):
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x) if x.sum().item() > 0 else -self.fc(x)

    with pytest.raises(ExportError, match=r"torch\.export could not trace"):
        export_model(Branchy(), tmp_path / "b.onnx", "onnx", torch.ones(2, 4))


@pytest.mark.parametrize(("bits", "fmt"), [("w8a8", "onnx-qdq"), ("w4a4", "qonnx")])
def test_super_resolution_exports_compare_by_psnr(tmp_path, bits, fmt):
    torch.manual_seed(0)
    lr = torch.rand(8, 1, 12, 12)
    model = quantize(build_model("espcn", (1, 12, 12), 1, scale=2), bits)
    calibrate(model, [lr])
    report = export_model(model.eval(), tmp_path / "sr.onnx", fmt, lr)
    assert report.passed and report.comparison.agreement is None
    assert report.comparison.psnr_db > 60
    assert {n.op_type for n in onnx.load(str(tmp_path / "sr.onnx")).graph.node} >= {"DepthToSpace"}


def _runtime_ops(path) -> list[str]:
    """The op types onnxruntime runs after its graph optimisations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.optimized_model_filepath = str(path) + ".opt.onnx"
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]


@pytest.mark.parametrize(("channels", "hidden_is_float"), [(1, False), (3, False), (1, True)])
def test_thin_integer_convolutions_get_zero_channels_up_to_four(
    tmp_path, channels, hidden_is_float
):
    # onnxruntime's QLinearConv ran twice as fast on 4 input channels as on 1-3
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1)
    ).eval()
    x = torch.randn(16, channels, 10, 10)
    # without a quantized next layer the first convolution's output stays float
    plan = {"0": "w8a8", "2": "float"} if hidden_is_float else "w8a8"
    quantized = quantize(model, plan)
    calibrate(quantized, [x])
    path = tmp_path / "thin.onnx"
    report = export_model(quantized.eval(), path, "onnx-qdq", x)
    assert report.passed and report.comparison.max_abs_diff < 1e-6
    proto = onnx.load(str(path))
    first = next(n for n in proto.graph.node if n.op_type == "Conv")
    producers = {o: n for n in proto.graph.node for o in n.output}
    weights = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    pads = [n for n in proto.graph.node if n.op_type == "Pad"]
    if hidden_is_float:  # computed in float by onnxruntime: nothing to gain
        assert not pads and weights[first.input[1]].shape == (8, 1, 3, 3)
        return
    codes = weights[producers[first.input[1]].input[0]]
    assert codes.shape == (8, 4, 3, 3) and not codes[:, channels:].any()
    (pad,) = pads
    assert producers[first.input[0]].input[0] == pad.output[0]
    assert weights[pad.input[1]].tolist() == [0, 0, 0, 0, 0, 4 - channels, 0, 0]
    assert pad.input[2] == producers[first.input[0]].input[2]  # the input's zero point
    assert "QLinearConv" in _runtime_ops(path)


def test_a_convolution_with_a_float_output_reads_constant_float_weights(tmp_path):
    # onnxruntime computes it in float either way; from a constant it uses its fast
    # channels-blocked kernels (behind a DequantizeLinear it did not)
    torch.manual_seed(0)
    lr = torch.rand(4, 1, 12, 12)
    model = quantize(build_model("espcn", (1, 12, 12), 1, act="relu").eval(), "w8a8")
    calibrate(model, [lr])
    path = tmp_path / "sr.onnx"
    report = export_model(model.eval(), path, "onnx-qdq", lr)
    assert report.passed and report.comparison.max_abs_diff < 1e-6
    proto = onnx.load(str(path))
    last = [n for n in proto.graph.node if n.op_type == "Conv"][-1]
    weights = {i.name: i for i in proto.graph.initializer}
    assert weights[last.input[1]].data_type == onnx.TensorProto.FLOAT
    expected = model.upsampling[0].weight_quantizer(model.upsampling[0].weight).detach()
    assert np.array_equal(numpy_helper.to_array(weights[last.input[1]]), expected.numpy())
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    optimized = onnx.load(options.optimized_model_filepath).graph.node
    assert any(n.op_type == "Conv" and n.domain == "com.microsoft.nchwc" for n in optimized)


@pytest.mark.parametrize(
    ("name", "options", "integer_convs"),
    [  # the last convolution's output is the model's (float) output
        ("espcn", {"act": "tanh"}, 0),  # tanh does not commute with quantization
        ("espcn", {"act": "relu"}, 2),
        ("espcn_finn", {}, 2),  # the second one through ReLU and a nearest-neighbour Resize
    ],
)
def test_sr_qdq_runs_integer_convolutions_where_it_can(tmp_path, name, options, integer_convs):
    torch.manual_seed(0)
    lr = torch.rand(8, 1, 12, 12)
    model = build_model(name, (1, 12, 12), 1, **options)
    model(lr)  # BatchNorm statistics of espcn_finn
    model = quantize(model.eval(), "w8a8", fold_bn=name == "espcn_finn")
    calibrate(model, [lr])
    path = tmp_path / "sr.onnx"
    assert export_model(model.eval(), path, "onnx-qdq", lr).passed
    assert _runtime_ops(path).count("QLinearConv") == integer_convs


def test_agreement_ignores_near_ties():
    from qdistill.export.verify import compare_outputs

    reference = np.array([[1.0, 1.000001, 0.0], [3.0, 0.0, 0.0]], np.float32)
    exported = reference + np.array([[4e-6, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    assert exported[0].argmax() != reference[0].argmax()  # the near-tie did flip
    assert compare_outputs(reference, exported).agreement == 1.0  # the tie is not decisive
    flipped = np.array([[1.0, 1.0, 0.0], [0.0, 3.0, 0.0]], np.float32)
    assert compare_outputs(reference, flipped).agreement == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_torchvision_models_export_to_qdq(tmp_path, name):
    import torchvision

    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(weights=None, num_classes=10)
    x = torch.rand(8, 3, 64, 64)
    with torch.no_grad():  # realistic BatchNorm statistics: random init is degenerate
        for _ in range(10):
            net.train()(x)
    net.eval()
    model = quantize(net, "w8a8")
    calibrate(model, [x])
    report = export_model(model.eval(), tmp_path / f"{name}.onnx", "onnx-qdq", x)
    assert report.passed and report.comparison.agreement == 1.0


def test_integer_formats_refuse_models_with_float_leftovers(tmp_path):
    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 16, batch_first=True, proj_size=12)  # not unpacked
            self.head = nn.Linear(12, 4)

        def forward(self, x):
            return self.head(self.lstm(x)[0][:, -1])

    with pytest.warns(UserWarning, match="stay float"):
        model = quantize(Recurrent(), "w8a8")
    x = torch.randn(4, 5, 8)
    calibrate(model, [x])
    for fmt in ("onnx-qdq", "qonnx"):
        with pytest.raises(ExportError, match=r"would claim integer.*lstm.weight_ih_l0"):
            export_model(model, tmp_path / f"{fmt}.onnx", fmt, x)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("bits", ["w4a4", "w8a4", "w4a8"])
def test_four_bit_qdq_runs_through_max_pooling_in_onnxruntime(tmp_path, bits):
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10),
    )  # fmt: skip
    x = torch.randn(32, 1, 8, 8)
    quantized = quantize(model, bits)
    calibrate(quantized, [x])
    report = export_model(quantized, tmp_path / "m.onnx", "onnx-qdq", x)
    assert report.passed and report.comparison.max_abs_diff < 1e-4, report
    proto = onnx.load(tmp_path / "m.onnx")
    types = {init.data_type for init in proto.graph.initializer}
    assert onnx.TensorProto.UINT4 not in types and onnx.TensorProto.INT4 not in types


def test_a_model_whose_graph_keeps_the_batch_size_exports_for_any_batch(tmp_path):
    import onnxruntime as ort

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = nn.LSTM(8, 16, batch_first=True), nn.Linear(16, 4)

        def forward(self, x):
            state = (torch.zeros(1, x.size(0), 16), torch.zeros(1, x.size(0), 16))
            return self.head(self.lstm(x, state)[0][:, -1])

    torch.manual_seed(0)
    model = Recurrent().eval()
    report = export_model(model, tmp_path / "r.onnx", "onnx", torch.randn(16, 5, 8))
    assert report.passed and report.comparison.samples == 16
    session = ort.InferenceSession(str(tmp_path / "r.onnx"))
    for batch in (1, 3):
        x = torch.randn(batch, 5, 8)
        (out,) = session.run(None, {"input": x.numpy()})
        assert np.allclose(out, model(x).detach().numpy(), atol=1e-5)


def _perturbed(monkeypatch, shift):
    """Make the runtime's outputs differ from PyTorch's by ``shift`` (a broken runtime)."""
    import qdistill.export.api as api

    real = api.run_exported
    monkeypatch.setattr(api, "run_exported", lambda *args: real(*args) + shift)


def test_an_export_outside_tolerance_is_refused_or_written_with_warnings(
    tmp_path, monkeypatch, digits_inputs
):
    from qdistill.export import Tolerance

    model = prepared("small_cnn", "w8a8", digits_inputs)
    x = digits_inputs[1]
    _perturbed(monkeypatch, 0.5)
    with pytest.raises(ExportError, match=r"mean \|diff\| 0\.5 > 0\.05 x mean \|output\|"):
        export_model(model, tmp_path / "a.onnx", "onnx-qdq", x)
    assert not (tmp_path / "a.onnx").exists() and (tmp_path / "a.unverified.onnx").exists()
    report = export_model(model, tmp_path / "b.onnx", "onnx-qdq", x, on_mismatch="warn")
    assert (tmp_path / "b.onnx").exists() and not report.passed
    assert report.outcome == "written with warnings" and "mean |diff|" in report.misses[0]
    assert "outside tolerance" in report.summary()
    saved = json.loads((tmp_path / "b.onnx.report.json").read_text())
    assert saved["passed"] is False and saved["misses"] == report.misses
    # a looser tolerance the user sets accepts the same file
    loose = Tolerance(agreement=0.0, mean_diff=1e6)
    assert export_model(model, tmp_path / "c.onnx", "onnx-qdq", x, tolerance=loose).passed
    with pytest.raises(ConfigError, match="agreement must be in"):
        Tolerance(agreement=1.5)


class PerToken(nn.Module):
    """A per-token MLP with a residual on (batch, tokens, features) inputs: its Linears
    export as Transpose(W) -> MatMul -> Add(bias), not Gemm."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 16)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16, bias=False))
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        h = self.embed(x)
        h = h + self.mlp(h)
        return self.head(h.mean(1))


@pytest.mark.parametrize("fmt", ["onnx-qdq", "qonnx"])
def test_linears_on_token_sequences_export_quantized_and_verified(tmp_path, fmt):
    torch.manual_seed(0)
    x = torch.randn(32, 6, 8)
    model = quantize(PerToken(), "w8a8")
    calibrate(model, [x])
    report = export_model(model.eval(), tmp_path / "tokens.onnx", fmt, x)
    assert report.passed and set(report.layers) == {"embed", "mlp.0", "mlp.2", "head"}
    proto = onnx.load(str(tmp_path / "tokens.onnx"))
    float_weights = [i.name for i in proto.graph.initializer if i.name.endswith(".weight")]
    assert float_weights == []  # every weight went through its quantizer
    if fmt == "onnx-qdq":
        inputs = [x for n in proto.graph.node if n.op_type == "MatMul" for x in n.input]
        assert sum(".input_dq" in x or "_dq" in x for x in inputs) >= 3


@pytest.mark.parametrize("fmt", ["onnx-qdq", "qonnx"])
@pytest.mark.parametrize("bits", ["w8a8", "w4a4"])
def test_attention_and_recurrent_models_export_quantized_and_verified(tmp_path, fmt, bits):
    from sequence_models import SequenceClassifier

    torch.manual_seed(0)
    x = torch.randn(32, 4, 6)  # the export unrolls the recurrent layers over 4 steps
    model = quantize(SequenceClassifier().eval(), bits, strict=True)
    calibrate(model, [x])
    report = export_model(model.eval(), tmp_path / "seq.onnx", fmt, x)
    assert report.passed and report.comparison.max_abs_diff < 1e-4, report.summary()
    assert len(report.layers) == 12 and set(report.layers.values()) == {bits}
    proto = onnx.load(str(tmp_path / "seq.onnx"))
    float_weights = [i.name for i in proto.graph.initializer if i.name.endswith(".weight")]
    assert float_weights == []  # every projection's weight went through its quantizer


def test_float_parameters_only_added_do_not_block_integer_exports(tmp_path):
    class Embedded(nn.Module):  # a position embedding, as in a ViT
        def __init__(self, multiply=False):
            super().__init__()
            self.embed, self.head = nn.Linear(8, 8), nn.Linear(8, 3)
            self.position = nn.Parameter(torch.randn(5, 8))
            self.multiply = multiply

        def forward(self, x):
            h = self.embed(x)
            h = h * self.position if self.multiply else h + self.position
            return self.head(h.mean(1))

    torch.manual_seed(0)
    x = torch.randn(16, 5, 8)
    for multiply in (False, True):
        with pytest.warns(UserWarning, match="position"):  # quantize() names it either way
            model = quantize(Embedded(multiply), "w8a8")
        calibrate(model, [x])
        path = tmp_path / f"m{multiply}.onnx"
        if multiply:
            with pytest.raises(ExportError, match=r"would claim integer.*position"):
                export_model(model.eval(), path, "onnx-qdq", x)
        else:
            assert export_model(model.eval(), path, "onnx-qdq", x).passed


@pytest.mark.parametrize("fmt", ["onnx-qdq", "qonnx"])
def test_a_vision_transformer_exports_quantized_and_verified(tmp_path, fmt):
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(32, 16, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32)
    x = torch.rand(8, 3, 32, 32)
    with pytest.warns(UserWarning, match="class_token, encoder.pos_embedding"):  # added: float
        quantized = quantize(model.eval(), "w8a8")
    calibrate(quantized, [x])
    report = export_model(quantized.eval(), tmp_path / "vit.onnx", fmt, x)
    assert report.passed and report.comparison.agreement == 1.0
    assert "encoder.layers.encoder_layer_0.self_attention.q_proj" in report.layers
