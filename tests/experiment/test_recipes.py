"""Students as recipes of stages: every registered stage parses, round-trips and runs; a
recipe's order is checked on load; sweeps expand into named runs; ``method`` is sugar
for the same recipe."""

from types import SimpleNamespace

import pytest
import torch

from qdistill.errors import ConfigError
from qdistill.experiment import parse_experiment, plan_runs, run_experiment
from qdistill.experiment.recipe import parse_stage, recipe_title, recipe_to_config
from qdistill.experiment.stages import STAGES
from qdistill.models import load_model
from qdistill.prune import weight_sparsity
from qdistill.report import write_report

ONE_EPOCH = {"epochs": 1, "optimizer": {"lr": 0.003}}
# One setting of every registered stage (a new stage adds its line here).
EXAMPLES = {
    "train": ONE_EPOCH,
    "distill": {"alpha": 0.5, "temperature": 4, "train": ONE_EPOCH},
    "finetune": {**ONE_EPOCH, "distill": {"alpha": 0.5}},
    "quantize": {"mode": "qat", "bits": "w4a4", "train": ONE_EPOCH, "calibration_batches": 1},
    "equalize": {"strength": 1.0},
    "mixed-precision": {"low": "w2a2", "high": "w8a8", "budget": "w4a4"},
    "half": {"dtype": "bfloat16", "keep_fp32": ["@last"]},
    "prune": {"ratio": 0.5, "ignore": ["@last"]},
    "prune-channels": {"importance": "taylor", "ratio": 0.5, "steps": 2, "finetune": ONE_EPOCH},
}
# The stages a stage needs around it to make a valid recipe.
AROUND = {"mixed-precision": ([], [{"quantize": {"calibration_batches": 1}}])}


def test_every_stage_has_an_example():
    assert set(EXAMPLES) == set(STAGES.names())


@pytest.mark.parametrize("name", STAGES.names())
def test_stage_configs_parse_and_round_trip(name):
    config = parse_stage({name: EXAMPLES[name]})
    assert type(config) is STAGES.get(name).config and config.stage == name
    (written,) = recipe_to_config([config])
    assert parse_stage(written) == config  # what a record holds rebuilds the same stage


def _student(name, recipe, **extra):
    return {"name": name, "recipe": recipe, **extra}


@pytest.mark.parametrize("name", STAGES.names())
def test_every_stage_runs_in_an_experiment(tmp_path, tiny_config, name):
    before, after = AROUND.get(name, ([], []))
    recipe = [*before, {name: EXAMPLES[name]}, *after]
    tiny_config["teacher"]["train"]["epochs"] = 2
    tiny_config["students"] = [_student("s", recipe)]
    outcome = run_experiment(parse_experiment(tiny_config), tmp_path)
    student = outcome.records[-1]
    assert [s.stage for s in student.stages] == ["start", *(next(iter(e)) for e in recipe)]
    assert all("val_acc" in s.metrics and s.size_bytes > 0 for s in student.stages)
    assert student.method == "recipe" and student.recipe == recipe_title(
        [parse_stage(e) for e in recipe]
    )
    model, _ = load_model(tmp_path / student.checkpoint)  # every result reloads
    assert model is not None


def test_pruned_weights_stay_zero_through_later_training(tmp_path, tiny_config):
    recipe = [
        {"prune": {"ratio": 0.6}},
        {"finetune": {"epochs": 2, "optimizer": {"name": "adamw", "weight_decay": 0.1}}},
        {"quantize": {"mode": "qat", "bits": "w4a4", "train": ONE_EPOCH}},
    ]
    tiny_config["students"] = [_student("pruned", recipe)]
    outcome = run_experiment(parse_experiment(tiny_config), tmp_path)
    record = outcome.records[-1]
    assert record.stages[1].details["sparsity"] == pytest.approx(0.6, abs=0.01)
    model, _ = load_model(tmp_path / record.checkpoint)
    assert weight_sparsity(model) >= record.stages[1].details["sparsity"] - 1e-9
    assert record.bits == "w4a4" and record.recipe == "prune(0.6) > finetune > quantize(qat)"


def test_distil_prune_finetune_quantize_pipeline_shrinks_and_reloads(tmp_path, tiny_config):
    recipe = [
        {"distill": {"alpha": 0.5, "temperature": 4, "train": ONE_EPOCH}},
        {"prune-channels": {"importance": "lamp", "target_macs": 0.5}},
        {"finetune": ONE_EPOCH},
        {"quantize": {"mode": "ptq", "bits": "w8a8", "fold_bn": True}},
    ]
    tiny_config["teacher"] = {"model": "small_cnn", "train": {"epochs": 2}}
    tiny_config["students"] = [_student("compressed", recipe)]
    tiny_config["export"] = {"runs": ["compressed"], "formats": ["onnx-qdq"], "samples": 8}
    outcome = run_experiment(parse_experiment(tiny_config), tmp_path)
    record = outcome.records[-1]
    pruning = record.stages[2].details
    assert pruning["macs_after"] <= 0.5 * pruning["macs_before"]
    assert record.stages[2].size_bytes < record.stages[1].size_bytes
    assert record.stages[2].macs < 0.6 * record.stages[1].macs  # conv/linear MACs
    assert all(stage.latency_ms > 0 for stage in record.stages)
    write_report(tmp_path, outcome.records, "pipeline")
    assert "| MMACs | Latency (ms) |" in (tmp_path / "report.md").read_text()
    assert record.recipe == ("distill > prune-channels(lamp,macs<=0.5) > finetune > quantize(ptq)")
    _, metadata = load_model(tmp_path / record.checkpoint)
    assert metadata["pruned_shapes"] and record.params < outcome.records[0].params
    assert outcome.exports and all(e.report.passed for e in outcome.exports)


