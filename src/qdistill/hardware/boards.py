"""The board and processor catalogue behind hardware economics (see boards.yaml)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from qdistill.bounded_yaml import load_yaml
from qdistill.errors import ConfigError
from qdistill.hardware.units import Resources
from qdistill.registry import unknown_name

DEFAULT_CATALOGUE = Path(__file__).with_name("boards.yaml")
RESOURCE_FIELDS = ("lut", "ff", "bram18", "uram", "dsp")


@dataclass(frozen=True)
class Price:
    amount: float | None  # in ``currency``; None when there is no public price
    currency: str
    date: str | None
    source: str

    def label(self) -> str:
        if self.amount is None:
            return f"no price ({self.source})"
        return f"{self.currency} {self.amount:,.0f} ({self.date}, {self.source})"


@dataclass(frozen=True)
class Board:
    name: str
    part: str
    capacity: Resources
    price: Price
    watts: float


@dataclass(frozen=True)
class Processor:
    name: str
    kind: str  # cpu or gpu
    price: Price
    watts: float


@dataclass(frozen=True)
class Catalogue:
    currency: str
    rates: dict[str, float]  # 1 unit of the key in ``currency``
    boards: dict[str, Board]
    processors: dict[str, Processor]
    path: str

    def board(self, name: str) -> Board:
        return _lookup(self.boards, name, "board", self.path)

    def processor(self, name: str) -> Processor:
        return _lookup(self.processors, name, "processor", self.path)

    def converted(self, price: Price) -> float | None:
        """``price`` in the catalogue's currency (None without a price)."""
        if price.amount is None:
            return None
        return price.amount * self.rates[price.currency]


def _lookup(entries: dict, name: str, kind: str, path: str):
    if name in entries:
        return entries[name]
    raise unknown_name(kind, name, list(entries), path)


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """The catalogue at ``path``, $QDISTILL_BOARDS or the shipped boards.yaml."""
    path = Path(path or os.environ.get("QDISTILL_BOARDS") or DEFAULT_CATALOGUE)
    try:
        raw = load_yaml(path, "board catalogue")
    except yaml.YAMLError as err:
        raise ConfigError(f"board catalogue {path} is unreadable ({_first_line(err)})") from None
    try:
        return _parse(raw, str(path))
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            f"board catalogue {path} is malformed ({type(err).__name__}: {_first_line(err)}); "
            "it needs currency, exchange_rates, boards: {name: {part, lut, ff, bram18, uram, "
            "dsp, price, currency, price_date, source, watts}} and processors"
        ) from None


def _parse(raw: dict, path: str) -> Catalogue:
    currency = str(raw["currency"])
    rates = {str(k): float(v) for k, v in raw["exchange_rates"].items()}
    boards = {}
    for name, entry in raw["boards"].items():
        capacity = Resources(**{f: float(entry[f]) for f in RESOURCE_FIELDS})
        boards[name] = Board(
            name, str(entry["part"]), capacity, _price(entry, rates), float(entry["watts"])
        )
    processors = {
        name: Processor(name, str(entry["kind"]), _price(entry, rates), float(entry["watts"]))
        for name, entry in (raw.get("processors") or {}).items()
    }
    return Catalogue(currency, rates, boards, processors, path)


def _price(entry: dict, rates: dict[str, float]) -> Price:
    currency = str(entry["currency"])
    amount = entry["price"]
    if amount is not None and currency not in rates:
        raise ValueError(f"currency {currency} has no exchange rate")
    date = entry.get("price_date")
    return Price(
        None if amount is None else float(amount),
        currency,
        None if date is None else str(date),
        str(entry["source"]),
    )


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
