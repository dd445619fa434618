"""Searches end to end on digits: candidates are ordinary runs, a killed search resumes
without retraining, duplicates train once, constraints are honoured or reported."""

import copy
import json
import sys

import pytest
import yaml

from qdistill.cli import main
from qdistill.experiment import ResultsStore, parse_experiment
from qdistill.report.search import write_search_report
from qdistill.search import evaluate as evaluate_module
from qdistill.search.config import search_of
from qdistill.search.driver import run_search

SEARCH = {
    "name": "search",
    "seeds": [0],
    "data": {"name": "digits"},
    "teacher": {
        "model": {"name": "mlp", "options": {"hidden": [32]}},
        "train": {"epochs": 3, "optimizer": {"lr": 0.01}},
    },
    "search": {
        "space": {"name": "mlp", "layers": {"hidden": {"depth": [1, 2], "widths": [8, 16, 32]}}},
        "recipe": [{"distill": {"alpha": 0.5, "temperature": 4, "train": {"epochs": 2}}}],
        "phase1": {"distill.alpha": [0.3, 0.7]},
        "baseline": {"hidden": [16]},
        "objectives": ["error", "params"],
        "population": 4,
        "generations": 3,
    },
}


def search_in(out_dir, **search):
    """Run the search SEARCH with ``search`` settings changed, into ``out_dir``."""
    raw = copy.deepcopy(SEARCH)
    raw["search"].update(search)
    config = parse_experiment(raw)
    return run_search(config, search_of(config), out_dir)


def candidate_runs(out_dir):
    return [r for r in ResultsStore(out_dir / "results.jsonl").load() if r.group.startswith("c-")]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("search")
    return out, search_in(out)


def test_a_search_measures_candidates_as_runs_and_chooses_a_trade_off(finished):
    out, outcome = finished
    ledger = outcome.ledger
    assert [g.index for g in ledger.generations] == [1, 2, 3]
    assert all(len(g.asked) == 4 for g in ledger.generations)
    assert sum(g.new for g in ledger.generations) == len(outcome.evaluated)
    # phase 1 ran the baseline at both alphas and carried the better one
    assert len(outcome.phase1) == 2
    best = min(outcome.phase1, key=lambda m: m.values["error"])
    assert ledger.phase1_choice == {"distill.alpha": best.recipe_values["distill.alpha"]}
    assert outcome.baseline.name == best.name  # the same student: trained once
    # each candidate is a run with its records; names are unique per candidate
    runs = candidate_runs(out)
    assert len({r.run_id for r in runs}) == len(runs)
    assert {m.name for m in outcome.evaluated} <= {r.group for r in runs}
    # fronts only grow better: hypervolume never falls
    volumes = [g.hypervolume for g in ledger.generations]
    assert volumes == sorted(volumes) and volumes[-1] > 0
    # the chosen candidate and the baseline were trained again as named runs
    assert outcome.chosen is not None
    assert {r.name for r in outcome.final.records} == {"teacher", "baseline", "chosen"}
    assert outcome.final.records[-1].params == outcome.chosen.values["params"]


def test_the_report_shows_the_front_the_generations_and_the_choice(finished):
    out, outcome = finished
    report = write_search_report(outcome, "search").read_text()
    for phrase in ("Phase 1", "## Generations", "## Final front", "(baseline)", "(chosen)"):
        assert phrase in report
    assert (out / "search_hypervolume.png").stat().st_size > 1000
    assert (out / "search_front_error_vs_params.png").stat().st_size > 1000


def test_a_killed_search_resumes_without_retraining_and_ends_the_same(
    finished, tmp_path, monkeypatch
):
    _, reference = finished
    calls = {"count": 0}
    real = evaluate_module.CandidateEvaluator._train_and_measure

    def killed_in_generation_two(self, pending, run_ids):
        calls["count"] += 1
        if calls["count"] == 4:  # phase 1, the baseline, generation 1, then the kill
            raise KeyboardInterrupt
        return real(self, pending, run_ids)

    monkeypatch.setattr(
        evaluate_module.CandidateEvaluator, "_train_and_measure", killed_in_generation_two
    )
    with pytest.raises(KeyboardInterrupt):
        search_in(tmp_path)
    before = len(candidate_runs(tmp_path))
    monkeypatch.setattr(evaluate_module.CandidateEvaluator, "_train_and_measure", real)
    resumed = search_in(tmp_path)
    runs = candidate_runs(tmp_path)
    assert len({r.run_id for r in runs}) == len(runs)  # nothing trained twice
    assert len(runs) > before
    assert [g.asked for g in resumed.ledger.generations] == [
        g.asked for g in reference.ledger.generations
    ]
    assert resumed.chosen.name == reference.chosen.name


