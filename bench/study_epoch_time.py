"""How long one training epoch of each shipped study takes on this machine: the training
step of its models at the study's batch size on inputs of its data's shape (random
values: the time does not depend on them), timed over a few steps and multiplied by the
steps of one epoch of the real training split (CIFAR: 45,000 images after the 10%
validation hold-out; Fashion-MNIST: 51,000 after 15%).

Float steps (SGD) for every model; QAT W4A4 steps for the students, which the studies
fine-tune quantized. A distillation step adds the teacher's forward pass, unless its
outputs are cached (no augmentation), and co-study its backward pass too.

Usage: python bench/study_epoch_time.py [--steps 5] [--threads N]
Last line: RESULT key=value ... (seconds per epoch, and each student's QAT/float ratio)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from qdistill.models import build_model
from qdistill.quant import calibrate, quantize

# (study config, model key, registered model, options, input shape, classes, train images)
MODELS = [
    ("qkd-densenet-cifar10", "densenet63", "densenet", {"depth": 63, "order": "conv-bn-relu"},
     (3, 32, 32), 10, 45_000),
    ("qkd-densenet-cifar10", "densenet21", "densenet", {"depth": 21, "order": "conv-bn-relu"},
     (3, 32, 32), 10, 45_000),
    ("qkd-densenet-cifar10", "densenet37", "densenet", {"depth": 37, "order": "conv-bn-relu"},
     (3, 32, 32), 10, 45_000),
    ("kd-resnet32x4-cifar100", "resnet32x4", "resnet32x4", {}, (3, 32, 32), 100, 45_000),
    ("kd-resnet32x4-cifar100", "resnet8x4", "resnet8x4", {}, (3, 32, 32), 100, 45_000),
    ("finn-mlp-fashion", "mlp3x256", "mlp", {"hidden": [256, 256, 256]}, (1, 28, 28), 10,
     51_000),
]  # fmt: skip
BATCH = 64
STUDENTS = {"densenet21", "densenet37", "resnet8x4", "mlp3x256"}


def step_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    times = []
    for index in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if index:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}")
    result = {}
    for study, key, name, options, shape, classes, images in MODELS:
        x, y = torch.randn(BATCH, *shape), torch.randint(0, classes, (BATCH,))
        model = build_model(name, shape, classes, **options)
        steps_per_epoch = -(-images // BATCH)
        float_s = step_seconds(model, x, y, args.steps)
        line = f"{study:24s} {key:11s} float {float_s * 1e3:7.1f} ms/step"
        line += f" = {float_s * steps_per_epoch:6.0f} s/epoch"
        result[f"{key}_float_s_per_epoch"] = float_s * steps_per_epoch
        if key in STUDENTS:
            quantized = quantize(model, "w4a4")
            calibrate(quantized, [x])
            qat_s = step_seconds(quantized, x, y, args.steps)
            line += f"  QAT W4A4 {qat_s * 1e3:7.1f} ms/step"
            line += f" = {qat_s * steps_per_epoch:6.0f} s/epoch"
            result[f"{key}_qat_s_per_epoch"] = qat_s * steps_per_epoch
            result[f"{key}_qat_vs_float"] = qat_s / float_s
        print(line)
    print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in result.items()))


if __name__ == "__main__":
    main()
