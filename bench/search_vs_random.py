"""NSGA-II against random search: the same experiment searched with each, for several
search seeds, with the same number of candidate evaluations per generation.

All searches share one output folder, so a candidate two searches propose is trained and
timed once and scores alike in both. After every search has finished, each one's fronts
are scored again between a common ideal and nadir (the best and the worst-plus-10% of
every candidate any search measured), so their hypervolumes compare: over the whole range
measured (``hv_*``: worst plus 10% as the reference), and beyond the baseline (``beyond_*``:
the baseline as the reference, the share of the box between the ideal point and the
baseline that the front dominates). Per algorithm: the mean of each over the seeds, how
many seeds NSGA-II beats random on (beyond the baseline), and how many measured
candidates dominate the baseline. ``search_vs_random.png`` (in the output folder) shows
the curves beyond the baseline.

Usage: python bench/search_vs_random.py [--config configs/search-digits.yaml]
       [--seeds 0 1 2] [--profile smoke] [--workers 2] [--out DIR]
Last line: RESULT key=value ...
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from qdistill.console import console
from qdistill.experiment import load_experiment
from qdistill.experiment.executors import Execution
from qdistill.report.search_plots import plot_hypervolume
from qdistill.search.compare import searches_in_folder
from qdistill.search.config import search_of
from qdistill.search.driver import dominating_baseline, run_search

ALGORITHMS = ("nsga2", "random")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/search-digits.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="search-vs-random-"))
    outcomes = {}
    started = time.perf_counter()
    for seed in args.seeds:
        for algorithm in ALGORITHMS:
            sets = (f"search.algorithm={algorithm}", f"search.seed={seed}")
            config = load_experiment(args.config, sets, args.profile)
            outcomes[algorithm, seed] = run_search(
                config, search_of(config, args.config), out, Execution(workers=args.workers)
            )
    wall_s = time.perf_counter() - started
    compared = {
        (s.algorithm, s.seed): s for s in searches_in_folder(outcomes[ALGORITHMS[0], args.seeds[0]])
    }
    curves = {
        f"{algorithm} seed {seed}": [
            g.beyond_baseline for g in compared[algorithm, seed].ledger.generations
        ]
        for algorithm, seed in outcomes
    }
    plot = plot_hypervolume(curves, out / "search_vs_random.png")
    whole = {k: compared[k].ledger.generations[-1].hypervolume for k in outcomes}
    beyond = {k: compared[k].ledger.generations[-1].beyond_baseline for k in outcomes}

    def mean(values: dict, algorithm: str) -> float:
        return statistics.fmean(values[algorithm, s] for s in args.seeds)

    wins = sum(beyond["nsga2", s] > beyond["random", s] for s in args.seeds)
    better = {
        a: statistics.fmean(len(dominating_baseline(outcomes[a, s])) for s in args.seeds)
        for a in ALGORITHMS
    }
    evaluations = sum(len(g.asked) for g in outcomes["nsga2", args.seeds[0]].ledger.generations)
    for (algorithm, seed), outcome in sorted(outcomes.items()):
        chosen = outcome.chosen.name if outcome.chosen else "-"
        console.print(
            f"{algorithm:6s} seed {seed}: hypervolume {whole[algorithm, seed]:.4f}, beyond "
            f"the baseline {beyond[algorithm, seed]:.4f}, "
            f"{len(dominating_baseline(outcome))} dominate the baseline, chosen {chosen}"
        )
    console.print(f"curves: {plot}; candidates in {out}; {wall_s / 60:.1f} min")
    print(
        f"RESULT hv_nsga2={mean(whole, 'nsga2'):.4f} hv_random={mean(whole, 'random'):.4f} "
        f"beyond_nsga2={mean(beyond, 'nsga2'):.4f} beyond_random={mean(beyond, 'random'):.4f} "
        f"nsga2_wins={wins}/{len(args.seeds)} dominating_nsga2={better['nsga2']:.1f} "
        f"dominating_random={better['random']:.1f} evaluations={evaluations} "
        f"wall_min={wall_s / 60:.1f}"
    )


if __name__ == "__main__":
    main()
