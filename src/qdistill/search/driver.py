"""Run a student search (NEMOKD): phase 1 grids the baseline's recipe values (KD alpha
and T), phase 2 evolves candidates with NSGA-II (or samples them at random), then the
chosen trade-off and the baseline are trained fully and deployed like any experiment's
runs.

A killed search resumes by replaying: the proposer is deterministic given its seed and
what it was told, and every candidate already measured is read from the ledger instead
of being trained or timed again.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qdistill.console import console
from qdistill.data import dataset_task
from qdistill.experiment.executors import Execution
from qdistill.experiment.lock import output_lock
from qdistill.experiment.planner import check_selections, plan_runs
from qdistill.experiment.runner import (
    ExperimentOutcome,
    deploy_runs,
    execute_planned,
    write_config,
)
from qdistill.experiment.schema import ExperimentConfig
from qdistill.paths import writable_folder
from qdistill.search.algorithms import make_proposer
from qdistill.search.config import SearchConfig
from qdistill.search.evaluate import CandidateEvaluator, Entry
from qdistill.search.front import bounds, dominates, hypervolume, pareto_mask
from qdistill.search.ledger import Generation, Measured, SearchLedger
from qdistill.search.objectives import Constraint, Objective
from qdistill.search.space import SearchSpace
from qdistill.search.students import candidate_student
from qdistill.tasks import TASKS


@dataclass
class SearchOutcome:
    out_dir: Path
    algorithm: str
    seed: int
    objectives: list[Objective]
    constraints: list[Constraint]
    ledger: SearchLedger
    baseline: Measured
    evaluated: list[Measured]  # phase 2's candidates, in the order first proposed
    ideal: np.ndarray
    nadir: np.ndarray
    chosen: Measured | None = None
    final: ExperimentOutcome | None = None
    unmet: str | None = None  # why no candidate met the constraints
    phase1: list[Measured] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.algorithm}, seed {self.seed}"

    @property
    def by_name(self) -> dict[str, Measured]:
        return {m.name: m for m in [*self.phase1, self.baseline, *self.evaluated]}

    def scores(self, measured: Measured) -> np.ndarray:
        return objective_vector(measured, self.objectives)

    def feasible(self, measured: Measured) -> bool:
        return all(c.violation(measured.values[c.objective.name]) <= 0 for c in self.constraints)


def objective_vector(measured: Measured, objectives: list[Objective]) -> np.ndarray:
    """The candidate's objectives, each to be minimised."""
    return np.array([o.sign * measured.values[o.name] for o in objectives])


def _needed(objectives: list[Objective], constraints: list[Constraint]) -> list[Objective]:
    needed = {o.name: o for o in objectives}
    needed.update({c.objective.name: c.objective for c in constraints})
    return list(needed.values())


def run_search(
    config: ExperimentConfig,
    search: SearchConfig,
    out_dir: str | Path,
    execution: Execution | None = None,
) -> SearchOutcome:
    """Search the space of ``search`` (``config``'s search block, see
    :func:`~qdistill.search.config.search_of`); everything is checked before anything
    trains, and every finished candidate is kept when the search stops."""
    task = TASKS.get(dataset_task(config.data.name))
    objectives, constraints = search.checked_objectives(task.kind)
    out_dir = Path(out_dir)
    final = final_experiment(config, search)
    check_selections(final, plan_runs(final))  # export/benchmark/hardware name final runs
    writable_folder(out_dir)
    with output_lock(out_dir):
        ledger = SearchLedger.load(out_dir, f"{search.algorithm}-s{search.seed}")
        evaluator = CandidateEvaluator(
            config,
            search,
            out_dir,
            execution or Execution(),
            ledger,
            _needed(objectives, constraints),
        )
        outcome = _search(search, evaluator, ledger, objectives, constraints, out_dir, task.monitor)
        if outcome.chosen is not None:
            outcome.final = _train_final(config, search, outcome, execution or Execution())
        return outcome


def final_experiment(
    config: ExperimentConfig,
    search: SearchConfig,
    baseline: Measured | None = None,
    chosen: Measured | None = None,
) -> ExperimentConfig:
    """The experiment of the final runs: students ``baseline`` and ``chosen`` with the
    search's ``final`` recipe values. Before the search (no candidates given) the baseline
    stands in for both, so that the experiment's selections can be checked."""
    students = []
    for name, measured in (("baseline", baseline), ("chosen", chosen or baseline)):
        options = measured.model_options if measured else search.baseline_options()
        values = measured.recipe_values if measured else search.baseline_genes()
        students.append(candidate_student(search, options, {**values, **search.final}, name))
    return config.model_copy(update={"students": students})


