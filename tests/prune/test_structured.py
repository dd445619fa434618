import copy

import pytest
import torch
from torch import nn

from qdistill.errors import ConfigError
from qdistill.export import export_model
from qdistill.models import build_model, load_model, save_model
from qdistill.prune.reshape import changed_shapes
from qdistill.prune.structured import (
    ChannelPruning,
    count_macs_params,
    pixel_shuffle_feeders,
    prune_channels,
)
from qdistill.quant import calibrate, quantize

NETS = {  # name: (input shape, outputs, options)
    "small_cnn": ((1, 8, 8), 10, {}),
    "mlp": ((1, 8, 8), 10, {"hidden": [32, 32]}),
    "srresnet": ((3, 12, 12), 3, {"features": 16, "blocks": 2}),  # residual adds
    "espcn": ((1, 12, 12), 1, {}),  # pixel shuffle
}


def _net(name):
    shape, outputs, options = NETS[name]
    torch.manual_seed(0)
    model = build_model(name, shape, outputs, **options).eval()
    return model, torch.randn(4, *shape)


def _gradients(model, x):
    return lambda: [model(x).square().mean()]


def _widths(model):
    return {
        n: m.weight.shape[0]
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    }


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("importance", ["random", "l1", "l2", "lamp", "taylor"])
def test_every_importance_prunes_every_kind_of_net(name, importance):
    model, x = _net(name)
    out_shape = model(x).shape
    before = _widths(model)
    report = prune_channels(
        model,
        x,
        ChannelPruning(importance=importance, ratio=0.5),
        gradient_batches=_gradients(model, x),
    )
    after = _widths(model)
    assert model(x).shape == out_shape
    assert report.macs_after < 0.8 * report.macs_before  # SR heads and shuffles stay whole
    assert report.params_after < report.params_before
    last = list(after)[-1]
    assert after[last] == before[last]  # the output layer keeps its width
    assert report.channels and all(a < b for b, a in report.channels.values())
    assert set(report.channels) == {n for n in before if after[n] != before[n]}


def test_pixel_shuffle_feeders_are_left_whole():
    model, x = _net("srresnet")
    feeders = pixel_shuffle_feeders(model, x)
    assert feeders and all(name.startswith("upsampling") for name in feeders)
    before = _widths(model)
    prune_channels(model, x, ChannelPruning(ratio=0.5, importance="l1"))
    after = _widths(model)
    assert all(after[name] == before[name] for name in feeders)


def test_ignored_patterns_and_global_scope():
    model, x = _net("small_cnn")
    report = prune_channels(model, x, ChannelPruning(ratio=0.5, ignore=["features.0.0"]))
    assert "features.0.0" not in report.channels and "features.1.0" in report.channels
    model, x = _net("mlp")
    report = prune_channels(model, x, ChannelPruning(ratio=0.5, scope="global", importance="l2"))
    assert report.macs_after < report.macs_before


def test_iterative_steps_fine_tune_between_and_reach_the_ratio():
    model, x = _net("small_cnn")
    one_shot = copy.deepcopy(model)
    calls = []
    prune_channels(
        model,
        x,
        ChannelPruning(ratio=0.5, steps=3, importance="l1"),
        between_steps=lambda m, step: calls.append((step, _widths(m)["features.1.0"])),
    )
    assert [step for step, _ in calls] == [1, 2]
    assert calls[0][1] > calls[1][1] > _widths(model)["features.1.0"]
    prune_channels(one_shot, x, ChannelPruning(ratio=0.5, importance="l1"))
    assert _widths(one_shot) == _widths(model)


def test_targets_are_met_or_refused():
    model, x = _net("small_cnn")
    macs, _ = count_macs_params(model, x)
    report = prune_channels(model, x, ChannelPruning(ratio=0.9, target_macs=0.5))
    assert report.macs_after <= 0.5 * macs and report.macs_after > 0.3 * macs  # stops early
    model, x = _net("small_cnn")
    with pytest.raises(ConfigError, match="cannot bring macs down to 1%"):
        prune_channels(model, x, ChannelPruning(ratio=0.2, target_macs=0.01))


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="ratio"):
        ChannelPruning(ratio=1.5)
    with pytest.raises(ValueError, match="importance"):
        ChannelPruning(importance="magic")
    model, x = _net("small_cnn")
    with pytest.raises(ConfigError, match="taylor importance needs training batches"):
        prune_channels(model, x, ChannelPruning(importance="taylor"))
    quantized = quantize(model, "w8a8")
    with pytest.raises(ConfigError, match="prune the float model, then quantize"):
        prune_channels(quantized, x, ChannelPruning())


