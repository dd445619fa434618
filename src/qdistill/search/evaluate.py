"""Evaluate candidates: train them as ordinary runs (the experiment's executor, its
results store, its resume), then measure each one in the driver and keep the values in
the ledger. A candidate measured before (same run ids) is neither trained nor measured
again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdistill.console import console
from qdistill.errors import RunsFailedError
from qdistill.experiment.executors import Execution
from qdistill.experiment.planner import plan_runs
from qdistill.experiment.record import RunRecord
from qdistill.experiment.runner import execute_planned
from qdistill.experiment.schema import ExperimentConfig
from qdistill.experiment.store import ResultsStore
from qdistill.experiment.students import StudentConfig
from qdistill.search.config import SearchConfig
from qdistill.search.ledger import Measured, SearchLedger
from qdistill.search.measure import measure_candidate, time_side_by_side
from qdistill.search.objectives import Objective

REFERENCE = "(reference)"  # not a valid student name, so never a candidate's


@dataclass(frozen=True)
class Entry:
    """A candidate to evaluate: its student and how the search writes it."""

    student: StudentConfig
    model_options: dict[str, Any]
    recipe_values: dict[str, Any]
    genome: tuple[int, ...] | None = None


def only_students(config: ExperimentConfig, students: list[StudentConfig]) -> ExperimentConfig:
    """``config`` with ``students`` and nothing to deploy (the search's own runs)."""
    return config.model_copy(
        update={"students": students, "export": None, "benchmark": None, "hardware": None}
    )


class CandidateEvaluator:
    def __init__(
        self,
        config: ExperimentConfig,
        search: SearchConfig,
        out_dir: Path,
        execution: Execution,
        ledger: SearchLedger,
        objectives: list[Objective],
    ) -> None:
        self.config, self.search, self.out_dir, self.execution = config, search, out_dir, execution
        self.ledger, self.objectives = ledger, objectives
        # the baseline, once measured: later timings are taken beside it and scaled by its
        # drift; reference_latency_ms is its latency at the last such timing
        self.reference: Measured | None = None
        self.reference_latency_ms: float | None = None
        self._checkpoints: dict[str, Path] = {}

    def evaluate(self, entries: list[Entry]) -> list[Measured]:
        """The measured values of every entry, in order (duplicates measured once)."""
        unique = list({e.student.name: e for e in entries}.values())
        runs = plan_runs(only_students(self.config, [e.student for e in unique]))
        run_ids = {
            e.student.name: tuple(r.run_id for r in runs if r.group == e.student.name)
            for e in unique
        }
        keys = {name: ",".join(ids) for name, ids in run_ids.items()}  # Measured.key
        pending = [e for e in unique if not self._measured(keys[e.student.name])]
        if pending:
            self._train_and_measure(pending, run_ids)
        return [self.ledger.measured[keys[e.student.name]] for e in entries]

    def _measured(self, key: str) -> bool:
        """Whether the candidate of ``key`` is measured in every objective (one added to
        the search since is measured then: its runs are not trained again)."""
        measured = self.ledger.measured.get(key)
        return measured is not None and all(o.name in measured.values for o in self.objectives)

    def _train_and_measure(self, pending: list[Entry], run_ids: dict[str, tuple[str, ...]]) -> None:
        config = only_students(self.config, [e.student for e in pending])
        outcome = execute_planned(config, self.out_dir, plan_runs(config), self.execution)
        if outcome.failures:
            first = outcome.failures[0]
            raise RunsFailedError(
                f"{len(outcome.failures)} candidate run(s) failed twice (first: {first.name} "
                f"seed {first.seed}: {first.error}); details in {self.out_dir / 'failures.jsonl'}"
                "; the same command resumes the search"
            )
        by_group: dict[str, list[RunRecord]] = {}
        for record in outcome.records:
            by_group.setdefault(record.group, []).append(record)
        search = self.search
        values = {
            e.student.name: measure_candidate(
                by_group[e.student.name], self.out_dir, self.objectives, outcome.task, search.fpga
            )
            for e in pending
        }
        if any(o.source == "timing" for o in self.objectives):
            checkpoints = {
                n: self.out_dir / records[0].checkpoint
                for n, records in by_group.items()
                if n in values
            }
            for name, timed in self._timed(checkpoints).items():
                values[name].update(timed)
        for entry in pending:
            name = entry.student.name
            measured = Measured(
                name,
                run_ids[name],
                entry.model_options,
                entry.recipe_values,
                values[name],
                entry.genome,
            )
            self.ledger.measured[measured.key] = measured
        self.ledger.save()

    def _timed(self, checkpoints: dict[str, Path]) -> dict[str, dict[str, float]]:
        """Latency and throughput of each checkpoint, timed side by side with the reference
        (the baseline, once it is measured) and scaled by how far the reference's latency
        has drifted from its first measurement."""
        console.print(f"  timing {len(checkpoints)} candidate(s) side by side ...")
        reference = self.reference
        if reference is None or reference.name in checkpoints:
            return time_side_by_side(checkpoints, self.search.timing)
        timed = time_side_by_side(
            {REFERENCE: self._checkpoint(reference), **checkpoints}, self.search.timing
        )
        now = timed.pop(REFERENCE)
        self.reference_latency_ms = now["latency_ms"]
        scale = reference.values["latency_ms"] / now["latency_ms"]
        return {
            name: {"latency_ms": t["latency_ms"] * scale, "throughput": t["throughput"] / scale}
            for name, t in timed.items()
        }

    def _checkpoint(self, measured: Measured) -> Path:
        """The checkpoint of ``measured``'s first run (read from the store once)."""
        if measured.key not in self._checkpoints:
            (record,) = [
                r
                for r in ResultsStore(self.out_dir / "results.jsonl").latest()
                if r.run_id == measured.run_ids[0]
            ]
            self._checkpoints[measured.key] = self.out_dir / record.checkpoint
        return self._checkpoints[measured.key]
