"""Compare the searches saved in one folder (other seeds, NSGA-II against random search):
each is read back from its generations and the shared measured candidates, and all are
scored between the same ideal and nadir points, so their hypervolumes compare."""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from qdistill.search.driver import SearchOutcome, score_generations
from qdistill.search.front import bounds
from qdistill.search.ledger import FOLDER, SearchLedger

_LABEL = re.compile(r"^(nsga2|random)-s(-?\d+)$")


def searches_in_folder(outcome: SearchOutcome) -> list[SearchOutcome]:
    """Every search saved beside ``outcome`` (``outcome``'s own included), with its
    objectives, constraints and baseline, scored between common bounds. The outcomes
    returned are copies: ``outcome`` keeps its own scores."""
    by_name = {m.name: m for m in outcome.ledger.measured.values()}
    found = []
    for path in sorted((outcome.out_dir / FOLDER).glob("*.json")):
        match = _LABEL.match(path.stem)
        if match is None:
            continue
        ledger = SearchLedger.load(outcome.out_dir, path.stem)
        ledger.generations = list(ledger.earlier)
        names = dict.fromkeys(n for g in ledger.generations for n in g.asked)
        found.append(
            dataclasses.replace(
                outcome,
                algorithm=match.group(1),
                seed=int(match.group(2)),
                ledger=ledger,
                evaluated=[by_name[n] for n in names if n in by_name],
                chosen=None,
                final=None,
            )
        )
    points = [s.scores(m) for s in found for m in [s.baseline, *s.evaluated]]
    if not points:
        return []
    ideal, nadir = bounds(np.array(points))
    for search in found:
        search.ideal, search.nadir = ideal, nadir
        score_generations(search)
    return found