def _phase1(
    search: SearchConfig, evaluator: CandidateEvaluator, ledger: SearchLedger, rank_by: Objective
) -> list[Measured]:
    """The baseline at every phase-1 grid point; the best point's values go into the
    ledger's ``phase1_choice`` (nothing when there is no grid)."""
    if not search.phase1:
        return []
    points = [
        dict(zip(search.phase1, values, strict=True))
        for values in itertools.product(*search.phase1.values())
    ]
    genes = search.baseline_genes()
    options = search.baseline_options()
    console.print(f"[bold]phase 1[/]: the baseline at {len(points)} recipe setting(s)")
    entries = [
        Entry(candidate_student(search, options, {**p, **genes}), options, {**p, **genes})
        for p in points
    ]
    measured = evaluator.evaluate(entries)
    best = min(range(len(points)), key=lambda i: rank_by.sign * measured[i].values[rank_by.name])
    ledger.phase1 = [m.name for m in measured]
    ledger.phase1_choice = points[best]
    console.print(
        f"  best: {points[best]} ({rank_by.name} {measured[best].values[rank_by.name]:.3f})"
    )
    return measured


def _search(
    search: SearchConfig,
    evaluator: CandidateEvaluator,
    ledger: SearchLedger,
    objectives: list[Objective],
    constraints: list[Constraint],
    out_dir: Path,
    monitor: str,
) -> SearchOutcome:
    rank_by = next((o for o in objectives if o.source == "quality"), None)
    phase1 = _phase1(
        search, evaluator, ledger, rank_by or Objective(monitor, monitor, True, "quality")
    )
    space = search.search_space()
    carried = ledger.phase1_choice

    def entry(genome: np.ndarray) -> Entry:
        candidate = space.decode(genome)
        values = {**carried, **candidate.recipe_values}
        student = candidate_student(search, candidate.model_options, values)
        return Entry(student, candidate.model_options, values, tuple(int(g) for g in genome))

    baseline_genome = np.array(space.encode(search.baseline_options(), search.baseline_genes()))
    (baseline,) = evaluator.evaluate([entry(baseline_genome)])
    write_config(evaluator.config, out_dir)  # models and data are checked by now
    ledger.baseline = baseline.name
    evaluator.reference = baseline
    evaluated = _evolve(search, space, evaluator, ledger, objectives, constraints, entry)
    everything = np.array([objective_vector(m, objectives) for m in [baseline, *evaluated]])
    ideal, nadir = bounds(everything)
    outcome = SearchOutcome(
        out_dir,
        search.algorithm,
        search.seed,
        objectives,
        constraints,
        ledger,
        baseline,
        evaluated,
        ideal,
        nadir,
        phase1=phase1,
    )
    score_generations(outcome)
    _choose(outcome)
    ledger.save()
    return outcome


def _evolve(
    search: SearchConfig,
    space: SearchSpace,
    evaluator: CandidateEvaluator,
    ledger: SearchLedger,
    objectives: list[Objective],
    constraints: list[Constraint],
    entry: Callable[[np.ndarray], Entry],
) -> list[Measured]:
    proposer = make_proposer(
        search.algorithm,
        space.upper_bounds,
        len(objectives),
        len(constraints),
        search.population,
        search.seed,
        lambda genome: space.decode(np.rint(genome).astype(int)).key,
    )
    evaluated: dict[str, Measured] = {}
    ledger.generations = []
    for index in range(1, search.generations + 1):
        genomes = proposer.ask()
        if len(genomes) == 0:
            console.print(f"generation {index}: every candidate of the space is measured; done")
            break
        console.print(
            f"[bold]generation {index}/{search.generations}[/]: {len(genomes)} candidate(s)"
        )
        measured = evaluator.evaluate([entry(g) for g in genomes])
        new = [m for m in measured if m.key not in evaluated]
        evaluated.update((m.key, m) for m in new)
        F = np.array([objective_vector(m, objectives) for m in measured])
        G = np.array(
            [[c.violation(m.values[c.objective.name]) for c in constraints] for m in measured]
        )
        proposer.tell(F, G.reshape(len(measured), len(constraints)))
        asked = tuple(m.name for m in measured)
        control, evaluator.reference_latency_ms = evaluator.reference_latency_ms, None
        generation = Generation(index, asked, len(new), baseline_latency_ms=control)
        if control is None:  # replayed: every candidate measured before
            control = ledger.earlier_control(generation)
        ledger.generations.append(dataclasses.replace(generation, baseline_latency_ms=control))
        ledger.save()
        console.print(f"  {len(new)} new, {len(evaluated)} candidates measured so far")
    return list(evaluated.values())


