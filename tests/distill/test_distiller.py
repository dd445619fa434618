import copy

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from qdistill.data import Augmentation, Batches
from qdistill.distill import (
    DistillConfig,
    Distiller,
    FeatureCapture,
    QKDPhases,
    TeacherOutputCache,
    cache_disabled_reason,
    distill,
    qkd,
)
from qdistill.errors import ConfigError, ShapeMismatchError
from qdistill.models import build_model
from qdistill.quant import calibrate, quantize
from qdistill.train import TrainConfig


@pytest.fixture
def models():
    torch.manual_seed(0)
    teacher = build_model("small_cnn", (1, 8, 8), 10, widths=[8, 16, 16])
    student = build_model("small_cnn", (1, 8, 8), 10, widths=[4, 8, 8])
    return teacher, student


def _batches(digits):
    return Batches(
        digits.train, 64, shuffle=True, generator=torch.Generator().manual_seed(0), with_index=True
    )


def test_feature_capture_by_path(models):
    teacher, _ = models
    x = torch.randn(2, 1, 8, 8)
    with FeatureCapture(teacher, ["features.0", "features.3.2", "classifier"]) as capture:
        out = teacher(x)
        features = capture.take()
    assert features["features.0"].shape == (2, 8, 8, 8)
    assert features["features.3.2"].shape == (2, 16, 4, 4)
    assert torch.equal(features["classifier"], out)
    assert not teacher.features[0]._forward_hooks  # hooks removed on exit
    with pytest.raises(ConfigError, match=r"has no module 'features.9'.*its modules are"):
        FeatureCapture(teacher, ["features.9"], "teacher")


def test_offline_teacher_gets_no_gradient_and_student_does(models, digits):
    teacher, student = models
    distiller = Distiller(student, teacher, DistillConfig(alpha=0.5, temperature=4.0))
    batch = next(iter(_batches(digits)))
    with distiller.active():
        assert not teacher.training
        distiller.loss(student, batch).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.requires_grad for p in teacher.parameters())  # restored after training


