"""Distillation through experiments: schema, sweeps, runs, cache policy and report."""

import pytest

from qdistill.errors import ConfigError
from qdistill.experiment import parse_experiment, plan_runs, run_experiment
from qdistill.report import write_report

ONE_EPOCH = {"epochs": 1, "optimizer": {"lr": 0.003}}


def kd_config(tiny_config, **overrides):
    tiny_config["students"] = [
        {"name": "qat", "method": "qat", "bits": ["w8a8", "w2a2"], "train": ONE_EPOCH},
        {
            "name": "qkd",
            "method": "qkd",
            "bits": ["w8a8", "w2a2"],
            "compare_to": "qat",
            "phases": {"self_study": ONE_EPOCH, "co_study": ONE_EPOCH, "tutoring": ONE_EPOCH},
        },
        {
            "name": "grid",
            "method": "float",
            "model": "dnn_30",
            "init": "scratch",
            "train": ONE_EPOCH,
            "distill": {"alpha": [0.2, 0.8], "temperature": [2, 8]},
        },
    ]
    tiny_config.update(overrides)
    return tiny_config


def test_sweep_names_and_distinct_ids(tiny_config):
    runs = plan_runs(parse_experiment(kd_config(tiny_config)))
    names = [r.name for r in runs]
    assert "grid-a0.2-T8" in names and "grid-a0.8-T2" in names and "qkd-w2a2" in names
    assert len({r.run_id for r in runs}) == len(runs) == 1 + 2 + 2 + 4
    grid = next(r for r in runs if r.name == "grid-a0.8-T2")
    (distill,) = grid.stages
    assert (distill.stage, distill.alpha, distill.temperature) == ("distill", 0.8, 2)
    assert (grid.labels.alpha, grid.labels.temperature) == (0.8, 2)
    qkd = next(r for r in runs if r.name == "qkd-w2a2")
    (quantize,) = qkd.stages
    assert quantize.distillation.alpha == 0.7  # QKD distils with the defaults when none given


def test_self_study_only_qkd_does_not_distil(tiny_config):
    tiny_config["students"] = [
        {"name": "ss", "method": "qkd", "bits": "w4a4", "phases": {"self_study": ONE_EPOCH}}
    ]
    (run,) = [r for r in plan_runs(parse_experiment(tiny_config)) if r.name == "ss"]
    assert run.stages[0].distillation is None and run.labels.alpha is None


@pytest.mark.parametrize(
    ("student", "message"),
    [
        ({"name": "x", "method": "qkd", "bits": "w4a4"}, "needs 'phases'"),
        ({"name": "x", "method": "qkd", "bits": "w4a4", "phases": {}}, "at least one"),
        (
            {
                "name": "x",
                "method": "qkd",
                "bits": "w4a4",
                "train": ONE_EPOCH,
                "phases": {"tutoring": ONE_EPOCH},
            },
            "trains per phase",
        ),
        (
            {"name": "x", "method": "qat", "bits": "w4a4", "phases": {"tutoring": ONE_EPOCH}},
            "belong to method qkd",
        ),
        ({"name": "x", "method": "ptq", "bits": "w4a4", "distill": {}}, "cannot distil"),
        ({"name": "x", "method": "float", "distill": {"alpha": 1.5}}, "alpha must be in"),
        ({"name": "x", "method": "float", "distill": {"temperature": [0, 2]}}, "positive"),
        (
            {"name": "x", "method": "float", "distill": {"features": [{"type": "afd"}]}},
            "student_layers",
        ),
        (
            {"name": "x", "method": "float", "distill": {"features": [{"type": "magic"}]}},
            "features.0.type",
        ),
        ({"name": "x", "method": "float", "compare_to": "nobody"}, "compare_to 'nobody'"),
    ],
)
def test_invalid_distillation_settings(tiny_config, student, message):
    tiny_config["students"] = [student]
    with pytest.raises(ConfigError, match=message):
        parse_experiment(tiny_config)


