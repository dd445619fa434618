"""The cost model against FINN's own estimates of the same designs.

The fixture holds finn-plus 1.6.1's figures (recorded by bench/fpga_agreement.py
--record); tolerances: folding, cycles per unit and pipeline latency equal, LUT and
BRAM18 totals within 5% (the issue allows 25%; the recorded agreement is exact).
The slow test runs FINN itself when the `fpga` extra is installed, and compares FINN's
execution of its converted hardware graph with qdistill's model on test inputs.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from finn_designs import DESIGNS, TARGETS_FPS, mlp_fixed_point
from qdistill.data import build_dataset
from qdistill.export import export_model
from qdistill.hardware.estimate import DataflowTarget, estimate_dataflow
from qdistill.hardware.finn_check import FinnEstimate, finn_estimate, finn_installed

FIXTURE = Path(__file__).with_name("fixtures") / "finn_reference.json"
TOLERANCE = 0.05


def assert_agrees(ours, finn: FinnEstimate) -> None:
    assert [u.cycles for u in ours.units] == [n.cycles for n in finn.nodes]
    assert [(u.pe, u.simd) for u in ours.units] == [(n.pe or 1, n.simd or 1) for n in finn.nodes]
    assert ours.latency_cycles == finn.latency_cycles
    assert ours.max_cycles == finn.max_cycles
    assert ours.total.lut == pytest.approx(finn.lut, rel=TOLERANCE)
    assert ours.total.bram18 == pytest.approx(finn.bram18, rel=TOLERANCE)


@pytest.fixture(scope="module")
def designs():
    return {name: build() for name, build in DESIGNS.items()}


@pytest.mark.parametrize("name", sorted(DESIGNS))
@pytest.mark.parametrize("fps", TARGETS_FPS)
def test_estimate_agrees_with_recorded_finn_figures(designs, name, fps):
    model, input_shape, _ = designs[name]
    finn = FinnEstimate.from_dict(json.loads(FIXTURE.read_text())[name][str(fps)])
    assert_agrees(estimate_dataflow(model, input_shape, DataflowTarget(fps=fps)), finn)


@pytest.mark.slow
@pytest.mark.skipif(not finn_installed(), reason="needs the fpga extra (finn-plus)")
@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_finn_accepts_the_export_agrees_and_computes_the_same(designs, name, tmp_path):
    model, input_shape, samples = designs[name]
    path = tmp_path / f"{name}.onnx"
    export_model(model, path, "finn", samples)
    with torch.no_grad():
        reference = model(samples).numpy()
    for fps in TARGETS_FPS:
        ours = estimate_dataflow(model, input_shape, DataflowTarget(fps=fps))
        finn = finn_estimate(path, fps, inputs=samples.numpy())
        assert_agrees(ours, finn)
        # FINN's execution of its hardware graph: qdistill's function up to float rounding
        outputs = finn.outputs.reshape(reference.shape)
        assert np.abs(outputs - reference).max() <= 1e-4 * max(np.abs(reference).max(), 1.0)


@pytest.mark.slow
@pytest.mark.skipif(not finn_installed(), reason="needs the fpga extra (finn-plus)")
def test_fixed_point_design_with_half_up_rounding_is_bit_exact_in_finn(tmp_path):
    """FINN's thresholds round ties up: with rounding half_up FINN computes qdistill's
    function bit for bit on every test digit; rounding half to even, ties differ."""
    test_inputs = torch.as_tensor(build_dataset("digits", standardize_pixels=False).test.x)
    differences = {}
    for rounding in ("half_up", "half_even"):
        model, _, samples = mlp_fixed_point(rounding)
        path = tmp_path / f"{rounding}.onnx"
        export_model(model, path, "finn", samples)
        with torch.no_grad():
            reference = model(test_inputs.float()).numpy()
        outputs = finn_estimate(path, 1000, inputs=test_inputs.float().numpy()).outputs
        differences[rounding] = np.abs(outputs.reshape(reference.shape) - reference).max()
    assert differences["half_up"] == 0.0
    assert differences["half_even"] > 0.0
