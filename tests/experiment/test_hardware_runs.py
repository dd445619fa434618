"""An experiment's `hardware:` block: estimates of every quantized run in the report."""

import json

import pytest

from qdistill.errors import ConfigError
from qdistill.experiment import parse_experiment, run_experiment
from qdistill.report import write_report

SYMMETRIC = {"act": {"symmetric": True}}


def test_hardware_block_estimates_every_quantized_run(tmp_path, tiny_config):
    tiny_config["students"] = [
        {
            "name": "qat",
            "method": "qat",
            "bits": [
                {"*": "w2a2", "@first": {"bits": "w2a2", **SYMMETRIC}},
                {"*": "w4a4", "@first": {"bits": "w4a4", **SYMMETRIC}},
                {"*": "w2a4", "@first": {"bits": "w2a4", **SYMMETRIC}},
                {"*": "w4a2", "@first": {"bits": "w4a2", **SYMMETRIC}},
            ],
            "train": {"epochs": 1},
        },
        {"name": "pooled", "method": "ptq", "model": "small_cnn", "bits": "w4a4"},
    ]
    tiny_config["hardware"] = {
        "targets": [{"fps": 10000}, {"uniform": 4}],
        "boards": ["pynq-z2", "zcu104"],
    }
    outcome = run_experiment(parse_experiment(tiny_config), tmp_path)
    by_target = {}
    for row in outcome.hardware:
        by_target.setdefault(row.target, {})[row.run] = row
    assert set(by_target) == {"10000 FPS", "PE=SIMD=4"}
    fast = by_target["10000 FPS"]
    assert len(fast) == 5 and fast["pooled"].report is None
    assert "unquantized tensor" in fast["pooled"].error  # global pooling of a float tensor
    w4a4 = fast["qat-w4a4+first=w4a4"].report
    assert w4a4.estimate.fps >= 10000 and [b.board for b in w4a4.boards] == ["pynq-z2", "zcu104"]
    # more bits, more LUTs
    assert w4a4.estimate.total.lut > fast["qat-w2a2+first=w2a2"].report.estimate.total.lut
    saved = json.loads((tmp_path / "hardware.json").read_text())
    assert len(saved) == 10 and saved[0]["estimate"]["units"]
    report = write_report(tmp_path, outcome.records, hardware=outcome.hardware).read_text()
    assert "## Hardware: FPGA dataflow estimates" in report and "### PE=SIMD=4" in report
    assert "Pareto front:" in report and "![LUT](hw_lut.png)" in report
    pooled_row = next(line for line in report.splitlines() if "| no estimate: " in line)
    header = next(line for line in report.splitlines() if line.startswith("| Run | Bits |"))
    assert pooled_row.startswith("| pooled |") and pooled_row.count("|") == header.count("|")
    assert (tmp_path / "hw_quality_vs_lut_0.png").is_file()


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"boards": ["pynq-z3"]}, "unknown board 'pynq-z3'"),
        (
            {"targets": [{"fps": 100, "fit": "pynq-z2"}]},
            "sets one of fps, match_cpu, fit or uniform",
        ),
        ({"targets": [{"fps": 0}]}, "greater than 0"),
        ({"utilisation": 1.5}, "less than or equal to 1"),
        ({"processors": {"nvidia-rtx-3060": 0}}, "throughput must be positive"),
        ({"processors": {"tpu": 10}}, "unknown processor 'tpu'"),
    ],
)
def test_bad_hardware_blocks_fail_at_load(tiny_config, block, message):
    tiny_config["hardware"] = block
    with pytest.raises(ConfigError, match=message):
        parse_experiment(tiny_config)


def test_match_cpu_folds_to_the_measured_cpu_throughput(tmp_path, tiny_config):
    tiny_config["students"] = [{"name": "ptq", "method": "ptq", "bits": "w4a4"}]
    tiny_config["hardware"] = {
        "targets": [{"match_cpu": True}],
        "processors": {"nvidia-rtx-3060": 1000},
        "boards": ["pynq-z2"],
    }
    outcome = run_experiment(parse_experiment(tiny_config), tmp_path)
    (row,) = outcome.hardware
    processors = {p.name: p for p in row.report.processors}
    assert set(processors) == {"cpu", "nvidia-rtx-3060"}
    assert processors["cpu"].source.startswith("measured here")
    assert row.target == "CPU throughput"
    assert row.report.estimate.target_fps == processors["cpu"].fps
    gpu = processors["nvidia-rtx-3060"]
    assert gpu.units_to_match == -(-row.report.estimate.fps // 1000)
