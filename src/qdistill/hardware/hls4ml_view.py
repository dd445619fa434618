"""An hls4ml-style view of the same layers: multipliers by reuse factor, DSP or LUT, BRAM.

hls4ml (Vivado backend) builds each Dense / Conv layer from n_in x n_out multiplications
shared ``reuse_factor`` times: n_in n_out / R multipliers, one result every R cycles per
output pixel (io_stream). Following hls4ml's own resource objectives
(hls4ml.optimization.dsp_aware_pruning): a multiplier is a DSP when the weights are 9
bits or wider, otherwise logic; with the Resource strategy and R > 1 the weights sit in
block RAM as n_in n_out W / (36 R) columns 36 bits wide and R deep. The LUTs of a logic
multiplier use FINN's per-product model, (2 ceil((W + A) / 6) - 1)(W + A), plus its adder.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from qdistill.errors import ConfigError
from qdistill.hardware.dot_product import MatrixVector
from qdistill.hardware.units import Unit, divisors

DSP_WEIGHT_BITS = 9  # hls4ml: weights from 9 bits up multiply in DSPs


@dataclass(frozen=True)
class Hls4mlLayer:
    layer: str
    n_in: int
    n_out: int
    reuse_factor: int
    multipliers: int
    dsp: int
    lut: int
    bram18: int
    cycles: int  # R per output pixel

    def to_dict(self) -> dict:
        return asdict(self)


def valid_reuse_factor(n_in: int, n_out: int, wanted: int) -> int:
    """The smallest reuse factor >= ``wanted`` that divides n_in x n_out (hls4ml needs
    the multiplications to split evenly), at most n_in x n_out."""
    if wanted < 1:
        raise ConfigError(f"reuse factor must be at least 1, got {wanted}")
    return next(d for d in divisors(n_in * n_out) if d >= min(wanted, n_in * n_out))


def hls4ml_layer(unit: MatrixVector, reuse_factor: int, strategy: str = "resource") -> Hls4mlLayer:
    n_in, n_out, w, a = unit.mw, unit.mh, unit.weight_bits, unit.input_bits
    r = valid_reuse_factor(n_in, n_out, reuse_factor)
    multipliers = n_in * n_out // r
    in_dsp = w >= DSP_WEIGHT_BITS
    per_product = (2 * math.ceil((w + a) / 6) - 1) * (w + a)
    lut = (0 if in_dsp else multipliers * per_product) + multipliers * (w + a)  # + adders
    bram18 = 0
    if strategy == "resource" and r > 1:
        bram18 = math.ceil(n_in * n_out * w / (36 * r)) * math.ceil(r / 512)
    return Hls4mlLayer(
        layer=unit.layer,
        n_in=n_in,
        n_out=n_out,
        reuse_factor=r,
        multipliers=multipliers,
        dsp=multipliers if in_dsp else 0,
        lut=lut,
        bram18=bram18,
        cycles=r * unit.pixels,
    )


def hls4ml_view(
    units: list[Unit], reuse_factor: int, strategy: str = "resource"
) -> list[Hls4mlLayer]:
    """One hls4ml layer per matrix-vector unit, all at ``reuse_factor`` (made valid)."""
    if strategy not in ("resource", "latency"):
        raise ConfigError(f"hls4ml strategy must be resource or latency, got {strategy!r}")
    return [hls4ml_layer(u, reuse_factor, strategy) for u in units if isinstance(u, MatrixVector)]
