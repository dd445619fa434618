"""The GPU path end to end: a sweep with float, QAT, KD and QKD students on ``device:
cuda``, mixed-precision float training, and the same quantized model on GPU and CPU.
Skipped without a CUDA GPU (marked ``gpu``)."""

import copy

import pytest
import torch

from qdistill.data import Batches
from qdistill.experiment import parse_experiment, run_experiment
from qdistill.metrics import evaluate_classifier
from qdistill.quant import quantize
from qdistill.train import TrainConfig, fit

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
EPOCHS = {"epochs": 2, "optimizer": {"lr": 0.003}}


def test_a_sweep_trains_quantizes_distils_exports_and_benchmarks_on_the_gpu(tmp_path, tiny_config):
    config = copy.deepcopy(tiny_config)
    config["device"] = "cuda"
    config["teacher"]["train"]["precision"] = "bf16"
    config["students"] += [
        {"name": "kd", "method": "qat", "bits": "w4a4", "train": EPOCHS, "distill": {}},
        {
            "name": "qkd",
            "method": "qkd",
            "bits": "w4a4",
            "phases": {"self_study": EPOCHS, "co_study": EPOCHS, "tutoring": EPOCHS},
        },
    ]
    config["export"] = {"runs": ["qat"], "formats": ["onnx-qdq"]}
    config["benchmark"] = {"runs": ["teacher"], "batch_sizes": [1, 64], "repeats": 3}
    outcome = run_experiment(parse_experiment(config), tmp_path)
    assert not outcome.failures and len(outcome.records) == 7
    assert all(r.device.startswith("cuda") for r in outcome.records)
    by_name = {r.name: r for r in outcome.records}
    assert by_name["teacher"].metrics["test_acc"] > 85
    for name in ("ptq-w8a8", "qat", "kd", "qkd"):
        metrics = by_name[name].metrics
        assert metrics["test_acc_integer"] == pytest.approx(metrics["test_acc"], abs=1.0), name
    assert outcome.exports and all(e.passed for e in outcome.exports)
    assert outcome.benchmarks


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_float_training_learns_on_the_gpu(digits, precision):
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)
    ).cuda()
    config = TrainConfig(epochs=4, optimizer={"lr": 3e-3}, precision=precision)
    batches = Batches(digits.train, 64, shuffle=True, generator=torch.Generator().manual_seed(0))
    fit(model, batches, config, device="cuda", quiet=True)
    accuracy = evaluate_classifier(model, Batches(digits.val, 256), device="cuda")["acc"]
    assert accuracy > 85


def test_a_quantized_model_computes_the_same_on_gpu_and_cpu():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 30 * 30, 10),
    )
    quantized = quantize(model, "w4a4")
    x = torch.rand(16, 3, 32, 32)
    quantized.eval()
    with torch.no_grad():
        cpu = quantized(x)
        gpu = copy.deepcopy(quantized).cuda()(x.cuda()).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-4)
