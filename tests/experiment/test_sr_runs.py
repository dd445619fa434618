from dataclasses import replace

import pytest
import torch

from qdistill.data import build_dataset
from qdistill.errors import ConfigError
from qdistill.experiment import parse_experiment, run_experiment
from qdistill.experiment.stages.mixed_precision import MixedPrecisionStage
from qdistill.models import load_model
from qdistill.quant import parse_layer_spec
from qdistill.report import write_report
from qdistill.tasks import make_task

TINY_TRAIN = {"epochs": 1, "batch_size": 8, "pixel_loss": "l2"}
LEARNED_W4A4 = {"bits": "w4a4", "weight": {"range": "learned"}, "act": {"range": "learned"}}


def _config(**overrides):
    config = {
        "name": "tiny-sr",
        "data": {
            "name": "photos",
            "options": {
                "channels": "y",
                "lr_patch": 12,
                "patches_per_epoch": 32,
                "eval_crop": 96,
            },
        },
        "teacher": {
            "model": {"name": "espcn", "options": {"features": [8, 4]}},
            "train": TINY_TRAIN,
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
            },
            {
                "name": "mini-kd",
                "method": "qat",
                "model": {"name": "mini_espcn", "options": {"features": 8}},
                "bits": "w4a4",
                "train": TINY_TRAIN,
                "pretrain": TINY_TRAIN,
                "distill": {"loss": "pixel_kd", "alpha": 0.2, "pixel_loss": "l1"},
                "calibration_batches": 2,
            },
            {
                "name": "qkd",
                "method": "qkd",
                "bits": "w4a4",
                "distill": {"loss": "pixel_kd", "alpha": 0.2},
                "compare_to": "mini-kd",
                "phases": {
                    "self_study": TINY_TRAIN,
                    "co_study": TINY_TRAIN,
                    "tutoring": TINY_TRAIN,
                },
                "calibration_batches": 2,
            },
            {"name": "fp16", "method": "half", "half": {"keep_fp32": ["upsampling"]}},
        ],
        "evaluation": {"sample_images": True},
    }
    config.update(overrides)
    return config


def test_super_resolution_experiment_end_to_end(tmp_path):
    outcome = run_experiment(parse_experiment(_config()), tmp_path)
    by_name = {r.name: r for r in outcome.records}
    assert list(by_name) == ["teacher", "ptq-w8a8", "ptq-alloc-lsq", "mini-kd", "qkd", "fp16"]
    for record in outcome.records:
        metrics = record.metrics
        assert record.task == "super_resolution"
        assert {"test_psnr_y", "test_ssim_y", "test_haarpsi", "val_psnr_y"} <= set(metrics)
        assert metrics["bicubic_test_psnr_y"] > 25 and "test_lpips" not in metrics
        lpips = record.notes["lpips"]
        assert "no AlexNet weights" in lpips or "do not exist" in lpips
        assert (tmp_path / "images" / f"{record.name}-s0.png").is_file()
    for name in ("ptq-w8a8", "ptq-alloc-lsq", "mini-kd", "qkd"):
        metrics = by_name[name].metrics
        assert metrics["test_psnr_y_integer"] == pytest.approx(metrics["test_psnr_y"], abs=0.05)
    alloc = by_name["ptq-alloc-lsq"]
    w2a2, learned_w4a4, w8a8 = (parse_layer_spec(s) for s in ("w2a2", LEARNED_W4A4, "w8a8"))
    rules = dict(alloc.plan.rules)
    assert alloc.bits == "alloc-lsq" and rules["*"] == w2a2
    assert {u.unit for u in alloc.allocation.units} == {"feature_extraction", "body", "upsampling"}
    assert alloc.size_bytes <= alloc.allocation.budget_bytes
    assert set(alloc.allocation.levels) == {"w2a2", "w4a4", "w8a8"}
    assert all(spec in (w2a2, learned_w4a4, w8a8) for spec in rules.values())
    assert [s.stage for s in alloc.stages] == ["start", "mixed-precision", "quantize"]
    assert any((tmp_path / "samples").rglob("epoch-001.png"))
    half, teacher = by_name["fp16"], by_name["teacher"]
    assert half.bits == "fp16+fp32:upsampling" and half.half_plan.keep_fp32 == ("upsampling",)
    assert half.metrics["test_psnr_y"] == pytest.approx(teacher.metrics["test_psnr_y"], abs=0.02)
    assert 0.5 < half.size_bytes / teacher.size_bytes < 0.7  # upsampling stays float32
    model, _ = load_model(tmp_path / half.checkpoint)
    assert model.body[0].weight.dtype == torch.float16
    assert model.upsampling[0].weight.dtype == torch.float32
    model, _ = load_model(tmp_path / by_name["mini-kd"].checkpoint)
    assert type(model).__name__ == "MiniESPCN"
    report = write_report(tmp_path, outcome.records).read_text()
    for text in ("PSNR-Y (dB)", "| bicubic |", "picture_grid.png", "Drop at w4a4", "fp16+fp32"):
        assert text in report
    assert (tmp_path / "picture_grid.png").is_file()
    # every unit is at 2 bits (learned by default below 4) or at the learned 4-bit level
    assert "(learned ranges)" in report.split("## Sensitivity and allocated plan")[1]
    # a Y-only model has no RGB metrics and pixel-wise KD no temperature: no empty columns
    assert by_name["qkd"].temperature is None and "PSNR-RGB" not in report
    effects = report.split("## Paired comparisons")[1]
    assert "| mini-kd | w4a4 | 0.2 |" in effects and "| T |" not in effects
    _per_image_checks(by_name, report)