@pytest.mark.parametrize("name", ["small_cnn", "srresnet"])
def test_a_pruned_model_reloads_quantizes_and_exports(tmp_path, name):
    model, x = _net(name)
    shape, outputs, options = NETS[name]
    prune_channels(model, x, ChannelPruning(ratio=0.5, importance="lamp"))
    reference = build_model(name, shape, outputs, **options)
    shapes = changed_shapes(model, reference)
    assert shapes
    common = {"model_name": name, "model_options": options, "input_shape": shape}
    path = save_model(
        tmp_path / "p.safetensors", model, **common, num_outputs=outputs, pruned_shapes=shapes
    )
    loaded, metadata = load_model(path)
    assert metadata["pruned_shapes"] == shapes
    assert torch.allclose(loaded(x), model(x), atol=1e-6)
    # quantized after pruning (BN folded away): the float shapes still rebuild it
    quantized = quantize(loaded, "w8a8", fold_bn=True)
    calibrate(quantized, [x])
    qpath = save_model(
        tmp_path / "q.safetensors",
        quantized,
        **common,
        num_outputs=outputs,
        fold_bn=True,
        pruned_shapes=shapes,
    )
    reloaded, _ = load_model(qpath)
    assert torch.allclose(reloaded(x), quantized(x), atol=1e-5)
    report = export_model(reloaded, tmp_path / "q.onnx", "onnx-qdq", x)
    assert report.passed and (tmp_path / "q.onnx").is_file()


def test_a_pruned_model_costs_less_on_an_fpga():
    from qdistill.hardware.estimate import DataflowTarget, estimate_dataflow

    model, x = _net("small_cnn")
    plan = {"*": "w4a4", "pool.0": "a8"}
    estimates = []
    for ratio in (None, 0.5):
        net = copy.deepcopy(model)
        if ratio:
            prune_channels(net, x, ChannelPruning(ratio=ratio))
        quantized = quantize(net, plan, fold_bn=True)
        calibrate(quantized, [x])
        estimates.append(estimate_dataflow(quantized, (1, 8, 8), DataflowTarget(fps=10_000)))
    full, pruned = estimates
    assert pruned.total.lut < full.total.lut
    assert pruned.total.bram18 <= full.total.bram18


def test_batchnorm_statistics_are_estimated_again_after_pruning():
    from qdistill.prune.structured import recalibrate_batchnorm

    model, x = _net("small_cnn")
    batches = [torch.randn(32, 1, 8, 8) * 3 + 1 for _ in range(4)]
    prune_channels(model, x, ChannelPruning(ratio=0.5), calibration_batches=lambda: iter(batches))
    conv, norm = model.features[0][0], model.features[0][1]
    with torch.no_grad():
        outputs = torch.cat([conv(b) for b in batches])
    assert torch.allclose(norm.running_mean, outputs.mean((0, 2, 3)), atol=1e-4)
    assert norm.momentum == 0.1 and not model.training
    assert recalibrate_batchnorm(nn.Sequential(nn.Linear(2, 2)), batches, 2) == 0


def test_a_model_torch_pruning_cannot_trace_is_a_clear_error():
    class NeedsPairs(nn.Module):  # its forward refuses the single example the tracer uses
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

        def forward(self, x):
            if len(x) < 2:
                raise ValueError("needs a batch of at least two")
            return self.body(x)

    model = NeedsPairs()
    with pytest.raises(ConfigError, match="cannot trace this model"):
        prune_channels(model, torch.randn(4, 4), ChannelPruning(ratio=0.5))


def test_a_latency_target_prunes_until_the_measurement_meets_it():
    model, x = _net("small_cnn")
    full_macs, _ = count_macs_params(model, x)

    def fake_ms(m):  # deterministic stand-in for a timing: 1 ms per 100k MACs
        return count_macs_params(m, x)[0] / 1e5

    report = prune_channels(
        model, x, ChannelPruning(ratio=0.9, target_latency_ms=3.0), measure_latency_ms=fake_ms
    )
    assert fake_ms(model) <= 3.0 < full_macs / 1e5 and report.channels
    untouched, x = _net("small_cnn")
    report = prune_channels(
        untouched, x, ChannelPruning(target_latency_ms=100.0), measure_latency_ms=fake_ms
    )
    assert report.channels == {}  # already fast enough: nothing pruned
    with pytest.raises(ConfigError, match=r"cannot bring latency down to 0\.01 ms"):
        prune_channels(
            untouched,
            x,
            ChannelPruning(ratio=0.3, target_latency_ms=0.01),
            measure_latency_ms=fake_ms,
        )
    with pytest.raises(ConfigError, match="needs a way to measure latency"):
        prune_channels(untouched, x, ChannelPruning(target_latency_ms=1.0))
