"""Who proposes the next candidates: NSGA-II (pymoo, ask and tell) or random sampling.

Both ask for genomes (integer index vectors) and are told each one's objectives ``F``
(to minimise) and constraint violations ``G`` (met when <= 0). Both are deterministic
given their seed and what they are told, which is what lets a killed search resume by
replaying its generations from the candidates it already measured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.duplicate import ElementwiseDuplicateElimination
from pymoo.core.evaluator import Evaluator
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.problems.static import StaticProblem

Algorithm = Literal["nsga2", "random"]
# the key of a genome's decoded candidate: genomes with equal keys are one candidate
KeyOf = Callable[[np.ndarray], str]


class Proposer(Protocol):
    def ask(self) -> np.ndarray: ...

    def tell(self, F: np.ndarray, G: np.ndarray) -> None: ...


def _problem(upper: list[int], n_obj: int, n_constr: int) -> Problem:
    return Problem(
        n_var=len(upper),
        n_obj=n_obj,
        n_ieq_constr=n_constr,
        xl=np.zeros(len(upper)),
        xu=np.array(upper, dtype=float),
        vtype=int,
    )


class NSGA2Proposer:
    """pymoo's NSGA-II on integer genomes: SBX crossover and polynomial mutation rounded
    back to integers (pymoo's recipe for integer variables), candidates compared by their
    decoded key so two genomes of one candidate never share a generation."""

    def __init__(
        self, upper: list[int], n_obj: int, n_constr: int, population: int, seed: int, key_of: KeyOf
    ) -> None:
        self.problem = _problem(upper, n_obj, n_constr)
        same = ElementwiseDuplicateElimination(
            cmp_func=lambda a, b: 0.0 if key_of(a.X) == key_of(b.X) else 1.0
        )
        self.algorithm = NSGA2(
            pop_size=population,
            sampling=IntegerRandomSampling(),
            crossover=SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
            mutation=PM(eta=3.0, vtype=float, repair=RoundingRepair()),
            eliminate_duplicates=same,
        )
        self.algorithm.setup(self.problem, seed=seed, verbose=False)
        self.asked: Population | None = None

    def ask(self) -> np.ndarray:
        """The next generation's genomes; none once no new candidate can be made."""
        self.asked = self.algorithm.ask()
        if self.asked is None or len(self.asked) == 0:
            return np.zeros((0, self.problem.n_var), dtype=int)
        return np.rint(self.asked.get("X")).astype(int)

    def tell(self, F: np.ndarray, G: np.ndarray) -> None:
        told = StaticProblem(self.problem, F=F, G=G)
        Evaluator().eval(told, self.asked)
        self.algorithm.tell(infills=self.asked)


class RandomProposer:
    """Uniform random genomes, ``population`` new candidates per generation (as many
    evaluations as NSGA-II makes), each decoded candidate proposed once while unseen ones
    remain."""

    def __init__(self, upper: list[int], population: int, seed: int, key_of: KeyOf) -> None:
        self.upper = np.array(upper)
        self.population = population
        self.rng = np.random.default_rng(seed)
        self.key_of = key_of
        self.seen: set[str] = set()

    def ask(self) -> np.ndarray:
        genomes: list[np.ndarray] = []
        for _ in range(200 * self.population):  # tries before accepting a repeat
            genome = self.rng.integers(0, self.upper + 1)
            key = self.key_of(genome)
            if key not in self.seen:
                self.seen.add(key)
                genomes.append(genome)
            if len(genomes) == self.population:
                break
        return np.array(genomes, dtype=int).reshape(-1, len(self.upper))

    def tell(self, F: np.ndarray, G: np.ndarray) -> None:
        """Random search learns nothing from what it is told."""


def make_proposer(
    algorithm: Algorithm,
    upper: list[int],
    n_obj: int,
    n_constr: int,
    population: int,
    seed: int,
    key_of: KeyOf,
) -> Proposer:
    if algorithm == "nsga2":
        return NSGA2Proposer(upper, n_obj, n_constr, population, seed, key_of)
    return RandomProposer(upper, population, seed, key_of)
