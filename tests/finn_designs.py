"""The designs qdistill's FINN exports and cost model are checked on, built
deterministically (seeded, calibrated on the bundled data): shared by the agreement
tests and bench/fpga_agreement.py, which records FINN's figures for them."""

from __future__ import annotations

import torch
from torch import nn

from qdistill import calibrate, quantize
from qdistill.data import Batches, build_dataset
from qdistill.models import build_model

TARGETS_FPS = (1000, 100000, 1000000)
# FINN maps only zero-point-0 quantizers: the standardised digits input is signed, so
# its quantizer is symmetric; inputs after ReLU already have zero point 0.
SYMMETRIC_INPUT = {"act": {"symmetric": True}}


def _digits_model(model: nn.Module, plan) -> tuple[nn.Module, tuple[int, ...], torch.Tensor]:
    data = build_dataset("digits")
    quantized = quantize(model, plan)
    calibrate(quantized, Batches(data.train, 64), num_batches=4)
    return quantized.eval(), data.input_shape, data.sample_inputs(16)


def mlp(bits: str):
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10, hidden=[64, 64, 64])
    return _digits_model(model, {"*": bits, "@first": {"bits": bits, **SYMMETRIC_INPUT}})


def mlp_fixed_point(rounding: str = "half_up"):
    """The README's fixed-point recipe (power-of-two scales, zero points 0) on the digits
    MLP at W4A4: with the input on the pixel grid (x / 16), codes tie often, and FINN's
    thresholds round ties up."""
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10, hidden=[64, 64, 64])
    data = build_dataset("digits", standardize_pixels=False)
    fixed = {"power_of_two": True, "rounding": rounding}
    plan = {
        "bits": "w4a4",
        "weight": {**fixed, "granularity": "per_tensor"},
        "act": {**fixed, "symmetric": True},
    }
    quantized = quantize(model, plan)
    calibrate(quantized, Batches(data.train, 64), num_batches=4)
    return quantized.eval(), data.input_shape, data.sample_inputs(64)


def lenet():
    """A small CNN with max pooling and no global pooling (FINN-ready as is)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )  # fmt: skip
    return _digits_model(model, {"*": "w4a4", "@first": {"bits": "w4a4", **SYMMETRIC_INPUT}})


def small_cnn():
    """The zoo's small CNN (BN folded) at W4A4, with its global pooling's input quantized
    (a quantizer FINN needs there; the plan names the pooling)."""
    torch.manual_seed(0)
    model = build_model("small_cnn", (1, 8, 8), 10)
    plan = {"*": "w4a4", "@first": {"bits": "w4a4", **SYMMETRIC_INPUT}, "pool.0": "a4"}
    data = build_dataset("digits")
    quantized = quantize(model, plan, fold_bn=True)
    calibrate(quantized, Batches(data.train, 64), num_batches=4)
    return quantized.eval(), data.input_shape, data.sample_inputs(16)


def depthwise_separable():
    """A MobileNet-style CNN: a dense 3x3 conv, then depthwise 3x3 convs (one of stride 2)
    each followed by a pointwise 1x1 conv, BN folded, W4A4."""
    torch.manual_seed(0)

    def block(channels: int, out: int, stride: int) -> list[nn.Module]:
        return [
            nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, out, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(),
        ]  # fmt: skip

    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        *block(8, 16, 1), *block(16, 16, 2), nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
    )  # fmt: skip
    plan = {"*": "w4a4", "@first": {"bits": "w4a4", **SYMMETRIC_INPUT}}
    data = build_dataset("digits")
    quantized = quantize(model, plan, fold_bn=True)
    calibrate(quantized, Batches(data.train, 64), num_batches=4)
    return quantized.eval(), data.input_shape, data.sample_inputs(16)


def espcn_x2_int4():
    """ESPCN x2 (ReLU, Y channel) at INT4 with an 8-bit input, as sr-espcn-x2 runs it."""
    torch.manual_seed(0)
    data = build_dataset("photos", scale=2, channels="y", lr_patch=16)
    model = build_model("espcn", data.input_shape, 1, scale=2, act="relu")
    quantized = quantize(model, {"*": "w4a4", "@first": "w4a8"})
    calibrate(quantized, data.patches(16, torch.Generator().manual_seed(0), augment=False), 2)
    return quantized.eval(), data.input_shape, data.sample_inputs(4)


DESIGNS = {
    "mlp_w4a4": lambda: mlp("w4a4"),
    "mlp_w2a2": lambda: mlp("w2a2"),
    "mlp_fixed_point_w4a4": mlp_fixed_point,
    "lenet_w4a4": lenet,
    "small_cnn_w4a4": small_cnn,
    "espcn_x2_int4": espcn_x2_int4,
    "depthwise_separable_w4a4": depthwise_separable,
}
