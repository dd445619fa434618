"""INT8 deployment speed: onnxruntime int8 QDQ vs onnxruntime float vs PyTorch eager float.

Models trained on the bundled digits (the research's 3x1200 MLP and the small CNN),
quantized W8A8 by PTQ (BatchNorm folded; the CNNs through their global pooling,
``@pooling``, so onnxruntime keeps the last convolution integer), exported with
qdistill's verified exporters. Throughput at batch 64 is the median of interleaved
rounds, each block after a pause in which the previous runtime's spinning worker threads
go to sleep (without it they take a core from the next one); the int8 model's digits
test accuracy (onnxruntime) is compared with the fake-quant model's (PyTorch). A
28x28-input CNN (random weights) shows a less overhead-bound case.

Usage: python bench/int8_speedup.py [--rounds 7] [--iters 30]
Last line: RESULT key=value ...
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from qdistill.data import Batches, build_dataset
from qdistill.export import export_model
from qdistill.metrics import evaluate_classifier
from qdistill.models import build_model
from qdistill.quant import calibrate, quantize
from qdistill.train import TrainConfig, fit

BATCH = 64
IDLE_S = 0.2
PLANS = {"kl_mlp_teacher": "w8a8", "small_cnn": {"*": "w8a8", "@pooling": "a8"}}


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def throughput(runners: dict, rounds: int, iters: int) -> dict[str, float]:
    """Images per second of each runner (median over interleaved rounds)."""
    for run in runners.values():
        for _ in range(5):
            run()
    samples = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            time.sleep(IDLE_S)  # the previous runtime's spinning threads go to sleep
            run()
            start = time.perf_counter()
            for _ in range(iters):
                run()
            samples[name].append(BATCH * iters / (time.perf_counter() - start))
    return {name: statistics.median(v) for name, v in samples.items()}


def onnx_accuracy(sess: ort.InferenceSession, data) -> float:
    logits = sess.run(None, {"input": data.test.x.numpy()})[0]
    return 100.0 * float((logits.argmax(1) == data.test.y.numpy()).mean())


def measure(name, float_model, quantized, calib, data, workdir, args) -> dict[str, float]:
    float_path, int8_path = workdir / f"{name}-float.onnx", workdir / f"{name}-int8.onnx"
    export_model(float_model, float_path, "onnx", calib[:32], write_report=False)
    report = export_model(quantized, int8_path, "onnx-qdq", calib[:32], write_report=False)
    x = np.ascontiguousarray(calib[:BATCH].numpy())
    xt = calib[:BATCH]
    float_sess, int8_sess = session(float_path), session(int8_path)
    with torch.no_grad():
        speeds = throughput(
            {
                "torch_float": lambda: float_model(xt),
                "ort_float": lambda: float_sess.run(None, {"input": x}),
                "ort_int8": lambda: int8_sess.run(None, {"input": x}),
            },
            args.rounds,
            args.iters,
        )
    line = "  ".join(f"{k} {v:8.0f} img/s" for k, v in speeds.items())
    print(f"{name}: {line}  (export max |diff| {report.comparison.max_abs_diff:.2g})")
    result = {
        f"{name}_int8_vs_ort_float": speeds["ort_int8"] / speeds["ort_float"],
        f"{name}_int8_vs_torch_float": speeds["ort_int8"] / speeds["torch_float"],
    }
    if data is not None:
        fake = evaluate_classifier(quantized, Batches(data.test, 256))["acc"]
        deployed = onnx_accuracy(int8_sess, data)
        print(
            f"{name}: digits test accuracy fake-quant {fake:.2f}%, onnxruntime int8 "
            f"{deployed:.2f}% (difference {deployed - fake:+.2f} pt)"
        )
        result[f"{name}_int8_acc_diff_pt"] = deployed - fake
    return result


def trained(name: str, data, epochs: int, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(name, data.input_shape, 10, **options)
    batches = Batches(data.train, 64, shuffle=True, generator=torch.Generator().manual_seed(0))
    fit(model, batches, TrainConfig(epochs=epochs, optimizer={"lr": 1e-3}), quiet=True)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=30)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    data = build_dataset("digits")
    print(
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, "
        f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, batch {BATCH}"
    )
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name, model_name, epochs in (
            ("mlp3x1200", "kl_mlp_teacher", 15),
            ("cnn", "small_cnn", 20),
        ):
            model = trained(model_name, data, epochs)
            quantized = quantize(model, PLANS[model_name], fold_bn=True)
            calibrate(quantized, Batches(data.train, 64), 8)
            results.update(measure(name, model, quantized, data.train.x, data, workdir, args))
        torch.manual_seed(0)
        cnn28 = build_model("small_cnn", (1, 28, 28), 10).eval()
        inputs = torch.randn(256, 1, 28, 28)
        quantized = quantize(cnn28, PLANS["small_cnn"], fold_bn=True)
        calibrate(quantized, [inputs[:128], inputs[128:]])
        results.update(measure("cnn28", cnn28, quantized, inputs, None, workdir, args))
    print("target: onnxruntime int8 >= 3x onnxruntime float; int8 accuracy within 0.1 pt")
    print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in results.items()))


if __name__ == "__main__":
    main()