def _per_image_checks(by_name, report):
    """Each test image's PSNR/SSIM, for every run and bicubic, averaging to the set mean;
    the report's per-image tables give differences to bicubic and the teacher."""
    test_images = ["chelsea", "rocket", "sklearn:flower", "camera"]
    teacher, ptq = by_name["teacher"].metrics, by_name["ptq-w8a8"].metrics
    for key in ("test_psnr_y", "test_ssim_y", "bicubic_test_psnr_y"):
        values = [ptq[f"{key}@{image}"] for image in test_images]
        assert sum(values) / len(values) == pytest.approx(ptq[key], abs=1e-9)
    section = report.split("## Quality per test image")[1].split("\n## ")[0]
    assert "### PSNR-Y (dB)" in section and "### SSIM-Y" in section
    image, bicubic = "camera", ptq["bicubic_test_psnr_y@camera"]
    own, float_value = ptq["test_psnr_y@camera"], teacher["test_psnr_y@camera"]
    row = next(line for line in section.splitlines() if line.startswith(f"| {image} |"))
    assert f"{own:.2f} ({own - bicubic:+.2f} / {own - float_value:+.2f})" in row
    assert f"| {bicubic:.2f} |" in row


def test_the_picture_crop_is_where_the_image_has_detail():
    from qdistill.data.images import detailed_window

    image = torch.full((1, 3, 200, 300), 0.5)
    image[..., 120:160, 40:90] = torch.rand(3, 40, 50)  # texture in a flat picture
    top, left = detailed_window(image, 64)
    assert top <= 120 and top + 64 >= 160 and left <= 40 and left + 64 >= 90 - 8
    assert detailed_window(image[..., :50, :60], 64) == (0, 0)  # smaller than the crop


def test_model_and_loss_must_fit_the_task(tmp_path):
    digits_sr = _config(data={"name": "digits"}, students=[])
    with pytest.raises(ConfigError, match="'espcn' is a super-resolution model but dataset"):
        run_experiment(parse_experiment(digits_sr), tmp_path)
    kl = _config(
        students=[{"name": "kd", "method": "qat", "bits": "w8a8", "distill": {"alpha": 0.5}}]
    )
    with pytest.raises(ConfigError, match="does not fit a super-resolution model; use pixel_kd"):
        run_experiment(parse_experiment(kl), tmp_path)


def test_allocation_entries_are_validated():
    bad = _config(students=[{"name": "p", "method": "ptq", "bits": {"allocate": {"low": "w0a4"}}}])
    with pytest.raises(ConfigError, match=r"students\.0\.bits"):
        parse_experiment(bad)
    extra = _config(
        students=[{"name": "p", "method": "ptq", "bits": {"allocate": {}, "weight": {}}}]
    )
    with pytest.raises(ConfigError, match="no other keys"):
        parse_experiment(extra)
    both = {"allocate": {"levels": ["w2a2", "w8a8"], "low": "w2a2"}}
    with pytest.raises(ConfigError, match="either levels or low/high/probe"):
        parse_experiment(_config(students=[{"name": "p", "method": "ptq", "bits": both}]))
    for levels in (["w4a4"], ["w4a4", {"bits": "w4a4"}]):
        one = {"allocate": {"levels": levels}}
        with pytest.raises(ConfigError, match="at least two different specs"):
            parse_experiment(_config(students=[{"name": "p", "method": "ptq", "bits": one}]))
    floating = {"allocate": {"levels": ["w4a4", "float"]}}
    with pytest.raises(ConfigError, match="keeps layers float"):
        parse_experiment(_config(students=[{"name": "p", "method": "ptq", "bits": floating}]))


