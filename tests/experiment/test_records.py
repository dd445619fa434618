"""Run records: results.jsonl written by qdistill 0.1.0 (schema 1, no ``schema`` key) is
migrated on read, resumes (same run ids) and reports; records this version cannot read
fail with one line that says what to do."""

import json
import shutil
from pathlib import Path

import pytest

from qdistill.experiment import ResultsStore, load_experiment, parse_experiment, plan_runs
from qdistill.experiment.migrate import RecordError
from qdistill.experiment.runner import run_experiment
from qdistill.experiment.shipped import shipped_configs_dir
from qdistill.quant import parse_layer_spec
from qdistill.report import write_report

FIXTURES = Path(__file__).parent / "fixtures"
LEGACY_TEACHER = json.loads((FIXTURES / "results-0.1.0-tiny.jsonl").read_text().splitlines()[0])
ONE_EPOCH = {"epochs": 1, "batch_size": 8, "pixel_loss": "l2"}
LEARNED_W4A4 = {"bits": "w4a4", "weight": {"range": "learned"}, "act": {"range": "learned"}}
# The experiment behind results-0.1.0-sr.jsonl (run by qdistill 0.1.0).
SR_0_1_0 = {
    "name": "tiny-sr",
    "data": {
        "name": "photos",
        "options": {"channels": "y", "lr_patch": 12, "patches_per_epoch": 32, "eval_crop": 96},
    },
    "teacher": {
        "model": {"name": "espcn", "options": {"features": [8, 4], "act": "relu"}},
        "train": ONE_EPOCH,
    },
    "students": [
        {
            "name": "ptq",
            "method": "ptq",
            "bits": [
                "w8a8",
                {
                    "allocate": {
                        "levels": ["w2a2", LEARNED_W4A4, "w8a8"],
                        "budget": "w4a4",
                        "label": "alloc-lsq",
                    }
                },
            ],
            "calibration_batches": 2,
            "equalize": True,
        },
        {
            "name": "qkd",
            "method": "qkd",
            "bits": "w4a4",
            "distill": {"loss": "pixel_kd", "alpha": 0.2},
            "compare_to": "ptq",
            "phases": {"self_study": ONE_EPOCH, "co_study": ONE_EPOCH, "tutoring": ONE_EPOCH},
            "calibration_batches": 2,
        },
        {"name": "fp16", "method": "half", "half": {"keep_fp32": ["upsampling"]}},
    ],
}


def _out_with(tmp_path, fixture: str) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(FIXTURES / fixture, out / "results.jsonl")
    return out


def test_schema_1_records_are_migrated(tmp_path):
    records = ResultsStore(_out_with(tmp_path, "results-0.1.0-sr.jsonl") / "results.jsonl").load()
    by_name = {r.name: r for r in records}
    assert list(by_name) == ["teacher", "ptq-w8a8", "ptq-alloc-lsq", "qkd", "fp16"]
    assert all(r.spec_version == 1 and r.task == "super_resolution" for r in records)
    alloc = by_name["ptq-alloc-lsq"]
    assert alloc.allocation.budget_bytes >= alloc.size_bytes
    assert {u.unit for u in alloc.allocation.units} == {"feature_extraction", "body", "upsampling"}
    assert dict(alloc.plan.rules)["*"] in {parse_layer_spec(s) for s in ("w2a2", LEARNED_W4A4)}
    assert alloc.stages[0].details["equalized"][0]["consumer"] == "body.0"
    assert by_name["fp16"].half_plan.keep_fp32 == ("upsampling",) and by_name["fp16"].plan is None
    assert by_name["qkd"].best_epoch == 1 and by_name["qkd"].phases == "SS+CS+TS"
    assert "no AlexNet weights" in by_name["teacher"].notes["lpips"]


@pytest.mark.parametrize(
    ("config", "fixture", "runs"),
    [("tiny", "results-0.1.0-tiny.jsonl", 5), ("sr", "results-0.1.0-sr.jsonl", 5)],
)
def test_results_from_0_1_0_resume_and_report(tmp_path, tiny_config, config, fixture, runs):
    out = _out_with(tmp_path, fixture)
    experiment = parse_experiment(tiny_config if config == "tiny" else SR_0_1_0)
    outcome = run_experiment(experiment, out)
    assert (outcome.executed, outcome.skipped) == (0, runs)  # the same run ids
    report = write_report(out, outcome.records).read_text()
    assert "## Results" in report and "## Runs" in report
    if config == "sr":
        assert "## Sensitivity and allocated plan: ptq-alloc-lsq" in report
        assert "| qkd | ptq | w4a4 |" not in report  # no w4a4 ptq run to pair with
        assert "No pairs for qkd vs ptq" in report


def test_shipped_configs_keep_the_run_ids_of_0_1_0():
    recorded = json.loads((FIXTURES / "run-ids-0.1.0.json").read_text())
    for name, ids in recorded.items():
        path = shipped_configs_dir() / name
        if not path.is_file():
            continue  # a config removed since: nothing to keep
        planned = {f"{r.name}/s{r.seed}": r.run_id for r in plan_runs(load_experiment(path))}
        kept = {run: planned.get(run) for run in ids}
        assert kept == ids, f"{name}: run ids changed; document the migration"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"schema": 9, "run_id": "a"}', "record schema 9, newer than this qdistill reads"),
        ('{"run_id": "a", "name": "x"}', "cannot read this schema-1 run record \\(missing"),
        ('{"schema": 2, "run_id": "a"}', "cannot read this schema-2 run record"),
        (
            json.dumps({**LEGACY_TEACHER, "metrics": {"top5": 1.0}}),
            "\\['top5'\\] are not metrics of task classification",
        ),
        (json.dumps({**LEGACY_TEACHER, "task": "segmentation"}), "unknown task 'segmentation'"),
        ("[1, 2]", "is not a run record"),
    ],
)
def test_unreadable_records_say_what_to_do(tmp_path, line, message):
    store = ResultsStore(tmp_path / "results.jsonl")
    store.path.write_text(line + "\n")
    with pytest.raises(RecordError, match=message) as caught:
        store.load()
    assert "\n" not in str(caught.value) and "results.jsonl line 1" in str(caught.value)