def test_distillation_experiment_end_to_end(tmp_path, tiny_config):
    outcome = run_experiment(parse_experiment(kd_config(tiny_config)), tmp_path)
    by_name = {r.name: r for r in outcome.records}
    qkd = by_name["qkd-w2a2"]
    assert qkd.phases == "SS+CS+TS" and qkd.alpha == 0.7
    training = qkd.stages[-1].details["training"]
    assert list(training["phases"]) == ["self_study", "co_study", "tutoring"]
    assert qkd.metrics["test_acc_integer"] == pytest.approx(qkd.metrics["test_acc"], abs=0.3)
    assert by_name["grid-a0.2-T2"].stages[-1].details["epochs"] == 1
    # the frozen teacher's outputs were cached once for all the grid's runs; each QKD run
    # tutors with its own co-studied teacher, whose outputs get their own entry
    assert len(list((tmp_path / "cache").glob("teacher-outputs-*.safetensors"))) == 1 + 2
    text = write_report(tmp_path, outcome.records).read_text()
    assert "## Method x bit width" in text and "| qkd | qkd (SS+CS+TS) |" in text
    assert "## Alpha x temperature: grid (float)" in text
    assert (tmp_path / "grid_grid_float.png").is_file()
    assert "## Paired comparisons" in text and "| qkd | qat | w2a2 |" in text


def test_augmentation_disables_the_cache_and_feature_terms_run(tmp_path, tiny_config, capsys):
    tiny_config["data"]["augment"] = {"shift": 1}
    tiny_config["teacher"]["model"] = "small_cnn"
    tiny_config["teacher"]["train"]["epochs"] = 1
    tiny_config["students"] = [
        {
            "name": "kd",
            "method": "float",
            "model": {"name": "small_cnn", "options": {"widths": [4, 8, 8]}},
            "init": "scratch",
            "train": ONE_EPOCH,
            "distill": {
                "features": [
                    {"type": "attention_transfer", "pairs": [["features.3", "features.3"]]}
                ]
            },
        },
    ]
    outcome = run_experiment(parse_experiment(tiny_config), tmp_path)
    assert outcome.executed == 2
    assert "live teacher outputs (augmentation (shift=1,noise_std=0.0)" in capsys.readouterr().out
    assert not list((tmp_path / "cache").glob("teacher-outputs-*"))


def test_unknown_feature_path_is_a_config_error(tmp_path, tiny_config):
    tiny_config["students"] = [
        {
            "name": "kd",
            "method": "float",
            "model": "dnn_30",
            "init": "scratch",
            "train": ONE_EPOCH,
            "distill": {
                "features": [{"type": "feature_mse", "pairs": [["features.1", "nonexistent"]]}]
            },
        },
    ]
    with pytest.raises(ConfigError, match="teacher has no module 'nonexistent'"):
        run_experiment(parse_experiment(tiny_config), tmp_path)


def test_self_study_alone_is_exactly_qat(tmp_path, tiny_config):
    train = {"epochs": 2, "optimizer": {"lr": 0.003}}
    tiny_config["students"] = [
        {"name": "qat", "method": "qat", "bits": "w2a2", "train": train},
        {"name": "ss", "method": "qkd", "bits": "w2a2", "phases": {"self_study": train}},
    ]
    records = {r.name: r for r in run_experiment(parse_experiment(tiny_config), tmp_path).records}
    assert records["ss"].metrics == records["qat"].metrics


def test_distillation_teaches_on_the_images_whose_labels_are_withheld(tmp_path, tiny_config):
    few = {"epochs": 4, "optimizer": {"lr": 0.01}, "labelled_fraction": 0.02}
    student = {"method": "float", "model": "dnn_30", "init": "scratch", "train": few}
    tiny_config["students"] = [
        {"name": "few", **student},
        {"name": "few-kd", **student, "distill": {"alpha": 0.9, "temperature": 4}},
    ]
    outcome = run_experiment(parse_experiment(tiny_config), tmp_path)
    by_name = {r.name: r.metrics["test_acc"] for r in outcome.records}
    # 2% of the labels (about 2 per class) against a teacher that labels every image
    assert by_name["few-kd"] > by_name["few"] + 5, by_name
    assert outcome.records[1].config["train"]["labelled_fraction"] == 0.02


def test_super_resolution_has_no_labels_to_withhold(tmp_path):
    from qdistill.data import build_dataset
    from qdistill.tasks import make_task

    task = make_task(build_dataset("photos", eval_crop=32, lr_patch=8), "cpu", 8)
    with pytest.raises(ConfigError, match="labelled_fraction withholds class labels"):
        task.training_batches(8, 0, None, labelled_fraction=0.5)
