"""Super-resolution throughput: frames per second of ESPCN x2 (RGB) on 256x256 and
512x512 LR inputs, side by side in one run, for PyTorch float (eager), onnxruntime
float and onnxruntime int8 QDQ (the W8A8 model, verified export), at batch 1, with
the paper's tanh activations and with ReLU.

onnxruntime runs a convolution on integers (QLinearConv) only when its output is
requantized right away; a ReLU (or a pixel shuffle) between it and the next quantized
layer commutes with quantization and the export moves the quantizer up, but a tanh
does not, so a tanh ESPCN runs its convolutions in float on dequantized weights.

The models are trained briefly on the bundled photos and quantized W8A8 by PTQ; speed
does not depend on how well they are trained. Each export is verified against
PyTorch before it is timed (PSNR between the outputs).

Usage: python bench/sr_throughput.py [--repeats 10] [--epochs 2]
Last line: RESULT key=value ...
"""

from __future__ import annotations

import argparse
import itertools

import torch

from qdistill.data import build_dataset
from qdistill.experiment.stages.quantize import quantize_calibrated
from qdistill.experiment.stages.training import train_with_validation
from qdistill.hardware.benchmark import benchmark_model
from qdistill.models import build_model
from qdistill.quant import QuantPlan
from qdistill.tasks import make_task
from qdistill.train import TrainConfig

BACKENDS = ("torch", "ort_float", "ort_int8")
ACTIVATIONS = ("tanh", "relu")
SIZES = (256, 512)


def quantized_espcn(task, act: str, epochs: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("espcn", task.data.input_shape, task.data.num_outputs, act=act)
    train = TrainConfig(epochs=epochs, batch_size=16)
    train_with_validation(model, task, train, 0, f"espcn-{act}")
    calibration = list(itertools.islice(task.calibration_batches(), 4))
    plan = QuantPlan.from_config("w8a8")
    quantized, _ = quantize_calibrated(model, plan, calibration, 4, torch.device("cpu"))
    return quantized.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    data = build_dataset("photos", scale=2, patches_per_epoch=1024)
    task = make_task(data, torch.device("cpu"))
    fps: dict[str, float] = {}
    print(f"threads {torch.get_num_threads()}, batch 1, median of {args.repeats} repeats")
    print(f"{'act':>5} {'input':>6} {'backend':>10} {'ms/frame':>10} {'frames/s':>10}")
    for act in ACTIVATIONS:
        quantized = quantized_espcn(task, act, args.epochs)
        for size in SIZES:
            result = benchmark_model(
                quantized,
                (3, size, size),
                torch.rand(2, 3, size, size),
                backends=BACKENDS,
                batch_sizes=(1,),
                repeats=args.repeats,
                time_limit_s=120.0,
            )
            for backend in result.backends:
                if backend.unavailable:
                    print(
                        f"{act:>5} {size:>6} {backend.backend:>10} unavailable: "
                        f"{backend.unavailable}"
                    )
                    continue
                ms = backend.latency_b1_ms
                fps[f"{act}_{backend.backend}_{size}"] = 1000.0 / ms
                print(f"{act:>5} {size:>6} {backend.backend:>10} {ms:>10.2f} {1000.0 / ms:>10.1f}")
    fields = [
        f"{act}_torch_fps_{s}={fps[f'{act}_torch_{s}']:.2f}"
        for act in ACTIVATIONS
        for s in SIZES
        if f"{act}_torch_{s}" in fps
    ]
    for act in ACTIVATIONS:
        for size in SIZES:
            pairs = (("ort_float", "torch"), ("ort_int8", "torch"), ("ort_int8", "ort_float"))
            for fast, slow in pairs:
                a, b = fps.get(f"{act}_{fast}_{size}"), fps.get(f"{act}_{slow}_{size}")
                if a and b:
                    fields.append(f"{act}_{fast}_vs_{slow}_{size}={a / b:.3f}")
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    main()
