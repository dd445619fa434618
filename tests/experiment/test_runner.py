import json
from dataclasses import replace
from importlib import metadata

import pytest
import torch

from qdistill.errors import ConfigError, DivergenceError
from qdistill.experiment import ResultsStore, parse_experiment, run_experiment
from qdistill.models import load_model
from qdistill.report import summarize, write_report


def test_experiment_end_to_end_and_resume(tmp_path, tiny_config, digits):
    config = parse_experiment(tiny_config)
    outcome = run_experiment(config, tmp_path)
    records = outcome.records
    assert outcome.executed == 5 and outcome.skipped == 0
    assert [r.name for r in records] == ["teacher", "ptq-w8a8", "ptq-w2a2", "qat", "small"]
    for record in records:
        assert record.versions["torch"] == metadata.version("torch")
        assert record.versions["python"] and record.seed == 0 and record.spec_version == 1
    by_name = {r.name: r for r in records}
    teacher = by_name["teacher"].metrics["test_acc"]
    assert teacher > 85
    assert abs(by_name["ptq-w8a8"].metrics["test_acc"] - teacher) < 2
    assert by_name["ptq-w8a8"].w_bits == 8 and by_name["teacher"].w_bits == 32
    for name in ("ptq-w8a8", "ptq-w2a2", "qat"):
        m = by_name[name].metrics
        assert m["test_acc_integer"] == pytest.approx(m["test_acc"], abs=0.3)
    start, qat = by_name["qat"].stages
    assert (start.stage, qat.stage, qat.details["training"]["epochs"]) == ("start", "quantize", 2)
    # each stage records the validation accuracy after it: the teacher's, then the student's
    assert start.metrics["val_acc"] == by_name["teacher"].metrics["val_acc"]
    assert qat.metrics["val_acc"] == by_name["qat"].metrics["val_acc"]
    assert by_name["small"].model == "dnn_30"
    # tiny layers: scales and biases are a large share, so less than the 4x of the weights
    assert by_name["ptq-w2a2"].size_bytes < 0.4 * by_name["ptq-w8a8"].size_bytes

    # checkpoints rebuild into the same quantized model
    model, _ = load_model(tmp_path / by_name["qat"].checkpoint)
    from qdistill.data import Batches
    from qdistill.metrics import evaluate_classifier

    acc = evaluate_classifier(model, Batches(digits.test, 256))["acc"]
    assert acc == pytest.approx(by_name["qat"].metrics["test_acc"])

    # resuming skips finished runs; the cached teacher is reused
    again = run_experiment(config, tmp_path)
    assert again.executed == 0 and again.skipped == 5
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(line)["schema"] == 2 for line in lines)
    assert again.records == records  # what was written reads back the same

    report = write_report(tmp_path, again.records)
    text = report.read_text()
    assert "| ptq-w2a2 | mlp | ptq | w2a2 | 1 |" in text
    # reused runs keep the description they ran with; the report shows the file's own
    edited = write_report(tmp_path, again.records, description="Edited since.").read_text()
    assert "\nEdited since.\n" in edited
    assert (tmp_path / "quality_vs_bits.png").stat().st_size > 1000


def test_force_reruns_and_appends(tmp_path, tiny_config):
    tiny_config["students"] = [tiny_config["students"][0]]
    tiny_config["students"][0]["bits"] = "w8a8"
    config = parse_experiment(tiny_config)
    run_experiment(config, tmp_path)
    outcome = run_experiment(config, tmp_path, force=True)
    assert outcome.executed == 2
    assert len(ResultsStore(tmp_path / "results.jsonl").load()) == 4
    assert len(outcome.records) == 2  # the newest record of each run


def test_results_store_skips_a_torn_line_and_repairs_it_before_appending(
    tmp_path, record_of, capsys
):
    store = ResultsStore(tmp_path / "results.jsonl")
    first = record_of(name="a", metrics={"test_acc": 90.0, "test_loss": float("nan")})
    store.append(first)
    intact = store.path.read_bytes()
    with open(store.path, "a") as handle:
        handle.write('{"run_id": "b", "trunc')
    assert store.load() == [replace(first, metrics={"test_acc": 90.0})]  # NaN is no value
    assert "skipping unreadable line 2" in capsys.readouterr().out
    second = record_of(name="c")
    store.append(second)  # the fragment is cut off, never glued to the new record
    assert "removed a torn last line" in capsys.readouterr().out
    assert store.path.read_bytes().startswith(intact)
    assert [r.name for r in store.load()] == ["a", "c"]
    assert len(store.path.read_text().splitlines()) == 2 and not capsys.readouterr().out
    store.path.write_text('{"torn first')  # a file holding only a fragment
    store.append(first)
    assert [r.name for r in store.load()] == ["a"]


def test_summary_mean_and_standard_error(record_of):
    records = [
        record_of(name="q", seed=s, metrics={"test_acc": acc}, size_bytes=10, float32_bytes=40)
        for s, acc in enumerate([90.0, 92.0, 94.0])
    ]
    (row,) = summarize(records)
    stat = row.metrics["test_acc"]
    assert stat.mean == pytest.approx(92.0)
    assert stat.se == pytest.approx(2.0 / 3**0.5)
    assert stat.format() == "92.00 ± 1.15"
    assert row.compression == 4.0


def test_same_seed_reproduces_the_run_exactly(tmp_path, tiny_config):
    tiny_config["students"] = [tiny_config["students"][1]]  # qat w2a2
    config = parse_experiment(tiny_config)
    first = run_experiment(config, tmp_path / "a").records
    second = run_experiment(config, tmp_path / "b").records
    for a, b in zip(first, second, strict=True):
        assert a.run_id == b.run_id
        assert a.metrics == b.metrics
    model_a, _ = load_model(tmp_path / "a" / first[1].checkpoint)
    model_b, _ = load_model(tmp_path / "b" / second[1].checkpoint)
    for (name, ta), tb in zip(
        model_a.state_dict().items(), model_b.state_dict().values(), strict=True
    ):
        assert torch.equal(ta, tb), name


