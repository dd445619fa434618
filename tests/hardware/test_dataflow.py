"""Mapping models onto dataflow units, and what cannot be mapped."""

import copy
import time

import pytest
import torch
from torch import nn

from qdistill import quantize
from qdistill.hardware.dataflow import DataflowError, dataflow_units
from qdistill.hardware.estimate import (
    DataflowTarget,
    check_reachable,
    estimate_dataflow,
)
from qdistill.models import build_model


def calibrated(model, plan="w4a4", shape=(1, 8, 8)):
    quantized = quantize(model, plan)
    with torch.no_grad():
        quantized.train()
        quantized(torch.rand(8, *shape))
    return quantized.eval()


def kinds(units):
    return [u.kind for u in units]


def test_mlp_maps_to_input_thresholds_and_one_mvau_per_layer():
    torch.manual_seed(0)
    model = calibrated(build_model("mlp", (1, 8, 8), 10, hidden=[32, 16]))
    units = dataflow_units(model, (1, 8, 8))
    assert kinds(units) == ["thresholding", "mvau", "mvau", "mvau", "elementwise", "elementwise"]
    first, hidden = units[1], units[2]
    assert (first.mw, first.mh, first.output_bits) == (64, 32, 4)  # thresholds absorbed
    assert (hidden.mw, hidden.mh) == (32, 16)
    assert units[3].output_bits is None  # the classifier outputs its accumulator
    # the input is quantized in its streamed layout (1 channel, 64 pixels), before flatten
    assert (units[0].channels, units[0].pixels, units[0].input_bits) == (1, 64, 32)


def test_convolutions_get_padding_and_windows_and_pools_a_depthwise_window():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 10),
    )  # fmt: skip
    units = dataflow_units(calibrated(model), (1, 8, 8))
    assert kinds(units) == [
        "thresholding", "padding", "sliding_window", "mvau", "sliding_window", "pool",
        "mvau", "mvau", "elementwise", "elementwise",
    ]  # fmt: skip
    conv, window, pool = units[3], units[4], units[5]
    assert (conv.mw, conv.mh, conv.pixels) == (9, 4, 64)
    assert window.depthwise and pool.window == window.name
    assert window.bits == conv.output_bits == 4  # the pool works on thresholded values
    assert (units[6].mw, units[6].pixels) == (4, 16)  # 1x1 conv: no window


def test_super_resolution_models_map_and_a_trailing_pixel_shuffle_is_left_to_the_host():
    torch.manual_seed(0)
    espcn = calibrated(build_model("espcn", (1, 8, 8), 1, scale=2, act="relu"), "w4a4")
    assert "reshape" not in kinds(dataflow_units(espcn, (1, 8, 8)))
    finn_espcn = calibrated(build_model("espcn_finn", (1, 8, 8), 1, scale=2), "w4a4")
    assert "upsample" in kinds(dataflow_units(finn_espcn, (1, 8, 8)))
    faster = calibrated(build_model("faster_espcn", (1, 8, 8), 1, scale=2), "w4a4")
    units = dataflow_units(faster, (1, 8, 8))
    deconv = [u for u in units if u.layer.startswith("upsampling")]
    assert kinds(deconv) == ["padding", "sliding_window", "mvau", "elementwise", "elementwise"]
    assert deconv[2].pixels == 16 * 16  # the transposed conv runs at the output size


def test_estimate_is_pure_and_fast():
    torch.manual_seed(0)
    model = calibrated(build_model("espcn", (1, 32, 32), 1, scale=2, act="relu"), "w4a4")
    before = copy.deepcopy(model.state_dict())
    started = time.perf_counter()
    estimate = estimate_dataflow(model, (1, 32, 32), DataflowTarget(fps=1000))
    assert time.perf_counter() - started < 5.0  # generous; typically ~0.1 s
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert estimate.fps >= 1000 and estimate.total.lut > 0
    assert estimate.latency_ms == pytest.approx(estimate.latency_cycles / 1e5)


