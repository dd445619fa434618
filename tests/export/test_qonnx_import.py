"""QONNX files read back as quantized models: they compute what the file computes (qonnx's
executor) and give the cost model the same design as the model they were exported from."""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from finn_designs import DESIGNS
from qdistill.export import export_model
from qdistill.export.qonnx_format import QONNX_DOMAIN
from qdistill.export.qonnx_import import import_qonnx
from qdistill.export.qonnx_nodes import QonnxImportError
from qdistill.export.verify import run_qonnx
from qdistill.hardware.estimate import DataflowTarget, estimate_dataflow

CASES = [
    ("mlp_w4a4", "qonnx"),
    ("mlp_w4a4", "finn"),  # input Quant above the flatten
    ("lenet_w4a4", "qonnx"),  # run-time zero biases (CastLike / Expand)
    ("lenet_w4a4", "finn"),  # Quant above MaxPool
    ("small_cnn_w4a4", "qonnx"),  # quantized ReduceMean
    ("small_cnn_w4a4", "finn"),  # AveragePool -> Mul -> Trunc -> Mul
    ("espcn_x2_int4", "finn"),  # pixel shuffle as Reshape -> Transpose -> Reshape
]


@pytest.mark.parametrize(("name", "fmt"), CASES)
def test_exports_read_back_compute_and_estimate_the_same(tmp_path, name, fmt):
    model, input_shape, samples = DESIGNS[name]()
    path = tmp_path / "m.onnx"
    export_model(model, path, fmt, samples)
    imported = import_qonnx(path)
    assert imported.input_shape == input_shape
    with torch.no_grad():
        ours = imported.model(samples).numpy()
    assert np.allclose(ours, run_qonnx(onnx.load(path), samples.numpy()), atol=1e-6)
    for fps in (1000, 100000):
        target = DataflowTarget(fps=fps)
        original = estimate_dataflow(model, input_shape, target)
        read_back = estimate_dataflow(imported.model, imported.input_shape, target)
        assert [(u.kind, u.cycles, u.pe, u.simd) for u in read_back.units] == [
            (u.kind, u.cycles, u.pe, u.simd) for u in original.units
        ]
        assert read_back.total == original.total


def _const(name, array):
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


def _quant(inp, out, scale, zero, bits, signed=1, narrow=0, mode="ROUND"):
    return helper.make_node(
        "Quant", [inp, scale, zero, bits], [out], domain=QONNX_DOMAIN,
        signed=signed, narrow=narrow, rounding_mode=mode,
    )  # fmt: skip


def _hand_built(mode="ROUND", weight_scale_shape=(1, 6), extra=()):
    """A Brevitas-style graph: an unsigned input Quant with a zero point, MatMul + Add
    bias, BatchNormalization, ReLU, a second Quant, Gemm with binary weights."""
    rng = np.random.default_rng(0)
    inits = [
        _const("s_in", 0.1), _const("z_in", 3), _const("b4", 4), _const("b3", 3),
        _const("w1", rng.normal(size=(5, 6))), _const("s_w1", np.full(weight_scale_shape, 0.2)),
        _const("z0", 0), _const("bias1", rng.normal(size=6)),
        _const("bn_s", rng.uniform(0.5, 1.5, 6)), _const("bn_b", rng.normal(size=6)),
        _const("bn_m", rng.normal(size=6)), _const("bn_v", rng.uniform(0.5, 2, 6)),
        _const("s_a", 0.25), _const("w2", rng.normal(size=(3, 6))), _const("s_w2", 0.5),
    ]  # fmt: skip
    nodes = [
        _quant("x", "xq", "s_in", "z_in", "b4", signed=0, mode=mode),
        _quant("w1", "w1q", "s_w1", "z0", "b3", narrow=1),
        helper.make_node("MatMul", ["xq", "w1q"], ["h"]),
        helper.make_node("Add", ["h", "bias1"], ["hb"]),
        helper.make_node("BatchNormalization", ["hb", "bn_s", "bn_b", "bn_m", "bn_v"], ["n"]),
        helper.make_node("Relu", ["n"], ["r"]),
        _quant("r", "rq", "s_a", "z0", "b4", signed=0),
        helper.make_node("BipolarQuant", ["w2", "s_w2"], ["w2q"], domain=QONNX_DOMAIN),
        helper.make_node("Gemm", ["rq", "w2q"], ["y"], transB=1),
        *extra,
    ]
    output = extra[-1].output[0] if extra else "y"
    graph = helper.make_graph(
        nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, 3])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.opset_import.append(helper.make_opsetid(QONNX_DOMAIN, 1))
    return model


def test_a_hand_built_brevitas_style_graph(tmp_path):
    path = tmp_path / "hand.onnx"
    onnx.save(_hand_built(), path)
    imported = import_qonnx(path)
    x = np.random.default_rng(1).uniform(-0.5, 1.5, (32, 5)).astype(np.float32)
    with torch.no_grad():
        ours = imported.model(torch.from_numpy(x)).numpy()
    assert np.allclose(ours, run_qonnx(onnx.load(path), x), atol=1e-5)
    estimate = estimate_dataflow(imported.model, (5,), DataflowTarget(fps=1000))
    mvaus = [u for u in estimate.units if u.kind == "mvau"]
    # binary weights minimise to INT2 as in FINN (-w_max - 1 = -2 is not bipolar)
    assert [(u.details["weight_bits"], u.details["input_bits"]) for u in mvaus] == [(3, 4), (2, 4)]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: _hand_built(mode="FLOOR"), "rounds FLOOR; qdistill maps ROUND and HALF_UP"),
        (lambda: _hand_built(weight_scale_shape=(5, 1)), "not per output channel"),
        (
            lambda: _hand_built(extra=[helper.make_node("Softmax", ["y"], ["p"])]),
            "(Softmax) has no mapping",
        ),
    ],
)
def test_graphs_it_cannot_read_are_one_line_errors(tmp_path, build, message):
    path = tmp_path / "bad.onnx"
    onnx.save(build(), path)
    with pytest.raises(QonnxImportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_qonnx(path)