def test_co_study_updates_both(models, digits):
    teacher, student = models
    distiller = Distiller(
        student, teacher, DistillConfig(alpha=0.5, temperature=4.0), mode="co_study"
    )
    with distiller.active():
        distiller.loss(student, next(iter(_batches(digits)))).backward()
    assert all(p.grad is not None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    before = copy.deepcopy(teacher.state_dict())
    distill(
        student,
        teacher,
        _batches(digits),
        TrainConfig(epochs=1),
        DistillConfig(),
        mode="co_study",
        quiet=True,
    )
    assert not torch.equal(before["classifier.weight"], teacher.state_dict()["classifier.weight"])


def test_cache_hits_equal_live_teacher_and_invalidate(models, digits, tmp_path):
    teacher, _student = models
    cache = TeacherOutputCache.build(teacher, digits.train, directory=tmp_path)
    batch = next(iter(_batches(digits)))
    with torch.no_grad():
        live = teacher.eval()(batch[0])
    assert torch.allclose(cache.lookup(batch[2]), live, atol=1e-6)
    assert cache.hits == 64
    again = TeacherOutputCache.build(teacher, digits.train, directory=tmp_path)  # from disk
    assert again.key == cache.key and torch.equal(again.outputs, cache.outputs)
    assert len(list(tmp_path.glob("teacher-outputs-*.safetensors"))) == 1
    changed = copy.deepcopy(teacher)
    with torch.no_grad():
        changed.classifier.bias.add_(1.0)
    assert not cache.matches(changed, digits.train)
    assert not cache.matches(teacher, digits.val)
    assert not cache.matches(teacher, digits.train, augmentation="shift=1,noise_std=0.0")
    TeacherOutputCache.build(changed, digits.train, directory=tmp_path)  # a miss: new file
    assert len(list(tmp_path.glob("teacher-outputs-*.safetensors"))) == 2


def test_cached_and_live_distillation_train_identically(models, digits):
    teacher, student = models
    results = []
    for cache in (None, TeacherOutputCache.build(teacher, digits.train)):
        s = copy.deepcopy(student)
        torch.manual_seed(0)
        distill(
            s,
            teacher,
            _batches(digits),
            TrainConfig(epochs=1),
            DistillConfig(),
            cache=cache,
            quiet=True,
        )
        results.append(s.state_dict()["classifier.weight"])
    assert torch.allclose(results[0], results[1], atol=1e-6)


def test_cache_is_refused_when_inputs_change_or_teacher_trains():
    assert "augmentation" in cache_disabled_reason(Augmentation(shift=1).describe(), False)
    assert "feature" in cache_disabled_reason("none", True)
    assert cache_disabled_reason("none", False) is None
    cache = TeacherOutputCache(torch.zeros(3, 10), "k")
    with pytest.raises(ConfigError, match="frozen"):
        Distiller(nn.Linear(2, 2), nn.Linear(2, 2), DistillConfig(), mode="co_study", cache=cache)


def test_feature_terms_train_their_own_parameters(models, digits):
    teacher, student = models
    config = DistillConfig(
        features=[
            {"type": "feature_mse", "pairs": [["features.3", "features.3"]]},
            {"type": "attention_transfer", "pairs": [["features.1", "features.0"]]},
            {
                "type": "afd",
                "student_layers": ["features.0", "features.3"],
                "teacher_layers": ["features.1", "features.3"],
            },
        ]
    )
    distiller = Distiller(student, teacher, config)
    distiller.prepare(next(iter(_batches(digits))))
    projection = distiller.terms[0].projections[0]
    assert isinstance(projection, nn.Conv2d) and projection.in_channels == 8
    with distiller.active():
        distiller.loss(student, next(iter(_batches(digits)))).backward()
    for term in (distiller.terms[0], distiller.terms[2]):
        assert all(p.grad is not None for p in term.parameters())
    result = distill(student, teacher, _batches(digits), TrainConfig(epochs=1), config, quiet=True)
    assert len(result.history) == 1


def test_mismatched_teacher_and_student_outputs(digits):
    teacher = build_model("mlp", (1, 8, 8), 5)
    student = build_model("mlp", (1, 8, 8), 10)
    with pytest.raises(ShapeMismatchError, match=r"\(64, 10\).*\(64, 5\)"):
        distill(
            student, teacher, _batches(digits), TrainConfig(epochs=1), DistillConfig(), quiet=True
        )


PHASES = {
    "SS": ["self_study"],
    "SS+TS": ["self_study", "tutoring"],
    "CS+TS": ["co_study", "tutoring"],
    "SS+CS+TS": ["self_study", "co_study", "tutoring"],
    "TS": ["tutoring"],
}


@pytest.mark.parametrize("combination", PHASES, ids=list(PHASES))
def test_qkd_phase_combinations_run(models, digits, combination):
    teacher, student = models
    original_teacher = copy.deepcopy(teacher.state_dict())
    prepared = quantize(student, "w4a4")
    calibrate(prepared, Batches(digits.train, 64), 1)
    phases = QKDPhases(**{name: TrainConfig(epochs=1) for name in PHASES[combination]})
    caches = []

    def cache_factory(tutor):
        caches.append(TeacherOutputCache.build(tutor, digits.train))
        return caches[-1]

    results = qkd(
        prepared,
        teacher,
        _batches(digits),
        phases,
        DistillConfig(),
        cache_factory=cache_factory,
        quiet=True,
    )
    assert list(results) == PHASES[combination]
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in original_teacher.items())
    if "tutoring" in results:
        assert len(caches) == 1 and caches[0].hits > 0
        # tutoring reads the co-studied teacher when co-study ran, else the original
        original_key = TeacherOutputCache.build(teacher, digits.train).key
        assert (caches[0].key != original_key) == ("co_study" in results)


def test_qkd_needs_a_phase():
    with pytest.raises(ValueError):
        QKDPhases()


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(b"not a safetensors file"),
        lambda path: save_file({"outputs": torch.zeros(5, 10)}, str(path)),
        lambda path: save_file({"other": torch.zeros(3)}, str(path)),
        lambda path: save_file({"outputs": torch.full((1169, 10), float("nan"))}, str(path)),
    ],
    ids=["garbage", "wrong-count", "wrong-key", "nan"],
)
def test_a_damaged_cache_file_is_rebuilt_with_a_warning(models, digits, tmp_path, capsys, damage):
    teacher, _student = models
    good = TeacherOutputCache.build(teacher, digits.train, directory=tmp_path)
    (path,) = tmp_path.glob("teacher-outputs-*.safetensors")
    damage(path)
    again = TeacherOutputCache.build(teacher, digits.train, directory=tmp_path)
    assert torch.equal(again.outputs, good.outputs)
    assert "computing it again" in capsys.readouterr().out
    assert len(load_file(str(path))["outputs"]) == len(digits.train)  # repaired on disk
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left
