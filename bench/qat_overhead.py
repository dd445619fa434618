"""QAT training-step cost: float vs qdistill W4A4 vs Brevitas W4A4, measured side by side.

The same small CNN (qdistill's ``small_cnn``) and MLP (``kl_mlp_student``, 3x300) on
1x28x28 inputs, batch 64, SGD. Each round times a block of steps of every variant in
turn (so drift in machine load hits all of them alike); the reported time per step is
the median over rounds. Brevitas (the ``bench`` extra) uses per-channel 4-bit weights
and per-tensor 4-bit input activations on every layer, like qdistill's ``w4a4``.

Usage: python bench/qat_overhead.py [--rounds 7] [--steps 20] [--batch 64]
Last line: RESULT key=value ...
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import torch
from torch import nn

from qdistill.models import build_model
from qdistill.quant import calibrate, quantize

INPUT_SHAPE = (1, 28, 28)
CLASSES = 10


def brevitas_twin(model: nn.Module) -> nn.Module | None:
    """The same architecture with Brevitas W4A4 layers (None without brevitas)."""
    try:
        import brevitas.nn as qnn
        from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerChannelFloat
    except ImportError:
        return None

    def convert(module: nn.Module) -> nn.Module:
        common = {
            "weight_quant": Int8WeightPerChannelFloat,
            "weight_bit_width": 4,
            "input_quant": Int8ActPerTensorFloat,
            "input_bit_width": 4,
        }
        for name, child in module.named_children():
            if type(child) is nn.Linear:
                twin = qnn.QuantLinear(
                    child.in_features, child.out_features, bias=child.bias is not None, **common
                )
            elif type(child) is nn.Conv2d:
                twin = qnn.QuantConv2d(
                    child.in_channels,
                    child.out_channels,
                    child.kernel_size,
                    stride=child.stride,
                    padding=child.padding,
                    bias=child.bias is not None,
                    **common,
                )
            else:
                convert(child)
                continue
            twin.load_state_dict(child.state_dict(), strict=False)
            setattr(module, name, twin)
        return module

    import copy

    return convert(copy.deepcopy(model))


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


def time_variants(steps: dict, rounds: int, block: int) -> dict[str, float]:
    """Median seconds per step of each variant over ``rounds`` interleaved blocks."""
    for step in steps.values():  # warm-up: allocator, first-call overheads
        for _ in range(5):
            step()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(block):
                step()
            samples[name].append((time.perf_counter() - start) / block)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    x = torch.randn(args.batch, *INPUT_SHAPE)
    y = torch.randint(0, CLASSES, (args.batch,))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, batch {args.batch}, {args.rounds} rounds x {args.steps} steps"
    )
    results: dict[str, float] = {}
    for workload, name in (("cnn", "small_cnn"), ("mlp", "kl_mlp_student")):
        float_model = build_model(name, INPUT_SHAPE, CLASSES)
        ours = quantize(float_model, "w4a4")
        calibrate(ours, [x])
        steps = {"float": make_step(float_model, x, y), "qdistill": make_step(ours, x, y)}
        twin = brevitas_twin(float_model)
        if twin is not None:
            steps["brevitas"] = make_step(twin, x, y)
        times = time_variants(steps, args.rounds, args.steps)
        line = "  ".join(f"{k} {v * 1e3:7.2f} ms" for k, v in times.items())
        print(f"{workload:>4} ({name}): {line}")
        results[f"{workload}_qdistill_vs_float"] = times["qdistill"] / times["float"]
        if "brevitas" in times:
            results[f"{workload}_brevitas_vs_float"] = times["brevitas"] / times["float"]
            results[f"{workload}_qdistill_vs_brevitas"] = times["qdistill"] / times["brevitas"]
        else:
            print("     brevitas not installed (pip install -e '.[bench]'): no comparison")
    print("targets: qdistill <= 1.25x float, <= 0.5x brevitas")
    print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in results.items()))


if __name__ == "__main__":
    main()
