"""Per-tensor ranges and scales handled as Python numbers on the CPU give exactly the
values of the one-element tensor arithmetic they replace."""

import pytest
import torch

from qdistill.quant import FakeQuantizer, QuantizerSpec
from qdistill.quant.kernels import fake_quantize_with_mask
from qdistill.quant.observers import running_range_scalar, update_running_range
from qdistill.quant.qmath import qparams_from_range, scalar_qparams_from_range


def _random_ranges(count: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    magnitudes = 10.0 ** torch.randint(-4, 4, (count, 2), generator=generator)
    values = torch.randn(count, 2, generator=generator) * magnitudes
    values[: count // 8, 0] = 0.0  # ranges touching zero
    values[count // 8 : count // 4, 1] = values[count // 8 : count // 4, 0]  # empty ranges
    return values.tolist()


@pytest.mark.parametrize(
    "q_range, symmetric", [((0, 255), False), ((-128, 127), False), ((0, 15), False),
                           ((-127, 127), True), ((-7, 7), True), ((0, 3), True)],
)  # fmt: skip
def test_scalar_qparams_equal_tensor_qparams(q_range, symmetric):
    for a, b in _random_ranges(4000):
        lo, hi = min(a, b), max(a, b)
        tensor_scale, tensor_zero = qparams_from_range(
            torch.tensor([lo]), torch.tensor([hi]), *q_range, symmetric
        )
        lo32, hi32 = torch.tensor([lo]).item(), torch.tensor([hi]).item()
        scale, zero = scalar_qparams_from_range(lo32, hi32, *q_range, symmetric)
        assert (scale, zero) == (tensor_scale.item(), tensor_zero.item()), (lo, hi)


@pytest.mark.parametrize("momentum", [0.9, 0.99, 0.5, 0.3, 0.0])
@pytest.mark.parametrize("range_kind", ["ema", "minmax"])
def test_scalar_running_range_equals_tensor_lerp(momentum, range_kind):
    spec = QuantizerSpec(bits=8, symmetric=False, range=range_kind, momentum=momentum)
    for a, b in _random_ranges(4000, seed=1):
        running = [torch.tensor([a]), torch.tensor([b])]
        batch = torch.tensor([b * 0.7 - a]), torch.tensor([a * 1.3 + b])
        expected_min, expected_max = running[0].clone(), running[1].clone()
        update_running_range(expected_min, expected_max, *batch, spec, first=False)
        got = running_range_scalar(
            running[0].item(), running[1].item(), batch[0].item(), batch[1].item(), spec
        )
        assert got == (expected_min.item(), expected_max.item())


def test_scalar_and_tensor_fake_quantize_agree():
    x = torch.randn(64, 300) * 3
    x[0, :2] = torch.tensor([1e6, -1e6])
    for scale, zero in ((0.173, 3), (0.02, 0), (1.5, -4)):
        by_tensor = fake_quantize_with_mask(
            x, torch.tensor([[scale]]), torch.tensor([[float(zero)]]), -8, 7, half_up=False
        )
        scale32 = torch.tensor(scale).item()
        by_number = fake_quantize_with_mask(x, scale32, zero, -8, 7, half_up=False)
        assert torch.equal(by_tensor[0], by_number[0])
        assert torch.equal(by_tensor[1], by_number[1])
        assert not by_number[1].all()  # some codes were clipped


def _observe_all(quantizer, batches, by_numbers: bool, monkeypatch):
    if not by_numbers:
        monkeypatch.setattr(quantizer, "_observe_scalar", lambda x: False)
    quantizer.train()
    outputs = [quantizer(batch) for batch in batches]
    monkeypatch.undo()
    return outputs, {name: value.clone() for name, value in quantizer.state_dict().items()}


@pytest.mark.parametrize(
    "spec",
    [
        QuantizerSpec(bits=4, symmetric=False, range="ema", momentum=0.9),
        QuantizerSpec(bits=8, symmetric=False, range="minmax"),
        QuantizerSpec(bits=8, symmetric=True, range="ema", momentum=0.5),
    ],
)
def test_quantizer_observes_by_numbers_as_by_tensors(spec, monkeypatch):
    generator = torch.Generator().manual_seed(2)
    batches = [torch.randn(32, 50, generator=generator) * (i + 1) + i for i in range(6)]
    tensors = _observe_all(FakeQuantizer(spec, "act"), batches, False, monkeypatch)
    numbers = _observe_all(FakeQuantizer(spec, "act"), batches, True, monkeypatch)
    for by_tensor, by_number in zip(tensors[0], numbers[0], strict=True):
        assert torch.equal(by_tensor, by_number)
    assert tensors[1].keys() == numbers[1].keys()
    for name, value in tensors[1].items():
        assert torch.equal(value, numbers[1][name]), name


def test_non_finite_batch_falls_back_to_tensor_observation():
    quantizer = FakeQuantizer(QuantizerSpec(bits=8, symmetric=False, range="ema"), "act")
    quantizer.train()
    quantizer(torch.tensor([-1.0, 2.0]))
    assert not quantizer._observe_scalar(torch.tensor([0.0, float("inf")]))
    quantizer(torch.tensor([0.0, float("inf")]))  # no error; the range is what tensors give
    assert quantizer.running_max.item() == float("inf")
