import json

import pytest
import torch
from torch import nn

from qdistill.errors import ConfigError
from qdistill.hardware.benchmark import benchmark_model, speedups
from qdistill.hardware.deployment import DeploymentMeasurement, saved_measurement
from qdistill.hardware.power import energy_per_image_j, power_table
from qdistill.quant import (
    calibrate,
    convert,
    layer_costs,
    model_size,
    quantize,
    total_bops,
    total_macs,
)
from qdistill.report.benchmark import write_benchmark_report


def test_macs_and_bops_by_hand():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 8x8 out: 64 * 8 * 3 * 9 = 13824
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=4),  # 64 * 8 * (8/4) * 9 = 9216
        nn.ConvTranspose2d(8, 4, 2, stride=2),  # input 64 px * 8 ch * 4 out * 4 = 8192
        nn.Flatten(),
        nn.Linear(4 * 16 * 16, 10),  # 10240
    )
    x = torch.randn(2, 3, 8, 8)
    costs = layer_costs(model, x)
    assert [c.macs for c in costs] == [13824, 9216, 8192, 10240]
    assert total_bops(costs) == total_macs(costs) * 32 * 32
    q = quantize(model, {"*": "w4a8", "@last": "w8a8"})
    calibrate(q, [x])
    q_costs = layer_costs(q, x)
    assert [c.macs for c in q_costs] == [c.macs for c in costs]
    assert q_costs[0].bops == 13824 * 4 * 8 and q_costs[-1].bops == 10240 * 64
    assert [c.macs for c in layer_costs(convert(q), x)] == [c.macs for c in costs]
    assert model.training  # mode restored


def test_energy_formula_and_power_table(tmp_path, monkeypatch):
    # latency-bound: 10 W x 2 ms = 20 mJ; throughput-bound: 10 W / 1000 img/s = 10 mJ
    assert energy_per_image_j(10.0, 0.002, 1000.0) == pytest.approx(0.010)
    assert energy_per_image_j(10.0, 0.0005, 1000.0) == pytest.approx(0.005)
    table = power_table()
    assert table["cpu"].watts > 0 and "estimate" in table["cpu"].note
    custom = tmp_path / "power.yaml"
    custom.write_text("platforms: {cpu: {watts: 12.5, note: my laptop}}")
    monkeypatch.setenv("QDISTILL_POWER_TABLE", str(custom))
    assert power_table()["cpu"].watts == 12.5
    custom.write_text("platforms: [oops]")
    with pytest.raises(ConfigError, match="power table"):
        power_table()


def test_benchmark_schema_on_a_tiny_model(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    x = torch.randn(16, 1, 8, 8)
    q = quantize(model, "w8a8")
    calibrate(q, [x])
    result = benchmark_model(
        q, (1, 8, 8), x, batch_sizes=(1, 4), repeats=3, warmup=1, time_limit_s=5
    )
    names = [b.backend for b in result.backends]
    assert names[:3] == ["torch", "ort_float", "ort_int8"]
    for backend in result.backends[:3]:
        assert [p.batch for p in backend.points] == [1, 4]
        assert all(p.p10_ms <= p.latency_ms <= p.p90_ms for p in backend.points)
        assert backend.points[1].throughput == pytest.approx(4e3 / backend.points[1].latency_ms)
        expected = (
            energy_per_image_j(backend.watts, backend.latency_b1_ms / 1e3, backend.best.throughput)
            * 1e3
        )
        assert backend.energy_mj == pytest.approx(expected)
    assert speedups(result)["torch"] == 1.0
    measurement = DeploymentMeasurement(result, layer_costs(q, x[:1]), model_size(q), "run-a")
    measurement.save(tmp_path)
    path = write_benchmark_report(measurement, tmp_path, "tiny")
    data = json.loads((tmp_path / "benchmark.json").read_text())
    assert {b["backend"] for b in data["backends"]} >= {"torch", "ort_int8"}
    assert data["layers"][0]["macs"] == 64 * 32
    assert "Estimates, not measurements" in path.read_text()
    assert (tmp_path / "throughput_vs_batch.png").is_file()
    # a saved measurement is read back whole, and only for the stamp it measured
    assert saved_measurement(tmp_path, "run-a") == measurement
    assert saved_measurement(tmp_path, "run-b") is None


def test_backends_that_cannot_run_say_why():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    result = benchmark_model(
        model,
        (1, 8, 8),
        torch.randn(4, 1, 8, 8),
        backends=("ort_int8",),
        batch_sizes=(1,),
        repeats=2,
    )
    assert result.backends[0].unavailable == "the model is not quantized"
    if not torch.cuda.is_available():
        result = benchmark_model(
            model,
            (1, 8, 8),
            torch.randn(4, 1, 8, 8),
            backends=("cuda",),
            batch_sizes=(1,),
            repeats=2,
        )
        assert "no CUDA GPU" in result.backends[0].unavailable
    with pytest.raises(ConfigError, match="unknown backend"):
        benchmark_model(model, (1, 8, 8), torch.randn(4, 1, 8, 8), backends=("tpu",))