def test_method_is_sugar_for_the_same_recipe(tmp_path, tiny_config):
    train = {"epochs": 2, "optimizer": {"lr": 0.003}}
    tiny_config["students"] = [
        {"name": "qat", "method": "qat", "bits": "w2a2", "train": train},
        _student("qat-recipe", [{"quantize": {"mode": "qat", "bits": "w2a2", "train": train}}]),
        {"name": "eq", "method": "ptq", "bits": "w4a4", "equalize": True},
        _student("eq-recipe", ["equalize", {"quantize": {"bits": "w4a4"}}]),
    ]
    runs = plan_runs(parse_experiment(tiny_config))
    by_name = {r.name: r for r in runs}
    assert by_name["qat"].stages == by_name["qat-recipe"].stages
    assert by_name["eq"].stages == by_name["eq-recipe"].stages
    records = {r.name: r for r in run_experiment(parse_experiment(tiny_config), tmp_path).records}
    assert records["qat"].metrics == records["qat-recipe"].metrics
    assert records["eq"].metrics == records["eq-recipe"].metrics
    assert records["qat-recipe"].method == "recipe" and records["qat"].method == "qat"


def test_sweeps_expand_into_named_runs_with_their_own_ids(tiny_config):
    tiny_config["seeds"] = [0, 1]
    recipe = [{"prune": {"ratio": 0.5}}, {"quantize": {"bits": "w8a8"}}]
    sweep = {"prune.ratio": [0.25, 0.5], "1.bits": ["w8a8", {"*": "w4a4", "@last": "w8a8"}]}
    tiny_config["students"] = [_student("s", recipe, sweep=sweep)]
    runs = [r for r in plan_runs(parse_experiment(tiny_config)) if r.group == "s"]
    names = [r.name for r in runs if r.seed == 0]
    assert names == [
        "s-ratio0.25-w8a8",
        "s-ratio0.25-w4a4+last=w8a8",
        "s-ratio0.5-w8a8",
        "s-ratio0.5-w4a4+last=w8a8",
    ]
    assert len({r.run_id for r in runs}) == 8
    ratios = [r.stages[0].ratio for r in runs if r.seed == 0]
    assert ratios == [0.25, 0.25, 0.5, 0.5]
    assert runs[1].labels.bits == "w4a4+last=w8a8" and runs[1].labels.w_bits == 4


@pytest.mark.parametrize(
    ("student", "message"),
    [
        (
            _student("s", [{"prunee": {"ratio": 0.5}}]),
            "recipe.0: unknown stage 'prunee' \\(did you mean",
        ),
        (
            _student("s", [{"prune": {"ratio": 2}}]),
            "students.0: recipe.0: prune: ratio: Input should be less",
        ),
        (_student("s", [{"a": {}, "b": {}}]), "must be one stage"),
        (
            _student("s", [{"quantize": {"bits": "w8a8"}}, {"quantize": {"bits": "w4a4"}}]),
            "stage 'quantize' needs a float model, but after 'quantize' it is quantized",
        ),
        (
            _student("s", [{"half": {}}, "equalize"]),
            "stage 'equalize' needs a float model, but after 'half' it is half",
        ),
        (_student("s", ["quantize"]), "has no plan: give 'bits', or put a mixed-precision"),
        (_student("s", ["mixed-precision"]), "plan of the mixed-precision stage is never applied"),
        (_student("s", [{"quantize": {"mode": "ptq", "train": {}}}]), "mode ptq only calibrates"),
        (_student("s", ["equalize"], sweep={"prune.ratio": [0.5]}), "sweep path 'prune.ratio'"),
        (
            _student("s", [{"prnue": {}}], sweep={"prune.ratio": [0.5]}),
            "recipe.0: unknown stage 'prnue' \\(did you mean 'prune'",
        ),
        ({**_student("s", ["equalize"]), "method": "ptq"}, "either 'method'"),
        ({"name": "s"}, "either 'method'"),
        ({**_student("s", ["equalize"]), "bits": "w4a4"}, "belong to method students"),
        ({"name": "s", "method": "ptq", "bits": "w4a4", "sweep": {}}, "'sweep' belongs to"),
    ],
)
def test_invalid_recipes_fail_on_load(tiny_config, student, message):
    tiny_config["students"] = [student]
    with pytest.raises(ConfigError, match=message):
        parse_experiment(tiny_config, "x.yaml")


def test_distillation_loss_and_models_are_checked_on_load(tiny_config):
    tiny_config["students"] = [_student("s", [{"distill": {"loss": "pixel_kd"}}])]
    with pytest.raises(ConfigError, match="pixel_kd' does not fit a classification model"):
        parse_experiment(tiny_config)
    tiny_config["students"] = [{"name": "s", "method": "float", "model": "espcn"}]
    with pytest.raises(ConfigError, match="'espcn' is a super-resolution model but dataset"):
        parse_experiment(tiny_config)


def test_stage_context_keeps_masks_out_of_unpruned_training():
    from qdistill.experiment.stages import StageContext, StudentState

    task = SimpleNamespace(device=torch.device("cpu"), monitor="val_acc")
    context = StageContext(task, 0, "d", None, print, lambda t, c: None)
    assert "hooks" not in context.fit_options(StudentState(torch.nn.Linear(2, 2)))
    pruned = StudentState(torch.nn.Linear(2, 2), masks={"": torch.ones(2, 2, dtype=bool)})
    assert list(context.fit_options(pruned)["hooks"]) == ["after_backward"]
