"""Super-resolution throughput: frames per second of ESPCN x2 (RGB) on 256x256 and
512x512 LR inputs, side by side in one run, for PyTorch float (eager), onnxruntime
float and onnxruntime int8 QDQ (the W8A8 model, verified export), at batch 1.

The model is trained briefly on the bundled photos and quantized W8A8 by PTQ; speed
does not depend on how well it is trained. The export is verified against PyTorch
before it is timed (PSNR between the outputs).

Usage: python bench/sr_throughput.py [--repeats 10] [--epochs 2]
Last line: RESULT key=value ...
"""

from __future__ import annotations

import argparse
import itertools

import torch

from qdistill.data import build_dataset
from qdistill.experiment.steps import quantize_calibrated, train_with_validation
from qdistill.experiment.tasks import make_task
from qdistill.hardware.benchmark import benchmark_model
from qdistill.models import build_model
from qdistill.train import TrainConfig

BACKENDS = ("torch", "ort_float", "ort_int8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    data = build_dataset("photos", scale=2, patches_per_epoch=1024)
    task = make_task(data, torch.device("cpu"))
    model = build_model("espcn", data.input_shape, data.num_outputs)
    train_with_validation(model, task, TrainConfig(epochs=args.epochs, batch_size=16), 0, "espcn")
    calibration = list(itertools.islice(task.calibration_batches(), 4))
    quantized, _ = quantize_calibrated(model, "w8a8", calibration, 4, torch.device("cpu"))
    quantized.eval()
    fps: dict[str, float] = {}
    print(f"threads {torch.get_num_threads()}, batch 1, median of {args.repeats} repeats")
    print(f"{'input':>10} {'backend':>10} {'ms/frame':>10} {'frames/s':>10}")
    for size in (256, 512):
        sample = torch.rand(2, 3, size, size)
        result = benchmark_model(
            quantized,
            (3, size, size),
            sample,
            backends=BACKENDS,
            batch_sizes=(1,),
            repeats=args.repeats,
            time_limit_s=120.0,
        )
        for backend in result.backends:
            if backend.unavailable:
                print(f"{size:>10} {backend.backend:>10} unavailable: {backend.unavailable}")
                continue
            ms = backend.latency_b1_ms
            fps[f"{backend.backend}_{size}"] = 1000.0 / ms
            print(f"{size:>10} {backend.backend:>10} {ms:>10.2f} {1000.0 / ms:>10.1f}")
    ratios = {}
    for size in (256, 512):
        torch_fps = fps.get(f"torch_{size}")
        for backend in ("ort_float", "ort_int8"):
            if torch_fps and f"{backend}_{size}" in fps:
                ratios[f"{backend}_vs_torch_{size}"] = fps[f"{backend}_{size}"] / torch_fps
        if f"ort_int8_{size}" in fps and f"ort_float_{size}" in fps:
            ratios[f"int8_vs_ort_float_{size}"] = fps[f"ort_int8_{size}"] / fps[f"ort_float_{size}"]
    fields = [f"torch_fps_{s}={fps[f'torch_{s}']:.2f}" for s in (256, 512) if f"torch_{s}" in fps]
    fields += [f"{k}={v:.3f}" for k, v in ratios.items()]
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    main()
