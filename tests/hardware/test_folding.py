"""Folding: FINN's SetFolding for a target, fastest-that-fits, and a user's folding."""

import pytest

from qdistill.errors import ConfigError
from qdistill.hardware.dot_product import MatrixVector
from qdistill.hardware.folding import (
    apply_user_folding,
    fastest_folding,
    fold_to_cycles,
    fold_to_fit,
    read_folding,
    total_resources,
    unfolded,
)
from qdistill.hardware.units import Fold, Pool, Resources, SlidingWindow


def mvau(name, mw=64, mh=64, bits=4, pixels=1):
    return MatrixVector(
        name=f"{name}:mvau", layer=name, channels=mh, pixels=pixels, mw=mw, weight_bits=bits,
        input_bits=4, acc_bits=16, output_bits=4,
    )  # fmt: skip


def test_simd_rises_first_then_pe_within_the_weight_width_cap():
    # 4-bit weights: SIMD 8 (8*4 = 32 <= 36) reaches 512 <= 1000 cycles
    assert fold_to_cycles([mvau("a")], 1000) == {"a:mvau": Fold(1, 8)}
    # 8-bit weights for 300 cycles: SIMD 8 (512) misses and 8 * 8 > 36, so SIMD falls
    # back to 4 and PE rises: 1024, 512, 256 at PE 4
    assert fold_to_cycles([mvau("a", bits=8)], 300) == {"a:mvau": Fold(4, 4)}


def test_a_simd_that_meets_the_target_is_taken_before_the_width_cap_is_checked():
    # FINN's order: MW 25 -> SIMD 25 meets 64 cycles although 25 * 4 bits > 36
    assert fold_to_cycles([mvau("a", mw=25)], 64) == {"a:mvau": Fold(1, 25)}


def test_two_pass_relaxation_balances_to_the_unit_that_cannot_keep_up():
    slow = SlidingWindow(
        name="w", layer="w", channels=1, pixels=64, in_h=10, in_w=10, out_h=8, out_w=8,
        kernel=(3, 3), bits=4, depthwise=True,
    )  # fmt: skip
    units = [slow, mvau("a")]
    folding = fold_to_cycles(units, 10)
    limit = slow.cycles(Fold())  # 599 cycles at its only folding
    assert folding["w"] == Fold()
    # the MVAU is folded for 599 cycles, not for the unreachable 10
    assert folding["a:mvau"] == fold_to_cycles([mvau("a")], limit)["a:mvau"]


def test_a_pool_and_its_window_rise_together():
    window = SlidingWindow(
        name="p:pool_window", layer="p", channels=8, pixels=16, in_h=8, in_w=8, out_h=4,
        out_w=4, kernel=(2, 2), stride=(2, 2), bits=4, depthwise=True,
    )  # fmt: skip
    pool = Pool(
        name="p:max_pool", layer="p", channels=8, pixels=16, kernel=2, bits=4,
        window="p:pool_window",
    )  # fmt: skip
    folding = fold_to_cycles([window, pool], 300)
    # the pool alone meets 300 at PE 2 (256), the window needs SIMD 4 (208): both 4
    assert folding == {"p:pool_window": Fold(simd=4), "p:max_pool": Fold(pe=4)}
    assert fastest_folding([window, pool])["p:max_pool"] == Fold(pe=8)


def test_fold_to_fit_stops_at_the_last_step_that_fits():
    units = [mvau("a"), mvau("b", mh=10)]
    budget = total_resources(units, unfolded(units)) + Resources(lut=800, ff=10**6, bram18=10)
    folding = fold_to_fit(units, budget.holds)
    assert budget.holds(total_resources(units, folding))
    assert folding != unfolded(units)
    # raising the slowest unit once more would break the budget
    slowest = max(units, key=lambda u: u.cycles(folding[u.name]))
    wider = fold_to_fit(units, (budget + Resources(lut=10**6)).holds)
    assert slowest.cycles(wider[slowest.name]) < slowest.cycles(folding[slowest.name])
    # a budget that holds only the unfolded design keeps it unfolded
    tight = total_resources(units, unfolded(units))
    assert fold_to_fit(units, tight.holds) == unfolded(units)


def test_user_folding_by_unit_or_layer_is_checked():
    units = [mvau("a"), mvau("b")]
    folding = apply_user_folding(units, unfolded(units), {"a": {"PE": 4, "SIMD": 2}})
    assert folding["a:mvau"] == Fold(4, 2) and folding["b:mvau"] == Fold()
    with pytest.raises(ConfigError, match="PE=3 must divide 64"):
        apply_user_folding(units, unfolded(units), {"b:mvau": {"PE": 3}})
    with pytest.raises(ConfigError, match="'c', which is no unit or layer; units: a:mvau"):
        apply_user_folding(units, unfolded(units), {"c": {"PE": 1}})
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['pe'\]"):
        apply_user_folding(units, unfolded(units), {"a": {"pe": 1}})


def test_read_folding_file(tmp_path):
    path = tmp_path / "folding.yaml"
    path.write_text("features.1: {PE: 2, SIMD: 4}\n")
    assert read_folding(path) == {"features.1": {"PE": 2, "SIMD": 4}}
    path.write_text("features.1: 3\n")
    with pytest.raises(ConfigError, match="must map unit or layer names"):
        read_folding(path)
    with pytest.raises(ConfigError, match="unreadable"):
        read_folding(tmp_path / "missing.json")
