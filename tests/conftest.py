import copy
import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from qdistill.data import build_dataset

# Shared test helpers (finn_designs) import by name; bench/fpga_agreement.py uses them too.
sys.path.insert(0, str(Path(__file__).parent))


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


# Tiny MNIST-format files (the real IDX layout, random pixels), written by the tests.
def write_idx(path, array, compress=False):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim])
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as handle:
        handle.write(data)


def write_fake_mnist(root, compress=False, n_train=24, n_test=10):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)


@pytest.fixture
def fake_mnist():
    """write_fake_mnist(root, compress=False) — with .write_idx for single files."""
    write_fake_mnist.write_idx = write_idx
    return write_fake_mnist


def make_record(**fields):
    """A RunRecord with plausible defaults for every field the test does not care about."""
    from qdistill.experiment.record import RunRecord

    defaults = {
        "experiment": "x",
        "run_id": f"id-{fields.get('name', 'r')}-{fields.get('seed', 0)}",
        "name": "r",
        "group": fields.get("name", "r"),
        "seed": 0,
        "spec_version": 1,
        "task": "classification",
        "model": "m",
        "method": "qat",
        "recipe": "quantize(qat)",
        "bits": "w4a4",
        "w_bits": None,
        "a_bits": None,
        "alpha": None,
        "temperature": None,
        "phases": None,
        "plan": None,
        "half_plan": None,
        "config": {},
        "compare_to": None,
        "metrics": {},
        "stages": (),
        "size_bytes": 1,
        "float32_bytes": 4,
        "params": 1,
        "wall_s": 1.0,
        "allocation": None,
        "checkpoint": "c.safetensors",
        "data": {},
        "experiment_config": {},
        "versions": {},
        "device": "cpu",
        "finished_at": "",
    }
    return RunRecord(**{**defaults, **fields})


@pytest.fixture
def record_of():
    """make_record: a RunRecord from the fields a test names."""
    return make_record


# Tiny CIFAR binary files (the real record layout, random pixels), written by the tests.
def write_fake_cifar(root, hundred=False, per_file=12):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    names = (
        ["train.bin", "test.bin"]
        if hundred
        else [
            *(f"data_batch_{i}.bin" for i in range(1, 6)),
            "test_batch.bin",
        ]
    )
    for name in names:
        labels = (
            np.stack([np.arange(per_file) % 20, np.arange(per_file) % 100], 1)
            if hundred
            else (np.arange(per_file)[:, None] % 10)
        )
        pixels = rng.integers(0, 256, (per_file, 3 * 32 * 32))
        (root / name).write_bytes(np.concatenate([labels, pixels], 1).astype(np.uint8).tobytes())
    return root


@pytest.fixture
def fake_cifar():
    """write_fake_cifar(root, hundred=False, per_file=12)."""
    return write_fake_cifar