def test_a_depthwise_convolution_is_a_vvau_behind_a_depthwise_window():
    from qdistill.hardware.estimate import DataflowTarget, estimate_units

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), nn.ReLU(),
        nn.Conv2d(8, 4, 1), nn.Flatten(), nn.Linear(4 * 16, 10),
    )  # fmt: skip
    units = dataflow_units(calibrated(model), (1, 8, 8))
    window, vvau = units[5], units[6]
    assert (window.kind, vvau.kind) == ("sliding_window", "vvau")
    assert window.depthwise and vvau.window == window.name and vvau.inputs == [window.name]
    assert (vvau.channels, vvau.kernel, vvau.pixels) == (8, (3, 3), 16)
    assert vvau.output_bits == 4  # the next conv's input quantizer became its thresholds
    # folding (1152 / (PE x SIMD) cycles): PE first, then SIMD over the 9 window positions
    # once PE is at 8; the window's SIMD follows PE. At 300 cycles PE 4 would do, but the
    # window at SIMD 4 would not, so both rise to 8 (FINN's rule); 16 cycles is out of
    # the other units' reach, so everything is balanced to the slowest (two passes).
    folds = {}
    for cycles in (300, 128, 16):
        estimate = estimate_units(units, DataflowTarget(fps=1e8 / cycles))
        by_name = {u.name: (u.pe, u.simd) for u in estimate.units}
        folds[cycles] = (by_name[vvau.name], by_name[window.name][1])
    assert folds == {300: ((8, 1), 8), 128: ((8, 3), 8), 16: ((8, 3), 8)}


def test_a_concatenation_joins_streams_and_its_consumers_threshold_the_join():
    from qdistill.hardware.folding import fold_to_cycles

    class Dense(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
            self.grow = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
            self.head = nn.Sequential(nn.Conv2d(10, 8, 1), nn.Flatten(), nn.Linear(512, 10))

        def forward(self, x):
            x = self.stem(x)
            return self.head(torch.cat([x, self.grow(x)], 1))

    torch.manual_seed(0)
    units = dataflow_units(calibrated(Dense()), (1, 8, 8))
    (concat,) = [u for u in units if u.kind == "concat"]
    assert (concat.parts, concat.channels, concat.pixels) == ([4, 6], 10, 64)
    grow = next(u for u in units if u.layer == "grow.0" and u.kind == "mvau")
    assert concat.inputs[1] == grow.name and grow.output_bits is None  # its accumulator
    after = units[units.index(concat) + 1]
    assert (after.kind, after.inputs, after.channels) == ("thresholding", [concat.name], 10)
    assert after.input_bits == concat.bits == grow.acc_bits
    # SIMD divides every input's channels: gcd(4, 6) = 2 at most
    assert concat.fold_limits() == {"simd": 2}
    assert concat.cycles(fold_to_cycles(units, 1)[concat.name]) == 64 * 10 // 2


@pytest.mark.parametrize(
    ("model", "plan", "message"),
    [
        (nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), None, "is not quantized"),
        (nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), "w4", "has float inputs"),
        (nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.GELU(), nn.Linear(8, 2)), "w4a4",
         r"'2' \(GELU\) has no dataflow unit"),
        (nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                       nn.Linear(4, 2)), "w4a4", "receives an unquantized tensor from '0'"),
        (nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 8, 3, groups=2)), "w4a4",
         r"a grouped convolution \(2 groups of 4 channels\) has no FINN unit"),
    ],
)  # fmt: skip
def test_unmappable_models_name_the_layer(model, plan, message):
    if plan is not None:
        model = calibrated(model, plan)
    with pytest.raises(DataflowError, match=message):
        dataflow_units(model, (1, 8, 8))


def test_an_unreachable_target_names_the_maximum_and_the_limiting_unit():
    torch.manual_seed(0)
    model = calibrated(build_model("mlp", (1, 8, 8), 10, hidden=[64]))
    estimate = estimate_dataflow(model, (1, 8, 8), DataflowTarget(fps=1e9))
    assert not estimate.target_met
    with pytest.raises(
        DataflowError,
        match=r"1e\+09 FPS is unreachable at 100 MHz: the fastest "
        r"folding reaches [\d,]+ FPS, limited by features.1:input_thresholds",
    ):
        check_reachable(estimate)


def test_fit_within_a_budget_and_user_folding():
    torch.manual_seed(0)
    model = calibrated(build_model("mlp", (1, 8, 8), 10, hidden=[64, 64]))
    small = estimate_dataflow(model, (1, 8, 8))
    assert {(u.pe, u.simd) for u in small.units} == {(1, 1)}
    budget = small.total + small.total  # room for about twice the unfolded design
    fitted = estimate_dataflow(model, (1, 8, 8), DataflowTarget(fit_within=budget))
    assert fitted.fps > small.fps and fitted.total.lut <= budget.lut
    folded = estimate_dataflow(
        model, (1, 8, 8), DataflowTarget(folding={"features.3": {"PE": 4, "SIMD": 2}})
    )
    unit = next(u for u in folded.units if u.layer == "features.3")
    assert (unit.pe, unit.simd, unit.cycles) == (4, 2, 64 * 64 // 8)
