"""When an export misses its tolerance, the report names the first layer whose outputs
differ, or says that none does."""

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from qdistill import calibrate, quantize
from qdistill.export import Tolerance, export_model
from qdistill.export import api as export_api
from qdistill.export.divergence import first_divergence, layer_divergences, layer_output_tensors
from qdistill.export.graph import ExportError, export_float, float_shadow


@pytest.fixture(scope="module")
def quantized():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(128, 32), nn.ReLU(), nn.Linear(32, 10),
    )  # fmt: skip
    inputs = torch.randn(16, 1, 8, 8)
    model = quantize(model, "w8a8")
    calibrate(model, [inputs])
    return model.eval(), inputs


def _scaled(proto: onnx.ModelProto, prefix: str, factor: float) -> onnx.ModelProto:
    """``proto`` with the initializer named ``prefix...`` multiplied by ``factor``."""
    changed = onnx.ModelProto.FromString(proto.SerializeToString())
    (index,) = [i for i, t in enumerate(changed.graph.initializer) if t.name.startswith(prefix)]
    tensor = changed.graph.initializer[index]
    array = (numpy_helper.to_array(tensor) * factor).astype(numpy_helper.to_array(tensor).dtype)
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    return changed


def test_every_layer_output_is_found_and_a_changed_layer_is_the_first_to_diverge(quantized):
    model, inputs = quantized
    shadow = float_shadow(model)
    proto = export_float(shadow, inputs[:2])
    tensors = layer_output_tensors(proto, ["0", "3", "6", "8"])
    assert list(tensors) == ["0", "3", "6", "8"]
    same = layer_divergences(shadow, proto, tensors, inputs)
    assert first_divergence(same) is None and max(d.relative for d in same) < 1e-5
    broken = layer_divergences(shadow, _scaled(proto, "3.weight", 1.05), tensors, inputs)
    assert [d.layer for d in broken] == ["0", "3", "6", "8"]
    first = first_divergence(broken)
    assert first.layer == "3" and 0.01 < first.relative < 0.2
    assert broken[0].relative < 1e-5  # the layer before it still agrees


def test_a_refused_export_names_the_first_diverging_layer(quantized, tmp_path, monkeypatch):
    model, inputs = quantized
    to_qdq = export_api.to_qdq

    def with_wrong_weights(proto, layers):
        return _scaled(to_qdq(proto, layers), "6.weight_q_scale", -1.0)  # weights negated

    monkeypatch.setattr(export_api, "to_qdq", with_wrong_weights)
    with pytest.raises(ExportError, match="the first layer that diverges is 6 "):
        export_model(model, tmp_path / "m.onnx", "onnx-qdq", inputs)


def test_a_miss_with_no_diverging_layer_says_so_in_the_report(quantized, tmp_path):
    model, inputs = quantized
    report = export_model(
        model,
        tmp_path / "m.onnx",
        "onnx-qdq",
        inputs,
        tolerance=Tolerance(mean_diff=1e-12),
        on_mismatch="warn",
    )
    if report.passed:  # bit-identical on this machine: nothing to explain
        assert report.divergences == []
        return
    assert len(report.divergences) == 4
    assert "every layer's outputs agree within 0.1% of their range" in report.summary()
    again = export_api.ExportReport.from_dict(report.to_dict())
    assert again.divergences == report.divergences
    assert np.isfinite([d.relative for d in again.divergences]).all()
