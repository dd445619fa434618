"""The board catalogue and the economics computed from it."""

import pytest
import yaml

from qdistill.errors import ConfigError, UnknownNameError
from qdistill.hardware.boards import DEFAULT_CATALOGUE, load_catalogue
from qdistill.hardware.economics import board_budget, cost_report
from qdistill.hardware.estimate import DataflowEstimate
from qdistill.hardware.units import Resources

REQUIRED = [
    "pynq-z1", "pynq-z2", "ultra96-v2", "kv260", "zcu104", "zcu102", "mercury-xu7",
    "vcu118", "vcu129", "alveo-u250",
]  # fmt: skip


def estimate(lut=40_000, fps=1000.0):
    cycles = round(100e6 / fps)
    return DataflowEstimate(
        clock_mhz=100, target_fps=fps, units=[], total=Resources(lut=lut, ff=1000, bram18=10),
        max_cycles=cycles, bottleneck="a", latency_cycles=2 * cycles, max_fps=10 * fps,
        max_fps_bottleneck="a",
    )  # fmt: skip


def test_the_shipped_catalogue_lists_the_boards_with_dated_sourced_prices():
    catalogue = load_catalogue()
    assert set(REQUIRED) <= set(catalogue.boards)
    assert catalogue.board("pynq-z2").capacity.lut == 53_200
    assert catalogue.board("vcu118").capacity.lut == 1_182_240
    for board in catalogue.boards.values():
        assert board.price.source
        assert board.price.amount is None or board.price.date
    assert {p.kind for p in catalogue.processors.values()} == {"cpu", "gpu"}


def test_fits_cheapest_board_cost_per_kfps_and_energy():
    catalogue = load_catalogue()
    report = cost_report(
        estimate(lut=60_000, fps=2000), catalogue, {"nvidia-rtx-3060": (500, "given")}
    )
    fits = {f.board: f for f in report.boards}
    assert not fits["pynq-z2"].fits and fits["pynq-z2"].limiting == "lut"
    assert fits["pynq-z2"].cost_per_kfps is None and fits["pynq-z2"].energy_mj is None
    assert fits["pynq-z2"].utilisation["lut"] == pytest.approx(60_000 / 53_200)
    assert fits["ultra96-v2"].fits
    cheapest = report.cheapest
    priced_fits = [f for f in report.boards if f.fits and f.price is not None]
    assert cheapest.price == min(f.price for f in priced_fits)
    ultra = fits["ultra96-v2"]
    assert ultra.price == pytest.approx(249 * catalogue.rates["USD"])
    assert ultra.cost_per_kfps == pytest.approx(ultra.price / 2.0)
    assert ultra.energy_mj == pytest.approx(1000 * 10 / 2000)
    (gpu,) = report.processors
    assert gpu.units_to_match == 4 and gpu.cost_to_match == pytest.approx(4 * gpu.price)
    assert report.to_dict()["cheapest_board"] == cheapest.board


def test_board_budget_scales_the_capacity():
    board = load_catalogue().board("pynq-z2")
    assert board_budget(board, 0.5).lut == 26_600


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match=r"unknown board 'pynq-z3' \(did you mean 'pynq-z2'"):
        load_catalogue().board("pynq-z3")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("boards: [oops", "is unreadable"),
        ("currency: GBP\nexchange_rates: {GBP: 1}\nboards: {b: {part: x}}\n", "is malformed"),
        ("just a string\n", "is malformed"),
    ],
)
def test_a_malformed_catalogue_is_one_line(tmp_path, text, message):
    path = tmp_path / "boards.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_catalogue(path)


def test_a_price_in_a_currency_without_a_rate_is_refused(tmp_path):
    raw = yaml.safe_load(DEFAULT_CATALOGUE.read_text())
    raw["boards"]["pynq-z2"]["currency"] = "JPY"
    path = tmp_path / "boards.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="currency JPY has no exchange rate"):
        load_catalogue(path)
