"""qdistill's FPGA cost model against finn-plus itself, on the same QONNX graphs.

Each reference design (tests/finn_designs.py: the digits MLP at W4A4 and W2A2 and in
fixed point with ties rounded up, a LeNet-style CNN with max pooling, small_cnn W4A4
with a quantized global pooling, ESPCN x2 at INT4, a depthwise-separable CNN) is exported
with qdistill's `finn` target, run through finn-plus's estimate-only dataflow flow (HLS
MVAU, VVAU and thresholding units) at three target throughputs, and compared with
qdistill.hardware.estimate_dataflow: the folding and cycles of every unit, the
pipeline latency, and the LUT and BRAM18 totals. FINN also executes its converted
hardware graph (Python execution of every HW node) on test inputs, and its outputs are
compared with qdistill's quantized model.

Needs the `fpga` extra (`make fpga`). `--record FILE` writes FINN's figures as the
read-only fixture the default tests compare against.

Usage: python bench/fpga_agreement.py [--record tests/hardware/fixtures/finn_reference.json]
Last line: RESULT key=value ...
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from finn_designs import DESIGNS, TARGETS_FPS
from qdistill.export import export_model
from qdistill.hardware.estimate import DataflowTarget, estimate_dataflow
from qdistill.hardware.finn_check import finn_estimate, finn_installed


def compare(ours, finn, reference) -> dict:
    """Per-unit cycles/folding equality, total ratios (ours / FINN's) and how far FINN's
    execution is from qdistill's model (max |diff| relative to the output scale)."""
    our_cycles = [u.cycles for u in ours.units]
    finn_cycles = [n.cycles for n in finn.nodes]
    our_folds = [(u.pe, u.simd) for u in ours.units]
    finn_folds = [(n.pe or 1, n.simd or 1) for n in finn.nodes]
    return {
        "cycles_equal": our_cycles == finn_cycles,
        "folding_equal": our_folds == finn_folds,
        "latency_equal": ours.latency_cycles == finn.latency_cycles,
        "lut_ratio": ours.total.lut / finn.lut,
        "bram_ratio": (ours.total.bram18 / finn.bram18) if finn.bram18 else 1.0,
        "output_diff": float(
            np.abs(finn.outputs.reshape(reference.shape) - reference).max()
            / max(np.abs(reference).mean(), 1e-12)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, help="write FINN's figures to this fixture")
    args = parser.parse_args()
    if not finn_installed():
        print("finn-plus is not installed (make fpga); nothing to compare")
        print("RESULT skipped=1")
        return
    recorded: dict = {}
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name, build in DESIGNS.items():
            model, input_shape, samples = build()
            path = Path(work) / f"{name}.onnx"
            export_model(model, path, "finn", samples)
            with torch.no_grad():
                reference = model(samples).numpy()
            for fps in TARGETS_FPS:
                finn = finn_estimate(path, fps, inputs=samples.numpy())
                ours = estimate_dataflow(model, input_shape, DataflowTarget(fps=fps))
                recorded.setdefault(name, {})[str(fps)] = finn.to_dict()
                result = compare(ours, finn, reference)
                rows.append((name, fps, result))
                print(
                    f"{name:<14} {fps:>7} FPS  cycles {'=' if result['cycles_equal'] else '!='}"
                    f"  folding {'=' if result['folding_equal'] else '!='}"
                    f"  latency {ours.latency_cycles} vs {finn.latency_cycles}"
                    f"  LUT {ours.total.lut:,.0f} vs {finn.lut:,.0f}"
                    f"  BRAM18 {ours.total.bram18:.0f} vs {finn.bram18:.0f}"
                    f"  outputs max|diff|/scale {result['output_diff']:.2g}"
                )
    if args.record:
        args.record.write_text(json.dumps(recorded, indent=1) + "\n")
        print(f"recorded FINN's figures in {args.record}")
    results = [r for _, _, r in rows]
    print(
        "target: cycles per unit equal; LUT and BRAM totals within 25% of FINN's; "
        "FINN's execution equal to qdistill's model up to float rounding"
    )
    print(
        "RESULT "
        f"designs={len(results)} "
        f"cycles_equal={sum(r['cycles_equal'] for r in results) / len(results):.3f} "
        f"folding_equal={sum(r['folding_equal'] for r in results) / len(results):.3f} "
        f"lut_ratio_min={min(r['lut_ratio'] for r in results):.3f} "
        f"lut_ratio_max={max(r['lut_ratio'] for r in results):.3f} "
        f"bram_ratio_min={min(r['bram_ratio'] for r in results):.3f} "
        f"bram_ratio_max={max(r['bram_ratio'] for r in results):.3f} "
        f"output_diff_max={max(r['output_diff'] for r in results):.3g}"
    )


if __name__ == "__main__":
    main()