def test_allocation_levels_are_labelled_by_their_widths():
    same_widths = MixedPrecisionStage(levels=["w4a4", LEARNED_W4A4, "w8a8"])
    assert list(same_widths.labelled_levels) == ["w4a4-1", "w4a4-2", "w8a8"]
    assert same_widths.labelled_levels["w4a4-2"] == parse_layer_spec(LEARNED_W4A4)
    assert same_widths.labelled_probes == same_widths.labelled_levels
    low_high = MixedPrecisionStage(low="w2a2", probe={"bits": "w3a3"})
    assert list(low_high.labelled_levels) == ["w2a2", "w8a8"]
    assert low_high.labelled_probes == {"w3a3": parse_layer_spec("w3a3")}


def test_half_students_are_validated():
    trained = _config(students=[{"name": "h", "method": "half", "bits": "w8a8"}])
    with pytest.raises(ConfigError, match="method half converts the trained float model"):
        parse_experiment(trained)
    misplaced = _config(students=[{"name": "q", "method": "ptq", "bits": "w8a8", "half": {}}])
    with pytest.raises(ConfigError, match="'half' belongs to method half"):
        parse_experiment(misplaced)
    bad_dtype = _config(students=[{"name": "h", "method": "half", "half": {"dtype": "fp8"}}])
    with pytest.raises(ConfigError, match=r"students\.0\.half\.dtype"):
        parse_experiment(bad_dtype)


def test_equalized_students_record_their_pairs_and_get_their_own_run_ids(tmp_path):
    relu_teacher = {
        "model": {"name": "espcn", "options": {"features": [8, 4], "act": "relu"}},
        "train": TINY_TRAIN,
    }
    plain = {"name": "ptq", "method": "ptq", "bits": "w4a4", "calibration_batches": 2}
    config = _config(
        teacher=relu_teacher,
        students=[
            plain,
            {**plain, "name": "ptq-eq", "equalize": {"strength": 1.0}},
            {**plain, "name": "ptq-eq-body", "equalize": {"consumers": ["body"]}},
        ],
        evaluation={},
    )
    outcome = run_experiment(parse_experiment(config), tmp_path)
    by_name = {r.name: r for r in outcome.records}

    def equalized(name):
        return [s.details["pairs"] for s in by_name[name].stages if s.stage == "equalize"]

    assert equalized("ptq") == [] and "equalize" not in by_name["ptq"].config
    (pairs,) = equalized("ptq-eq")
    assert [(p["producer"], p["consumer"]) for p in pairs] == [
        ("feature_extraction.0", "body.0"),
        ("body.0", "upsampling.0"),
    ]
    assert all(p["channels"] in (8, 4) and p["spread"] >= 1 for p in pairs)
    assert by_name["ptq-eq"].config["equalize"]["strength"] == 1.0
    assert [p["consumer"] for p in equalized("ptq-eq-body")[0]] == ["body.0"]
    # the checkpoint holds the rescaled weights: reloading reproduces the recorded quality
    model, _ = load_model(tmp_path / by_name["ptq-eq"].checkpoint)
    task = make_task(build_dataset("photos", **config["data"]["options"]), torch.device("cpu"))
    assert task.evaluate(model)["test_psnr_y"] == pytest.approx(
        by_name["ptq-eq"].metrics["test_psnr_y"], abs=1e-4
    )
    again = run_experiment(parse_experiment(config), tmp_path)
    assert again.executed == 0 and again.skipped == 4
    by_name["ptq-eq"] = replace(by_name["ptq-eq"], compare_to="ptq")  # same bits and seed
    by_name["ptq-eq-body"] = replace(by_name["ptq-eq-body"], compare_to="teacher")  # float
    report = write_report(tmp_path, list(by_name.values())).read_text()
    section = report.split("## Paired comparisons")[1]
    assert "| ptq-eq | ptq | w4a4 |" in section
    assert "No pairs for ptq-eq-body vs teacher: the `compare_to` student" in section


def test_equalize_belongs_to_quantizing_students(tmp_path):
    for method, extra in (("float", {}), ("half", {})):
        student = {"name": "s", "method": method, "equalize": True, **extra}
        with pytest.raises(ConfigError, match=f"method {method} has none"):
            parse_experiment(_config(students=[student]))
    bad = {"name": "s", "method": "ptq", "bits": "w8a8", "equalize": {"strength": 2}}
    with pytest.raises(ConfigError, match=r"students\.0\.equalize\.strength"):
        parse_experiment(_config(students=[bad]))
    unknown = {"name": "s", "method": "ptq", "bits": "w8a8", "equalize": {"consumers": ["x"]}}
    config = _config(
        teacher={"model": {"name": "espcn", "options": {"act": "relu"}}, "train": TINY_TRAIN},
        students=[unknown],
    )
    with pytest.raises(ConfigError, match="pattern 'x' matches no equalizable layer; "):
        run_experiment(parse_experiment(config), tmp_path)
