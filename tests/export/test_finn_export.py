"""The `finn` export: QONNX written the way finn-plus's importer maps it, same function."""

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from finn_designs import espcn_x2_int4, lenet, mlp
from qdistill import calibrate, quantize
from qdistill.export import ExportError, export_model
from qdistill.models import build_model


def exported(tmp_path, design):
    model, _, samples = design
    path = tmp_path / "model.onnx"
    report = export_model(model, path, "finn", samples)
    return report, onnx.load(str(path))


def ops(proto):
    return [n.op_type for n in proto.graph.node]


def test_mlp_zero_points_are_scalars(tmp_path):
    report, proto = exported(tmp_path, mlp("w2a2"))
    assert report.passed and report.comparison.max_abs_diff < 1e-6  # summation order varies by CPU
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Quant":
            assert inits[node.input[2]].size == 1 and inits[node.input[2]] == 0


def test_lenet_quantizes_before_max_pool_and_drops_zero_biases(tmp_path):
    report, proto = exported(tmp_path, lenet())
    assert report.passed and report.comparison.max_abs_diff < 1e-6  # summation order varies by CPU
    order = ops(proto)
    assert "Expand" not in order and "CastLike" not in order
    pool = order.index("MaxPool")
    assert order[pool - 1] == "Quant"
    assert all(len(n.input) == 2 for n in proto.graph.node if n.op_type == "Conv")


def test_pixel_shuffle_becomes_reshape_transpose_reshape(tmp_path):
    report, proto = exported(tmp_path, espcn_x2_int4())
    assert report.passed and report.comparison.psnr_db > 100
    assert "DepthToSpace" not in ops(proto)
    assert ops(proto)[-3:] == ["Reshape", "Transpose", "Reshape"]


def test_what_finn_cannot_map_exactly_is_refused_with_the_fix(tmp_path):
    torch.manual_seed(0)
    inputs = torch.randn(32, 1, 8, 8)
    asymmetric = quantize(build_model("mlp", (1, 8, 8), 10, hidden=[16]), "w4a4")
    calibrate(asymmetric, [inputs])
    with pytest.raises(
        ExportError,
        match=r"layer 'features.1': its input quantizer has zero "
        r"point -?\d+; FINN maps only zero-point-0 quantizers.*symmetric",
    ):
        export_model(asymmetric, tmp_path / "a.onnx", "finn", inputs[:4])
    pooled = quantize(
        build_model("small_cnn", (1, 8, 8), 10), {"*": {"bits": "w4a4", "act": {"symmetric": True}}}
    )
    calibrate(pooled, [inputs])
    with pytest.raises(ExportError, match="averages an unquantized tensor"):
        export_model(pooled, tmp_path / "p.onnx", "finn", inputs[:4])
    assert not (tmp_path / "p.onnx").exists()
    assert np.isfinite(inputs.numpy()).all()
