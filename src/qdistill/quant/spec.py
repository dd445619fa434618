"""What to quantize and how: QuantizerSpec for one tensor, LayerQuantSpec for a layer.

The short form ``w4a4`` means 4-bit weights and 4-bit activations with qdistill's
defaults; ``w8`` quantizes weights only; ``float`` leaves a layer in floating point.
A dict form overrides defaults: ``{"bits": "w2a2", "weight": {"range": "learned"}}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from qdistill.errors import ConfigError
from qdistill.quant.qmath import integer_range

VALID_BITS = (1, 2, 3, 4, 5, 6, 7, 8, 16)
Granularity = Literal["per_tensor", "per_channel"]
RangeMethod = Literal["minmax", "ema", "percentile", "mse", "learned"]
Rounding = Literal["half_even", "half_up"]
_WEIGHT_RANGES = ("minmax", "mse", "learned")
_ACT_RANGES = ("minmax", "ema", "percentile", "learned")
_FLOAT_WORDS = ("float", "fp32", "none", "off")
_SHORT_FORM = re.compile(r"^(?:w(?P<w>\d+))?(?:a(?P<a>\d+))?$")


def check_bits(bits: Any, what: str = "bit width") -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in VALID_BITS:
        raise ConfigError(f"{what} {bits!r} is not supported; use 1-8 or 16")
    return bits


@dataclass(frozen=True)
class QuantizerSpec:
    """How one tensor (a layer's weight or its input activation) is quantized.

    signed=None means: weights signed; symmetric activations unsigned when the first
    observed batch is non-negative (ReLU-fed), signed otherwise; asymmetric
    activations use the unsigned range with a zero point.
    """

    bits: int
    symmetric: bool = True
    signed: bool | None = None
    narrow_range: bool = False
    granularity: Granularity = "per_tensor"
    range: RangeMethod = "minmax"
    momentum: float = 0.9  # EMA factor for running ranges: new = m * old + (1 - m) * batch
    percentile: float = 99.99
    # Scales restricted to powers of two, as fixed-point FPGA flows (hls4ml, FINN) need.
    power_of_two: bool = False
    # Where x / s lies exactly halfway between two codes: half_even as PyTorch and
    # onnxruntime round; half_up (towards +inf) as FINN's thresholds compare (x >= t).
    rounding: Rounding = "half_even"

    def __post_init__(self) -> None:
        check_bits(self.bits)
        if self.granularity not in ("per_tensor", "per_channel"):
            raise ConfigError(
                f"granularity {self.granularity!r} is unknown; use per_tensor or per_channel"
            )
        if self.range not in ("minmax", "ema", "percentile", "mse", "learned"):
            raise ConfigError(
                f"range {self.range!r} is unknown; use minmax, ema, percentile, mse or learned"
            )
        if self.rounding not in ("half_even", "half_up"):
            raise ConfigError(f"rounding {self.rounding!r} is unknown; use half_even or half_up")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"momentum {self.momentum} must be in [0, 1)")
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"percentile {self.percentile} must be in (50, 100]")

    def integer_range(self, signed: bool) -> tuple[int, int]:
        return integer_range(self.bits, signed, self.narrow_range)

    @property
    def half_up(self) -> bool:
        return self.rounding == "half_up"

    def is_binary(self, signed: bool) -> bool:
        return self.bits == 1 and signed and self.symmetric

    def to_config(self) -> dict[str, Any]:
        return asdict(self)


def default_weight_spec(bits: int) -> QuantizerSpec:
    """Signed, symmetric, narrow-range, per-output-channel weights.

    Narrow range makes 2-bit weights ternary {-s, 0, s} and 1-bit weights binary.
    From 4 bits up the scale follows each channel's max |w|; below 4 bits min/max
    wastes most levels on rare large weights, so the scale is learned (LSQ),
    starting from the clipping range that minimises the squared error (measured on
    digits: W2A2 QAT 95-96% learned vs 85-92% min/max).
    """
    return QuantizerSpec(
        bits=bits,
        symmetric=True,
        signed=True,
        narrow_range=True,
        granularity="per_channel",
        range="minmax" if bits >= 4 else "learned",
    )


def default_act_spec(bits: int) -> QuantizerSpec:
    """Asymmetric per-tensor activations: an EMA of the observed min/max from 4 bits
    up, a learned (LSQ) range initialised from calibration below 4 bits."""
    return QuantizerSpec(
        bits=bits,
        symmetric=False,
        signed=False,
        granularity="per_tensor",
        range="ema" if bits >= 4 else "learned",
    )


@dataclass(frozen=True)
class LayerQuantSpec:
    """Quantization of one layer: its weight and its input activation (None = float).

    ``bias="int32"`` (default) rounds the bias to the accumulator's grid s_x * s_w when
    both the weight and the input are quantized, as integer runtimes (onnxruntime,
    FPGA dataflow designs) add it to the INT32 accumulator; ``"float"`` keeps it exact.
    """

    weight: QuantizerSpec | None = None
    act: QuantizerSpec | None = None
    bias: Literal["int32", "float"] = "int32"

    def __post_init__(self) -> None:
        if self.bias not in ("int32", "float"):
            raise ConfigError(f"bias {self.bias!r} is unknown; use int32 or float")
        if self.weight is not None:
            if self.weight.range not in _WEIGHT_RANGES:
                raise ConfigError(
                    f"weight range {self.weight.range!r} is not available; "
                    f"use one of {', '.join(_WEIGHT_RANGES)}"
                )
            if self.weight.signed is False:
                raise ConfigError("weights must be signed; remove 'signed: false'")
        if self.act is not None:
            if self.act.range not in _ACT_RANGES:
                raise ConfigError(
                    f"activation range {self.act.range!r} is not available; "
                    f"use one of {', '.join(_ACT_RANGES)}"
                )
            if self.act.granularity != "per_tensor":
                raise ConfigError("activations are quantized per tensor; remove 'granularity'")

    @property
    def integer_bias(self) -> bool:
        """Whether the bias is rounded to the INT32 accumulator grid. Not for 16-bit
        weights with 16-bit inputs: their products need a 64-bit accumulator, and a bias
        on the grid s_x * s_w of two 16-bit scales overflows int32 (a bias of 0.1 is ~1e9
        codes), so such layers keep a float bias."""
        return (
            self.bias == "int32"
            and self.weight is not None
            and self.act is not None
            and min(self.weight.bits, self.act.bits) <= 8
        )

    @property
    def short(self) -> str:
        """Compact name such as ``w4a4``, ``w8`` or ``float``."""
        parts = []
        if self.weight is not None:
            parts.append(f"w{self.weight.bits}")
        if self.act is not None:
            parts.append(f"a{self.act.bits}")
        return "".join(parts) or "float"

    def to_config(self) -> dict[str, Any]:
        return {
            "weight": self.weight.to_config() if self.weight else None,
            "act": self.act.to_config() if self.act else None,
            "bias": self.bias,
        }


def _quantizer_from(
    value: Any,
    base: QuantizerSpec | None,
    make_default: Callable[[int], QuantizerSpec],
    where: str,
) -> QuantizerSpec | None:
    """Override ``base`` with ``value``: a bit width, 'float', or a mapping of fields."""
    if value is None:
        return base
    if isinstance(value, str) and value.lower() in _FLOAT_WORDS:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        bits = check_bits(value, f"{where} bit width")
        return replace(base, bits=bits) if base else make_default(bits)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a bit width or a mapping, got {value!r}")
    known = set(QuantizerSpec.__dataclass_fields__)
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    if base is None:
        if "bits" not in value:
            raise ConfigError(f"{where}: 'bits' is required")
        base = make_default(check_bits(value["bits"], f"{where} bit width"))
    if where == "act" and value.get("symmetric") and "signed" not in value:
        # symmetric activations take their sign from the data (the asymmetric default's
        # unsigned range would clip a signed input's negative half)
        value = {**value, "signed": None}
    return replace(base, **value)


def parse_layer_spec(value: Any) -> LayerQuantSpec | None:
    """Parse ``w4a4`` / ``float`` / a dict into a LayerQuantSpec (None = keep float)."""
    if value is None:
        return None
    if isinstance(value, LayerQuantSpec):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _FLOAT_WORDS:
            return None
        match = _SHORT_FORM.match(text)
        if not text or match is None:
            raise ConfigError(
                f"quantization spec {value!r} is not understood; write e.g. 'w4a4', 'w8', "
                "'w2a8' or 'float'"
            )
        w_bits = int(match["w"]) if match["w"] is not None else None
        a_bits = int(match["a"]) if match["a"] is not None else None
        weight = act = None
        if w_bits is not None:
            weight = default_weight_spec(check_bits(w_bits, "weight bit width"))
        if a_bits is not None:
            act = default_act_spec(check_bits(a_bits, "activation bit width"))
        return LayerQuantSpec(weight=weight, act=act)
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"bits", "weight", "act", "bias"})
        if unknown:
            raise ConfigError(
                f"quantization spec has unknown key(s) {unknown}; use bits, weight, act, bias"
            )
        base = parse_layer_spec(value.get("bits", "float")) or LayerQuantSpec()
        weight = _quantizer_from(value.get("weight"), base.weight, default_weight_spec, "weight")
        act = _quantizer_from(value.get("act"), base.act, default_act_spec, "act")
        return LayerQuantSpec(weight=weight, act=act, bias=value.get("bias", "int32"))
    raise ConfigError(f"quantization spec {value!r} must be a string like 'w4a4' or a mapping")