def test_report_only_settings_follow_the_current_file(tmp_path, tiny_config):
    tiny_config["students"] = [
        {"name": "a", "method": "ptq", "bits": "w8a8", "calibration_batches": 1},
        {"name": "b", "method": "ptq", "bits": "w2a2", "calibration_batches": 1},
    ]
    run_experiment(parse_experiment(tiny_config), tmp_path)
    tiny_config["students"][1]["compare_to"] = "a"
    outcome = run_experiment(parse_experiment(tiny_config), tmp_path)
    assert outcome.executed == 0  # compare_to changes no result, so nothing re-runs
    assert {r.name: r.compare_to for r in outcome.records}["b"] == "a"


def test_experiment_exports_and_benchmarks_selected_runs(tmp_path, tiny_config):
    tiny_config["students"] = [
        {"name": "ptq", "method": "ptq", "bits": ["w8a8", "w2a2"], "calibration_batches": 1},
    ]
    tiny_config["export"] = {"formats": ["onnx-qdq", "qonnx"], "samples": 16}
    tiny_config["benchmark"] = {
        "runs": ["ptq-w8a8"],
        "batch_sizes": [1, 8],
        "repeats": 2,
        "backends": ["torch", "ort_int8"],
    }
    config = parse_experiment(tiny_config)
    outcome = run_experiment(config, tmp_path)
    by_key = {(e.run, e.format): e for e in outcome.exports}
    assert set(by_key) == {(r, f) for r in ("ptq-w8a8", "ptq-w2a2") for f in ("onnx-qdq", "qonnx")}
    assert by_key[("ptq-w8a8", "onnx-qdq")].passed
    assert by_key[("ptq-w2a2", "qonnx")].passed
    refused = by_key[("ptq-w2a2", "onnx-qdq")]
    assert not refused.passed and "2-bit weights" in refused.error
    (bench,) = outcome.benchmarks
    backends = [b.backend for b in bench.measurement.benchmark.backends]
    assert bench.run == "ptq-w8a8" and backends == ["torch", "ort_int8"]
    text = write_report(
        tmp_path, outcome.records, exports=outcome.exports, benchmarks=outcome.benchmarks
    ).read_text()
    assert "## Exports" in text and "## Deployment benchmark" in text
    assert (tmp_path / bench.folder / "benchmark.md").is_file()
    again = run_experiment(config, tmp_path)  # nothing changed: results are reused
    assert all(e.reused for e in again.exports if e.passed)
    assert again.benchmarks[0].measurement == bench.measurement


@pytest.mark.parametrize(
    "block",
    [
        {"export": {"runs": ["qat", "nope"], "formats": ["onnx"]}},
        {"benchmark": {"runs": ["ptq-w9a9"]}},
        {"hardware": {"targets": [{"fps": 1000, "runs": ["smal"]}]}},
    ],
)
def test_blocks_naming_no_run_fail_before_anything_is_written(tmp_path, tiny_config, block):
    tiny_config.update(block)
    with pytest.raises(
        ConfigError, match=r"\.runs names no planned run: \['(nope|ptq-w9a9|smal)'\]"
    ):
        run_experiment(parse_experiment(tiny_config), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("lr", "reason"), [(1000.0, "loss exploded"), (1e-9, "no better than chance")]
)
def test_a_teacher_that_learned_nothing_is_refused_and_never_cached(
    tmp_path, tiny_config, lr, reason
):
    tiny_config["teacher"]["train"]["optimizer"]["lr"] = lr
    with pytest.raises(DivergenceError, match=reason):
        run_experiment(parse_experiment(tiny_config), tmp_path)
    assert not list(tmp_path.rglob("*.safetensors"))
    assert not (tmp_path / "results.jsonl").exists()


def test_a_torn_line_longer_than_a_read_chunk_is_cut_at_its_start(tmp_path, record_of, monkeypatch):
    from qdistill.experiment import store as store_module

    monkeypatch.setattr(store_module, "CHUNK", 3)
    store = ResultsStore(tmp_path / "results.jsonl")
    store.append(record_of(name="a"))
    intact = store.path.read_bytes()
    with open(store.path, "ab") as handle:
        handle.write(b'{"run_id": "b", "a long torn fragment')
    store.append(record_of(name="c"))
    assert store.path.read_bytes().startswith(intact)
    assert [r.name for r in store.load()] == ["a", "c"]


def test_an_experiment_can_keep_exports_outside_tolerance_with_warnings(
    tmp_path, tiny_config, monkeypatch
):
    import qdistill.export.api as api

    real = api.run_exported
    monkeypatch.setattr(api, "run_exported", lambda *args: real(*args) + 0.5)
    tiny_config["students"] = [tiny_config["students"][0]]
    tiny_config["export"] = {"runs": ["ptq-w8a8"], "formats": ["onnx-qdq"]}
    refused = run_experiment(parse_experiment(tiny_config), tmp_path / "refuse")
    assert refused.exports[0].report is None and "outside tolerance" in refused.exports[0].error
    tiny_config["export"]["on_mismatch"] = "warn"
    tiny_config["export"]["tolerance"] = {"agreement": 0.9}
    kept = run_experiment(parse_experiment(tiny_config), tmp_path / "warn")
    (export,) = kept.exports
    assert export.report is not None and not export.passed and export.report.misses
    text = write_report(tmp_path / "warn", kept.records, exports=kept.exports).read_text()
    assert "with warnings: mean \\|diff\\| 0.5 > 0.05" in text  # escaped for the table
