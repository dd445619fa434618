"""Pareto fronts, hypervolume and the proposers."""

import numpy as np
import pytest

from qdistill.search.algorithms import make_proposer
from qdistill.search.front import bounds, dominates, hypervolume, pareto_mask


def test_dominance_needs_one_strictly_better_objective():
    assert dominates(np.array([1, 2]), np.array([1, 3]))
    assert not dominates(np.array([1, 3]), np.array([1, 3]))
    assert not dominates(np.array([0, 4]), np.array([1, 3]))


def test_the_front_keeps_exactly_the_undominated_points():
    F = np.array([[1, 5], [2, 2], [3, 3], [5, 1], [2, 2.5]])
    assert pareto_mask(F).tolist() == [True, True, False, True, False]


def test_hypervolume_is_the_dominated_share_of_the_box():
    ideal, nadir = np.zeros(2), np.ones(2)
    assert hypervolume(np.array([[0.5, 0.5]]), ideal, nadir) == pytest.approx(0.25)
    assert hypervolume(np.array([[0.5, 0.5], [0.0, 0.75]]), ideal, nadir) == pytest.approx(0.375)
    assert hypervolume(np.array([[1.5, 0.1]]), ideal, nadir) == 0.0  # beyond the nadir
    assert hypervolume(np.zeros((0, 2)), ideal, nadir) == 0.0


def test_bounds_leave_room_for_the_worst_point():
    ideal, nadir = bounds(np.array([[0.0, 10.0], [1.0, 20.0]]))
    assert ideal.tolist() == [0.0, 10.0]
    assert nadir.tolist() == pytest.approx([1.1, 21.0])


def _toy(algorithm: str, seed: int) -> list[list[list[int]]]:
    proposer = make_proposer(algorithm, [4, 4, 3], 2, 1, 6, seed, lambda g: str(np.rint(g)))
    asked = []
    for _ in range(4):
        X = proposer.ask()
        F = np.stack([X.sum(1), 12 - X[:, 0] * X[:, 1]], axis=1).astype(float)
        G = (X[:, 2:3] - 2).astype(float)  # feasible while the last gene is <= 2
        proposer.tell(F, G)
        asked.append(X.tolist())
    return asked


@pytest.mark.parametrize("algorithm", ["nsga2", "random"])
def test_a_proposer_asks_the_same_given_its_seed_and_what_it_was_told(algorithm):
    assert _toy(algorithm, 3) == _toy(algorithm, 3)
    assert _toy(algorithm, 3) != _toy(algorithm, 4)


def test_nsga2_keeps_a_generation_free_of_duplicates_and_inside_the_bounds():
    for X in _toy("nsga2", 0):
        assert len({tuple(x) for x in X}) == len(X)
        assert np.all(np.array(X) >= 0) and np.all(np.array(X) <= [4, 4, 3])


def test_random_search_proposes_each_candidate_once_until_the_space_is_spent():
    proposer = make_proposer("random", [1, 1], 2, 0, 3, 0, lambda g: str(g.tolist()))
    first, second = proposer.ask(), proposer.ask()
    assert len(first) == 3 and len(second) == 1
    assert len(proposer.ask()) == 0
