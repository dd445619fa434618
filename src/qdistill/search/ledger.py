"""What searches have measured, saved after every generation.

``search/measured.json`` keeps every measured candidate under its run ids (which hash the
data, the teacher, the student and the seed), shared by all searches in the folder: a
resumed search, or another search (other seed, random search) of the same experiment,
reuses exactly the candidates that are still the same, and a changed teacher or dataset
measures everything afresh. ``search/<algorithm>-s<seed>.json`` keeps one search's phase
1 and generations; they are rewritten as the search replays them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdistill.errors import CheckpointError
from qdistill.experiment.record import json_safe
from qdistill.paths import write_text

FOLDER = "search"


@dataclass(frozen=True)
class Measured:
    """A candidate's runs and measured values (every objective, and size and params)."""

    name: str
    run_ids: tuple[str, ...]
    model_options: dict[str, Any]
    recipe_values: dict[str, Any]  # the searched and phase-1 recipe fields
    values: dict[str, float]
    genome: tuple[int, ...] | None = None  # None: not in the space's own terms (phase 1)

    @property
    def key(self) -> str:
        return ",".join(self.run_ids)


@dataclass(frozen=True)
class Generation:
    """One generation: the candidates asked for (names), how many were new, the front of
    everything feasible measured so far, its hypervolume over the whole range measured and
    beyond the baseline (the share of the box between the ideal point and the baseline
    that the front dominates), and the baseline's latency when the generation's
    candidates were timed beside it (how far timings drift)."""

    index: int
    asked: tuple[str, ...]
    new: int
    front: tuple[str, ...] = ()
    hypervolume: float = 0.0
    baseline_latency_ms: float | None = None
    beyond_baseline: float = 0.0


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a search file qdistill wrote ({type(err).__name__}: {err}); move "
            "it away to measure the candidates again (trained runs are kept)"
        ) from None


@dataclass
class SearchLedger:
    folder: Path
    label: str  # e.g. nsga2-s0
    measured: dict[str, Measured] = field(default_factory=dict)  # by key (run ids)
    generations: list[Generation] = field(default_factory=list)
    earlier: list[Generation] = field(default_factory=list)  # as saved before a resume
    phase1: list[str] = field(default_factory=list)  # names of the phase-1 points
    phase1_choice: dict[str, Any] = field(default_factory=dict)
    baseline: str | None = None

    @classmethod
    def load(cls, out_dir: Path, label: str) -> SearchLedger:
        """The measured candidates and this search's earlier generations in ``out_dir``
        (none when it has not searched before)."""
        ledger = cls(out_dir / FOLDER, label)
        measured_path, own_path = ledger.folder / "measured.json", ledger.path
        try:
            if measured_path.is_file():
                for entry in _read(measured_path)["measured"]:
                    entry["run_ids"] = tuple(entry["run_ids"])
                    entry["genome"] = tuple(entry["genome"]) if entry["genome"] else None
                    item = Measured(**entry)
                    ledger.measured[item.key] = item
            if own_path.is_file():
                for entry in _read(own_path)["generations"]:
                    entry["asked"], entry["front"] = tuple(entry["asked"]), tuple(entry["front"])
                    ledger.earlier.append(Generation(**entry))
        except (KeyError, TypeError) as err:
            raise CheckpointError(
                f"{ledger.folder} holds search files of another qdistill version ({err}); "
                "move the folder away to measure the candidates again (trained runs are kept)"
            ) from None
        return ledger

    @property
    def path(self) -> Path:
        return self.folder / f"{self.label}.json"

    def save(self) -> None:
        measured = [dataclasses.asdict(m) for m in self.measured.values()]
        write_text(self.folder / "measured.json", json.dumps(json_safe({"measured": measured})))
        own = {
            "generations": [dataclasses.asdict(g) for g in self.generations],
            "phase1": self.phase1,
            "phase1_choice": self.phase1_choice,
            "baseline": self.baseline,
        }
        write_text(self.path, json.dumps(json_safe(own), indent=1))

    def earlier_control(self, generation: Generation) -> float | None:
        """The baseline latency saved for the same generation before a resume."""
        for saved in self.earlier:
            if saved.index == generation.index and saved.asked == generation.asked:
                return saved.baseline_latency_ms
        return None