def score_generations(outcome: SearchOutcome) -> None:
    """Each generation's front (of everything feasible measured by then, the baseline
    included) and its hypervolumes: between ``outcome``'s ideal and nadir points (set them
    alike to compare searches), and between the ideal point and the baseline."""
    seen: list[Measured] = [outcome.baseline] if outcome.feasible(outcome.baseline) else []
    base = outcome.scores(outcome.baseline)
    by_name = {m.name: m for m in outcome.evaluated}
    scored = []
    for generation in outcome.ledger.generations:
        for name in generation.asked:
            item = by_name.get(name)
            if item is not None and item not in seen and outcome.feasible(item):
                seen.append(item)
        F = np.array([outcome.scores(m) for m in seen]).reshape(len(seen), len(outcome.objectives))
        mask = pareto_mask(F) if len(seen) else np.array([], dtype=bool)
        front = tuple(m.name for m, keep in zip(seen, mask, strict=True) if keep)
        volume = hypervolume(F[mask], outcome.ideal, outcome.nadir) if len(seen) else 0.0
        beyond = hypervolume(F[mask], outcome.ideal, base) if len(seen) else 0.0
        scored.append(
            dataclasses.replace(generation, front=front, hypervolume=volume, beyond_baseline=beyond)
        )
    outcome.ledger.generations = scored


def _choose(outcome: SearchOutcome) -> None:
    """The trade-off to train fully: of the feasible candidates that dominate the
    baseline, the best in the first objective (then the second, ...); if none does, the
    front's knee (nearest the ideal point once normalised)."""
    feasible = [m for m in outcome.evaluated if outcome.feasible(m)]
    if not feasible:
        closest = sorted(outcome.evaluated, key=lambda m: _violation(outcome, m))[:3]
        described = "; ".join(f"{m.name} ({_constrained_values(outcome, m)})" for m in closest)
        texts = " and ".join(c.text for c in outcome.constraints)
        outcome.unmet = f"no candidate meets {texts}; the closest: {described}"
        return
    base = outcome.scores(outcome.baseline)
    better = [m for m in feasible if dominates(outcome.scores(m), base)]
    if better:  # ties in the first objective go to the better second one, and so on
        outcome.chosen = min(better, key=lambda m: tuple(outcome.scores(m)))
        return
    F = np.array([outcome.scores(m) for m in feasible])
    span = np.where(outcome.nadir > outcome.ideal, outcome.nadir - outcome.ideal, 1.0)
    distance = np.linalg.norm((F - outcome.ideal) / span, axis=1)
    outcome.chosen = feasible[int(np.argmin(distance))]


def _constrained_values(outcome: SearchOutcome, measured: Measured) -> str:
    names = dict.fromkeys(c.objective.name for c in outcome.constraints)
    return ", ".join(f"{name}={measured.values[name]:.4g}" for name in names)


def _violation(outcome: SearchOutcome, measured: Measured) -> float:
    """Total relative violation of the constraints (0 when all are met)."""
    total = 0.0
    for c in outcome.constraints:
        excess = max(0.0, c.violation(measured.values[c.objective.name]))
        total += excess / max(abs(c.bound), 1e-12)
    return total


def dominating_baseline(outcome: SearchOutcome) -> list[Measured]:
    base = outcome.scores(outcome.baseline)
    return [
        m for m in outcome.evaluated if outcome.feasible(m) and dominates(outcome.scores(m), base)
    ]


def _train_final(
    config: ExperimentConfig, search: SearchConfig, outcome: SearchOutcome, execution: Execution
) -> ExperimentOutcome:
    """The baseline and the chosen candidate with the search's ``final`` recipe values
    (full training), exported, benchmarked and estimated as the experiment says."""
    out_dir = outcome.out_dir
    final = final_experiment(config, search, outcome.baseline, outcome.chosen)
    console.print("[bold]final training[/]: the baseline and the chosen candidate")
    result = execute_planned(final, out_dir, plan_runs(final), execution)
    deploy_runs(final, result, out_dir)
    return result
