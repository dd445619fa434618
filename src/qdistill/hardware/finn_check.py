"""Run finn-plus's own estimate-only dataflow flow on a QONNX file (when installed).

This is how qdistill checks that its FINN exports are accepted and that its cost model
agrees with FINN: ``finn_estimate`` runs FINN's steps qonnx_to_finn through
generate_estimate_reports in a subprocess (FINN configures global logging and reads
its environment) and returns FINN's per-node folding, cycles and resources. No Vivado
is needed: the flow only needs a build directory, a Vivado version string and its RTL
simulator import kept from failing, all set in the subprocess's environment. Every MVAU
and thresholding unit is specialised to its HLS variant (LUT multipliers), the variant
qdistill's cost model follows.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qdistill.errors import QdistillError

DEFAULT_PART = "xc7z020clg400-1"  # PYNQ-Z1/Z2; estimates do not depend on it for HLS units


class FinnError(QdistillError):
    """finn-plus is missing, or refused or failed on a file."""


@dataclass
class FinnNode:
    name: str  # FINN's node name, e.g. MVAU_hls_0
    pe: int | None
    simd: int | None
    cycles: int
    lut: float
    bram18: float


@dataclass
class FinnEstimate:
    nodes: list[FinnNode]
    lut: float
    bram18: float
    max_cycles: int
    latency_cycles: int
    outputs: np.ndarray | None = None  # FINN's execution of its hardware graph, if asked

    def to_dict(self) -> dict:
        return {
            "nodes": [vars(n) for n in self.nodes],
            "lut": self.lut,
            "bram18": self.bram18,
            "max_cycles": self.max_cycles,
            "latency_cycles": self.latency_cycles,
        }

    @classmethod
    def from_dict(cls, data: dict) -> FinnEstimate:
        return cls([FinnNode(**n) for n in data["nodes"]], *(data[k] for k in (
            "lut", "bram18", "max_cycles", "latency_cycles")))  # fmt: skip


def finn_installed() -> bool:
    return importlib.util.find_spec("finn") is not None


def finn_estimate(
    qonnx_path: str | Path,
    target_fps: float,
    clock_mhz: float = 100.0,
    part: str = DEFAULT_PART,
    timeout_s: float = 600.0,
    inputs: np.ndarray | None = None,
) -> FinnEstimate:
    """FINN's estimate of the QONNX file at ``target_fps``; FinnError if FINN refuses it.
    With ``inputs`` (a batch), FINN also executes its converted hardware graph on them
    (its Python execution of every HW node) and the outputs come back."""
    if not finn_installed():
        raise FinnError("finn-plus is not installed; run `make fpga` (the `fpga` extra)")
    with tempfile.TemporaryDirectory(prefix="qdistill-finn-") as work:
        command = [sys.executable, "-m", "qdistill.hardware.finn_check", str(qonnx_path),
                   str(target_fps), str(clock_mhz), part, work]  # fmt: skip
        if inputs is not None:
            np.save(Path(work) / "inputs.npy", inputs.astype(np.float32))
        env = {**os.environ, "FINN_BUILD_DIR": str(Path(work) / "build")}
        env.setdefault("XILINX_VIVADO", "/opt/Xilinx/Vivado/2024.2")  # a version, not a tool
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout_s, check=False
        )
        report = Path(work) / "out" / "report"
        if done.returncode != 0 or not (report / "estimate_layer_cycles.json").is_file():
            raise FinnError(f"FINN refused {qonnx_path}: {_finn_error(done.stdout + done.stderr)}")
        estimate = _read_reports(report)
        outputs = Path(work) / "outputs.npy"
        if inputs is not None:
            if not outputs.is_file():
                raise FinnError(f"FINN could not execute its graph of {qonnx_path}")
            estimate.outputs = np.load(outputs)
        return estimate


def _finn_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if "ERROR" in line or "Error" in line]
    return " ".join(lines[:3])[:400] or output.strip().splitlines()[-1][:400]


def _read_reports(report: Path) -> FinnEstimate:
    def read(name: str) -> dict:
        return json.loads((report / name).read_text())

    folding, cycles = read("auto_folding_config.json"), read("estimate_layer_cycles.json")
    resources, performance = (
        read("estimate_layer_resources.json"),
        read("estimate_network_performance.json"),
    )
    nodes = [
        FinnNode(
            name,
            folding.get(name, {}).get("PE"),
            folding.get(name, {}).get("SIMD"),
            int(cycles[name]),
            float(resources[name]["LUT"]),
            float(resources[name]["BRAM_18K"]),
        )
        for name in cycles
    ]
    total = resources["total"]
    return FinnEstimate(
        nodes,
        float(total["LUT"]),
        float(total["BRAM_18K"]),
        int(performance["max_cycles"]),
        int(performance["critical_path_cycles"]),
    )


def _run_flow(qonnx_path: str, fps: float, clock_mhz: float, part: str, work: str) -> int:
    """Inside the subprocess: FINN's estimate-only steps with HLS MVAU/thresholding."""
    import finn.xsi

    for name in finn.xsi._LAZY_NAMES:  # the RTL simulator is not needed for estimates
        setattr(finn.xsi, name, None)
    import finn.builder.build_dataflow as build
    import finn.builder.build_dataflow_config as cfg

    specialize = Path(work) / "specialize.json"
    specialize.write_text(
        json.dumps({"Defaults": {"preferred_impl_style": ["hls", ["MVAU", "Thresholding"]]}})
    )
    config = cfg.DataflowBuildConfig(
        model_path=Path(qonnx_path),
        output_dir=str(Path(work) / "out"),
        target_fps=int(fps),
        synth_clk_period_ns=1000.0 / clock_mhz,
        fpga_part=part,
        steps=cfg.estimate_only_dataflow_steps,
        specialize_layers_config_file=specialize,
        generate_outputs=[cfg.DataflowOutputType.ESTIMATE_REPORTS],
    )
    status = build.build_dataflow_cfg(qonnx_path, cfg.DataflowBuildConfig.construct_from(config))
    inputs = Path(work) / "inputs.npy"
    if status == 0 and inputs.is_file():
        _execute(Path(work) / "out" / "intermediate_models" / "step_convert_to_hw.onnx", work)
    return status


def _execute(graph: Path, work: str) -> None:
    """FINN's Python execution of its hardware graph, one sample at a time (batch 1)."""
    from finn.core.onnx_exec import execute_onnx
    from qonnx.core.modelwrapper import ModelWrapper

    from qdistill.export import runtime_ir_for_qonnx

    model = ModelWrapper(str(graph))
    name, out = model.graph.input[0].name, model.graph.output[0].name
    samples = np.load(Path(work) / "inputs.npy")
    with runtime_ir_for_qonnx():
        outputs = [execute_onnx(model, {name: sample[None]})[out] for sample in samples]
    np.save(Path(work) / "outputs.npy", np.concatenate(outputs))


if __name__ == "__main__":
    path, fps, clock, part, work = sys.argv[1:6]
    sys.exit(_run_flow(path, float(fps), float(clock), part, work))
