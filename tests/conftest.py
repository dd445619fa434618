import copy

import pytest
import torch
import yaml

from qdistill.data import build_dataset


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def digits():
    return build_dataset("digits")


TINY = {
    "name": "tiny",
    "seeds": [0],
    "data": {"name": "digits"},
    "teacher": {
        "model": {"name": "mlp", "options": {"hidden": [32]}},
        "train": {"epochs": 6, "optimizer": {"lr": 0.01}},
    },
    "students": [
        {"name": "ptq", "method": "ptq", "bits": ["w8a8", "w2a2"], "calibration_batches": 2},
        {"name": "qat", "method": "qat", "bits": "w2a2", "train": {"epochs": 2}},
        {
            "name": "small",
            "method": "float",
            "model": "dnn_30",
            "pretrain": {"epochs": 2, "optimizer": {"lr": 0.003}},
        },
    ],
}


@pytest.fixture
def tiny_config():
    return copy.deepcopy(TINY)


@pytest.fixture
def tiny_yaml(tmp_path, tiny_config):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    return path
