"""Models from outside the zoo through YAML: any torchvision classifier, a user's own
module (trusted explicitly) and starting weights from a file."""

import sys

import pytest
import torch
import yaml
from pydantic import ValidationError
from safetensors.torch import save_file

from qdistill.cli import main
from qdistill.errors import CheckpointError, ConfigError
from qdistill.experiment import parse_experiment, run_experiment
from qdistill.models import ModelConfig, load_model
from qdistill.models.user_module import TRUST_VARIABLE

USER_MODULE = """
from torch import nn


def build(input_shape, num_outputs, hidden=16):
    channels, height, width = input_shape
    return nn.Sequential(
        nn.Flatten(), nn.Linear(channels * height * width, hidden), nn.ReLU(),
        nn.Linear(hidden, num_outputs),
    )


def not_a_model(input_shape, num_outputs):
    return "a string"
"""


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    package = tmp_path / "src" / "acme_models"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tiny.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.delenv(TRUST_VARIABLE, raising=False)
    yield "acme_models.tiny"
    sys.modules.pop("acme_models.tiny", None)
    sys.modules.pop("acme_models", None)


def _sweep(tiny_config, model):
    tiny_config["teacher"]["model"] = model
    tiny_config["students"] = [
        {"name": "ptq", "method": "ptq", "bits": "w8a8", "calibration_batches": 2},
        {"name": "qat", "method": "qat", "bits": "w4a4", "train": {"epochs": 1}},
    ]
    tiny_config["export"] = {"runs": ["qat"], "formats": ["onnx-qdq", "qonnx"]}
    return tiny_config


def test_a_module_named_in_a_config_runs_only_once_trusted(
    tmp_path, tiny_config, user_package, monkeypatch
):
    config = _sweep(tiny_config, {"module": f"{user_package}:build", "options": {"hidden": 24}})
    with pytest.raises(ConfigError, match="--trust-module acme_models"):
        parse_experiment(config)
    assert user_package not in sys.modules  # refused before importing anything
    monkeypatch.setenv(TRUST_VARIABLE, "acme_models")
    outcome = run_experiment(parse_experiment(config), tmp_path)
    by_name = {r.name: r for r in outcome.records}
    assert by_name["teacher"].model == f"module:{user_package}:build"
    assert by_name["teacher"].metrics["test_acc"] > 80
    assert by_name["qat"].metrics["test_acc_integer"] > 60
    assert all(e.passed for e in outcome.exports)
    model, _ = load_model(tmp_path / by_name["qat"].checkpoint)
    assert model[1].in_features == 64 and model[1].out_features == 24


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ("acme_models.tiny", "must name a module and a callable"),
        ("acme_models.nope:build", "does not import"),
        ("acme_models.tiny:missing", "has no callable 'missing'"),
    ],
)
def test_a_bad_module_name_is_one_clear_error(user_package, monkeypatch, member, message):
    monkeypatch.setenv(TRUST_VARIABLE, "acme_models")
    with pytest.raises(ValidationError, match=message):
        ModelConfig.model_validate({"module": member})


def test_a_user_callable_must_return_a_module(user_package, monkeypatch):
    monkeypatch.setenv(TRUST_VARIABLE, "acme_models")
    config = ModelConfig.model_validate({"module": f"{user_package}:not_a_model"})
    with pytest.raises(ConfigError, match=r"returned str, not a torch nn\.Module"):
        config.build((1, 8, 8), 10)
    with pytest.raises(ConfigError, match="must accept input_shape="):
        ModelConfig(name=f"module:{user_package}:build", options={"depth": 3}).build((1, 8, 8), 10)


def test_the_cli_trusts_a_module_for_the_run(tmp_path, tiny_config, user_package, capsys):
    config = _sweep(tiny_config, {"module": f"{user_package}:build"})
    config["export"] = None
    path = tmp_path / "user.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    for trust, expected in (([], 2), (["--trust-module", "acme_models"], 0)):
        sys.argv = ["qdistill", *trust, "run", str(path), "--out", str(out)]
        with pytest.raises(SystemExit) as done:
            main()
        assert done.value.code in ((0, None) if expected == 0 else (expected,))
    assert "--trust-module acme_models" in capsys.readouterr().err


def test_a_teacher_can_start_from_trained_weights_in_a_file(tmp_path, tiny_config):
    first = run_experiment(parse_experiment(tiny_config), tmp_path / "first")
    teacher, _ = load_model(tmp_path / "first" / first.records[0].checkpoint)
    weights = tmp_path / "teacher.safetensors"
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, weights)
    tiny_config["teacher"]["model"]["weights"] = str(weights)
    tiny_config["teacher"]["train"]["epochs"] = 0  # trained already
    tiny_config["students"] = [tiny_config["students"][0]]
    second = run_experiment(parse_experiment(tiny_config), tmp_path / "second")
    assert second.records[0].metrics["test_acc"] == first.records[0].metrics["test_acc"]
    assert second.records[0].run_id != first.records[0].run_id
    # the file's hash is part of the config: new contents are refused, not silently used
    config = ModelConfig.model_validate(tiny_config["teacher"]["model"])
    save_file({k: torch.zeros_like(v) for k, v in teacher.state_dict().items()}, weights)
    with pytest.raises(CheckpointError, match="changed after the config was read"):
        config.build((1, 8, 8), 10)
    with pytest.raises(ValidationError, match=r"none\.safetensors does not exist"):
        ModelConfig.model_validate({"name": "mlp", "weights": str(tmp_path / "none.safetensors")})


def test_weights_that_do_not_fit_are_refused_before_the_first_run(tmp_path, tiny_config):
    weights = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, weights)
    tiny_config["teacher"]["model"]["weights"] = str(weights)
    with pytest.raises(CheckpointError, match="does not fit the model"):
        run_experiment(parse_experiment(tiny_config), tmp_path / "out")
    assert not (tmp_path / "out" / "results.jsonl").exists()


@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        pytest.param("mobilenet_v2", marks=pytest.mark.slow),
        pytest.param("efficientnet_b0", marks=pytest.mark.slow),
    ],
)
def test_torchvision_models_quantize_train_and_export_through_yaml(
    tmp_path, tiny_config, fake_cifar, name
):
    fake_cifar(tmp_path / "cifar")
    config = _sweep(tiny_config, f"torchvision:{name}")
    config["data"] = {"name": "cifar10", "options": {"root": str(tmp_path / "cifar")}}
    config["teacher"]["train"] = {"epochs": 1, "batch_size": 16}
    config["students"][1]["train"] = {"epochs": 1, "batch_size": 16}
    config["export"]["formats"] = ["onnx-qdq"]
    outcome = run_experiment(parse_experiment(config), tmp_path / "out")
    assert [r.name for r in outcome.records] == ["teacher", "ptq", "qat"]
    (export,) = outcome.exports
    assert export.passed, export  # written, and verified by running it in onnxruntime