def test_duplicate_candidates_are_trained_once(tmp_path):
    tiny = {"name": "mlp", "layers": {"hidden": {"depth": [1], "widths": [8, 16]}}}
    outcome = search_in(tmp_path, space=tiny, phase1={}, baseline={"hidden": [8]})
    assert len(outcome.evaluated) == 2
    trained = {r.group for r in candidate_runs(tmp_path)}
    assert len(trained) == 2 == len(candidate_runs(tmp_path))


def test_constraints_keep_the_choice_feasible(tmp_path):
    outcome = search_in(tmp_path, constraints=["params <= 1000"], generations=2)
    assert outcome.chosen is not None and outcome.chosen.values["params"] <= 1000
    assert all(outcome.feasible(m) == (m.values["params"] <= 1000) for m in outcome.evaluated)


def test_a_constraint_nobody_meets_is_said_at_the_end_with_the_closest(
    tmp_path, monkeypatch, capsys
):
    raw = copy.deepcopy(SEARCH)
    raw["search"].update(constraints=["params <= 10"], generations=1, phase1={})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(
        sys, "argv", ["qdistill", "search", str(path), "--out", str(tmp_path / "o")]
    )
    with pytest.raises(SystemExit) as done:
        main()
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert "no candidate meets params <= 10; the closest: c-" in err
    measured = json.loads((tmp_path / "o" / "search" / "measured.json").read_text())["measured"]
    assert len(measured) >= 4  # the finished candidates are kept
    assert "No candidate meets the constraints" in (tmp_path / "o" / "search.md").read_text()


def test_bits_as_genes_and_fpga_objectives_search_quantized_students(tmp_path):
    outcome = search_in(
        tmp_path,
        recipe=[
            {"distill": {"alpha": 0.5, "temperature": 4, "train": {"epochs": 2}}},
            {"quantize": {"mode": "ptq", "bits": "w8a8", "calibration_batches": 2}},
        ],
        genes={"quantize.bits": ["w8a8", "w4a4", "w2a2"]},
        phase1={},
        baseline={"hidden": [16], "quantize.bits": "w4a4"},
        objectives=["error", "fpga_luts"],
        constraints=["fpga_fps >= 1000"],
        fpga={"fps": 2000},
        generations=2,
    )
    bits = {m.recipe_values["quantize.bits"] for m in outcome.evaluated}
    assert len(bits) > 1
    for measured in [outcome.baseline, *outcome.evaluated]:
        assert measured.values["fpga_luts"] > 0 and measured.values["fpga_fps"] >= 2000
    report = write_search_report(outcome, "fpga").read_text()
    assert "FPGA LUTs" in report
    assert (tmp_path / "search_front_error_vs_fpga_luts.png").is_file()
    assert {r.bits for r in outcome.final.records if r.group == "chosen"} == {
        outcome.chosen.recipe_values["quantize.bits"]
    }


def test_a_super_resolution_search_ranks_by_validation_psnr(tmp_path):
    raw = {
        "name": "sr-search",
        "data": {
            "name": "photos",
            "options": {"scale": 2, "channels": "y", "lr_patch": 12, "patches_per_epoch": 128},
        },
        "teacher": {
            "model": {"name": "espcn", "options": {"act": "relu"}},
            "train": {"epochs": 1, "batch_size": 32},
        },
        "search": {
            "space": {"name": "espcn", "options": {"act": "relu"}},
            "recipe": [{"distill": {"loss": "pixel_kd", "train": {"epochs": 1, "batch_size": 32}}}],
            "baseline": {"features": [16, 8]},
            "objectives": ["val_psnr_y", "params"],
            "population": 2,
            "generations": 1,
        },
    }
    config = parse_experiment(raw)
    outcome = run_search(config, search_of(config), tmp_path)
    for measured in [outcome.baseline, *outcome.evaluated]:
        assert measured.values["val_psnr_y"] > 5 and "test_psnr_y" in measured.values
    assert outcome.objectives[0].higher_is_better  # PSNR is maximised
    best = max(outcome.evaluated, key=lambda m: m.values["val_psnr_y"])
    assert outcome.scores(best)[0] == -best.values["val_psnr_y"]


def test_the_report_compares_the_searches_of_its_folder(finished):
    out, outcome = finished
    random = search_in(out, algorithm="random")
    assert random.baseline.name == outcome.baseline.name  # phase 1 and baseline reused
    report = write_search_report(outcome, "search").read_text()
    assert "## The searches of this folder" in report
    assert "| nsga2, seed 0 |" in report and "| random, seed 0 |" in report
    assert (out / "search_comparison.png").stat().st_size > 1000
    assert outcome.ledger.generations[-1].hypervolume > 0  # its own scores are kept
