import pytest
import torch
from torch import nn

from qdistill.errors import ConfigError
from qdistill.models import MODELS, build_model, model_task
from qdistill.quant import calibrate, quantize
from qdistill.quant.equalize import equalizable_pairs, equalize_ranges


def _model_and_inputs(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if model_task(name) == "super_resolution":
        return build_model(name, (1, 12, 12), 1, scale=2), torch.rand(8, 1, 12, 12)
    return build_model(name, (1, 8, 8), 10), torch.rand(8, 1, 8, 8)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_equalization_keeps_every_zoo_model_s_function(name):
    model, x = _model_and_inputs(name)
    model.eval()
    with torch.no_grad():
        before = model(x)
        pairs = equalize_ranges(model, [x])
        after = model(x)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    assert len(pairs) == len(equalizable_pairs(model))


def test_relu_espcn_pairs_and_tanh_espcn_has_none():
    relu = build_model("espcn", (1, 12, 12), 1, scale=2, act="relu")
    assert equalizable_pairs(relu) == [
        ("feature_extraction.0", "body.0"),
        ("body.0", "upsampling.0"),
    ]
    x = torch.rand(4, 1, 12, 12)
    (pair,) = equalize_ranges(relu, [x], consumers=["@last"])
    assert pair.consumer == "upsampling.0"
    with pytest.raises(ConfigError, match=r"'feature\*' matches no equalizable layer; .*body\.0"):
        equalize_ranges(relu, [x], consumers=["feature*"])
    # tanh(x / s) != tanh(x) / s: nothing can be rescaled
    assert equalizable_pairs(build_model("espcn", (1, 12, 12), 1, scale=2)) == []


class _Uneven(nn.Module):
    """conv -> ReLU -> conv whose middle channels span ranges 100x apart."""

    def __init__(self, norm: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Conv2d(2, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8) if norm else nn.Identity()
        self.act = nn.ReLU()
        self.second = nn.Conv2d(8, 4, 3, padding=1)
        factors = torch.logspace(-2, 0, 8)
        with torch.no_grad():
            self.first.weight.abs_().mul_(factors[:, None, None, None])
            self.first.bias.fill_(0.01).mul_(factors)
            self.second.weight.div_(factors[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.act(self.norm(self.first(x))))


def _channel_peaks(model: _Uneven, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.act(model.norm(model.first(x))).amax(dim=(0, 2, 3))


def test_strength_one_equalizes_activation_ranges_and_half_balances_them_with_weights():
    x = torch.rand(16, 2, 6, 6)
    peaks = _channel_peaks(_Uneven(), x)
    spread = float(peaks.max() / peaks.min())
    full = _Uneven()
    (pair,) = equalize_ranges(full, [x], strength=1.0)
    assert (pair.producer, pair.consumer, pair.channels) == ("first", "second", 8)
    assert pair.spread == pytest.approx(spread, rel=1e-4) and spread > 50
    peaks = _channel_peaks(full, x)
    torch.testing.assert_close(peaks, peaks.max().expand(8), rtol=1e-4, atol=0)
    half = _Uneven()
    equalize_ranges(half, [x])  # default 0.5
    peaks = _channel_peaks(half, x)
    columns = half.second.weight.abs().amax(dim=(0, 2, 3))
    balance = peaks / columns  # activation range over weight range, per channel
    torch.testing.assert_close(balance, balance.max().expand(8), rtol=1e-4, atol=0)
    assert float(peaks.max() / peaks.min()) < spread / 10


def test_batchnorm_producer_is_rescaled_in_training_mode_too():
    x = torch.rand(16, 2, 6, 6)
    model = _Uneven(norm=True).train()
    before = model(x)
    reference = _Uneven(norm=True).train()
    (pair,) = equalize_ranges(model, [x])
    assert pair.producer == "norm"
    model.train()
    torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(before, reference(x))


def test_equalization_cuts_the_error_of_4_bit_activations():
    x = torch.rand(64, 2, 6, 6)
    plain, equalized = _Uneven().eval(), _Uneven().eval()
    equalize_ranges(equalized, [x])
    with torch.no_grad():
        reference = plain(x)
    errors = []
    for model in (plain, equalized):
        q = quantize(model, {"*": "w8a8", "second": "w8a4"})
        calibrate(q, [(x,)])
        with torch.no_grad():
            errors.append(float((q(x) - reference).square().mean()))
    assert errors[1] < errors[0] / 4, errors


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.second = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.first(x))
        return y + self.second(y)  # y feeds the sum too: rescaling it would change the sum


class _Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.act(self.conv(x)))  # one weight, two calls


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            return self.layers(x)
        return -self.layers(x)


def test_branches_and_shared_modules_are_left_alone_and_sequentials_are_the_fallback():
    assert equalizable_pairs(_Residual()) == []
    assert equalizable_pairs(_Shared()) == []
    model = _Untraceable()
    assert equalizable_pairs(model) == [("layers.0", "layers.2")]
    x = torch.rand(8, 4)
    before = model(x)
    equalize_ranges(model, [x])
    torch.testing.assert_close(model(x), before)


def test_bad_requests_are_config_errors():
    model = _Uneven()
    with pytest.raises(ConfigError, match=r"strength 1.5 must be in \[0, 1\]"):
        equalize_ranges(model, [torch.rand(2, 2, 6, 6)], strength=1.5)
    with pytest.raises(ConfigError, match="before quantizing"):
        equalize_ranges(quantize(model, "w8a8"), [torch.rand(2, 2, 6, 6)])


def test_runner_step_says_when_there_is_nothing_to_equalize():
    from types import SimpleNamespace

    from qdistill.experiment.stages.equalize import EqualizeStage, equalize_before_quantizing

    task = SimpleNamespace(
        calibration_batches=lambda: [(torch.rand(4, 1, 12, 12),)], device=torch.device("cpu")
    )
    lines = []
    tanh = build_model("espcn", (1, 12, 12), 1, scale=2)
    assert equalize_before_quantizing(tanh, task, EqualizeStage(), lines.append) == []
    assert lines == [
        "equalize: no conv/linear -> ReLU -> conv/linear pair to rescale; model unchanged"
    ]
    relu = build_model("espcn", (1, 12, 12), 1, scale=2, act="relu")
    pairs = equalize_before_quantizing(relu, task, EqualizeStage(strength=0.5), lines.append)
    assert [p["consumer"] for p in pairs] == ["body.0", "upsampling.0"]
    assert lines[1].startswith("equalized feature_extraction.0 -> body.0: 64 channels")
