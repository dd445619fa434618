"""What a design costs: board fit and utilisation, the cheapest board that fits, cost per
1,000 FPS and energy per image, beside CPUs and GPUs at a measured or given throughput."""

from __future__ import annotations

import math
from dataclasses import asdict, astuple, dataclass, field

from qdistill.hardware.boards import RESOURCE_FIELDS, Board, Catalogue, Processor
from qdistill.hardware.estimate import DataflowEstimate
from qdistill.hardware.hls4ml_view import Hls4mlLayer
from qdistill.hardware.units import Resources


@dataclass
class BoardFit:
    board: str
    part: str
    fits: bool
    utilisation: dict[str, float]  # resource -> used / available (0..)
    limiting: str  # the most used resource
    fps: float  # the design's throughput (same on every board at one clock)
    price: float | None  # in the catalogue's currency
    price_label: str
    cost_per_kfps: float | None  # price / (fps / 1000); None when it does not fit
    energy_mj: float | None  # board watts / fps, per image; None when it does not fit

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ProcessorCost:
    name: str
    kind: str
    fps: float  # measured here or given by the user
    source: str  # how the throughput was obtained
    units_to_match: int  # processors needed to match the FPGA design's throughput
    price: float | None
    price_label: str
    cost_to_match: float | None  # units_to_match x price
    cost_per_kfps: float | None
    energy_mj: float

    def to_dict(self) -> dict:
        return asdict(self)


def board_fit(estimate: DataflowEstimate, board: Board, catalogue: Catalogue) -> BoardFit:
    used, available = astuple(estimate.total), astuple(board.capacity)
    utilisation = {
        field: (u / a if a else (math.inf if u else 0.0))
        for field, u, a in zip(RESOURCE_FIELDS, used, available, strict=True)
    }
    price = catalogue.converted(board.price)
    fitting = all(value <= 1.0 for value in utilisation.values())
    return BoardFit(
        board=board.name,
        part=board.part,
        fits=fitting,
        utilisation=utilisation,
        limiting=max(utilisation, key=utilisation.get),
        fps=estimate.fps,
        price=price,
        price_label=board.price.label(),
        cost_per_kfps=price / (estimate.fps / 1000) if fitting and price is not None else None,
        energy_mj=1000 * board.watts / estimate.fps if fitting else None,
    )


def board_fits(estimate: DataflowEstimate, catalogue: Catalogue) -> list[BoardFit]:
    return [board_fit(estimate, board, catalogue) for board in catalogue.boards.values()]


def cheapest_fit(fits: list[BoardFit]) -> BoardFit | None:
    priced = [f for f in fits if f.fits and f.price is not None]
    return min(priced, key=lambda f: f.price, default=None)


def processor_cost(
    processor: Processor,
    fps: float,
    source: str,
    catalogue: Catalogue,
    match_fps: float,
) -> ProcessorCost:
    price = catalogue.converted(processor.price)
    units = max(1, math.ceil(match_fps / fps))
    return ProcessorCost(
        name=processor.name,
        kind=processor.kind,
        fps=fps,
        source=source,
        units_to_match=units,
        price=price,
        price_label=processor.price.label(),
        cost_to_match=None if price is None else units * price,
        cost_per_kfps=None if price is None else price / (fps / 1000),
        energy_mj=1000 * processor.watts / fps,
    )


def board_budget(board: Board, utilisation: float = 1.0) -> Resources:
    """The resources a design may use on ``board`` at ``utilisation`` (0..1]."""
    return board.capacity.scaled(utilisation)


@dataclass
class CostReport:
    """A dataflow estimate with its economics: every board's fit and the processors'."""

    estimate: DataflowEstimate
    currency: str
    boards: list[BoardFit]
    processors: list[ProcessorCost]
    catalogue: str
    hls4ml: list[Hls4mlLayer] = field(default_factory=list)  # the hls4ml view, if asked for

    @property
    def cheapest(self) -> BoardFit | None:
        return cheapest_fit(self.boards)

    def to_dict(self) -> dict:
        cheapest = self.cheapest
        return {
            **self.estimate.to_dict(),
            "currency": self.currency,
            "catalogue": self.catalogue,
            "cheapest_board": cheapest.board if cheapest else None,
            "boards": [b.to_dict() for b in self.boards],
            "processors": [p.to_dict() for p in self.processors],
            "hls4ml": [layer.to_dict() for layer in self.hls4ml],
        }


def cost_report(
    estimate: DataflowEstimate,
    catalogue: Catalogue,
    processor_fps: dict[str, tuple[float, str]] | None = None,
) -> CostReport:
    """Economics of ``estimate`` on every catalogue board, and of the processors in
    ``processor_fps`` (name -> (throughput, how it was obtained))."""
    processors = [
        processor_cost(catalogue.processor(name), fps, source, catalogue, estimate.fps)
        for name, (fps, source) in (processor_fps or {}).items()
    ]
    return CostReport(
        estimate, catalogue.currency, board_fits(estimate, catalogue), processors, catalogue.path
    )
