"""Bad input across the CLI, as a hostile or unlucky user gives it.

Every case must end with exit code 2, exactly one line on stderr that says what is
wrong, no traceback, and the earlier results of a finished sweep byte-for-byte intact.
"""

import gzip
import hashlib
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

from conftest import TINY, write_fake_mnist, write_idx  # tests/ is on sys.path
from qdistill.cli import main
from qdistill.experiment import parse_experiment, run_experiment
from qdistill.models import load_model
from qdistill.train.checkpoint import load_checkpoint, save_checkpoint

SWEEP = {
    **TINY,
    "name": "earlier",
    "teacher": {"model": {"name": "mlp", "options": {"hidden": [32]}}, "train": {"epochs": 2}},
    "students": [{"name": "ptq", "method": "ptq", "bits": "w8a8", "calibration_batches": 2}],
}


SEARCH_BLOCK = {
    "space": {"name": "mlp", "layers": {"hidden": {"depth": [1], "widths": [8, 16]}}},
    "recipe": [{"distill": {"train": {"epochs": 1}}}],
    "baseline": {"hidden": [16]},
    "objectives": ["error", "params"],
    "population": 2,
    "generations": 1,
}


class World:
    """Files the cases point at: a finished sweep, checkpoints, and a scratch folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sweep = root / "sweep"
        self.scratch = root / "scratch"
        self.scratch.mkdir()
        run_experiment(parse_experiment(SWEEP), self.sweep)
        self.float = self._run_cli_ok(
            "train", "--model", "dnn_30", "--epochs", "1", "--out", str(root / "f.safetensors")
        )
        self.quantized = self._run_cli_ok(
            "quantize", str(self.float), "--bits", "w8a8", "--out", str(root / "q.safetensors")
        )
        self.a_file = root / "a-file.txt"
        self.a_file.write_text("not a folder")

    @staticmethod
    def _run_cli_ok(*args: str) -> Path:
        sys.argv = ["qdistill", *args]
        try:
            main()
        except SystemExit as done:
            assert done.code in (0, None), args
        return Path(args[args.index("--out") + 1])

    def yaml(self, name: str, config: dict | str | bytes) -> str:
        path = self.scratch / name
        if isinstance(config, bytes):
            path.write_bytes(config)
        else:
            path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
        return str(path)

    def sweep_with(self, file: str, **changes) -> str:
        """The finished sweep's config with top-level ``changes``."""
        return self.yaml(file, {**json.loads(json.dumps(SWEEP)), **changes})

    def student(self, file: str, **fields) -> str:
        student = {"name": "s", "method": "ptq", "bits": "w8a8", **fields}
        student = {key: value for key, value in student.items() if value is not None}
        return self.sweep_with(file, students=[*SWEEP["students"], student])

    def search(self, file: str, **changes) -> tuple[str, ...]:
        """``qdistill search`` of the finished sweep's config with a search block changed."""
        block = {**json.loads(json.dumps(SEARCH_BLOCK)), **changes}
        config = self.sweep_with(file, search=block)
        return ("search", config, "--out", str(self.scratch / "search"))

    def checkpoint_with(self, name: str, **metadata) -> str:
        """The float checkpoint re-saved with changed metadata (None removes a key)."""
        state, meta = load_checkpoint(self.float)
        meta = {k: v for k, v in {**meta, **metadata}.items() if v is not None}
        return str(save_checkpoint(self.scratch / name, state, meta))

    def snapshot(self) -> dict[str, str]:
        return {
            str(path.relative_to(self.sweep)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(self.sweep.rglob("*"))
            if path.is_file()
        }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return World(tmp_path_factory.mktemp("world"))


def _mnist(world: World, name: str, damage) -> str:
    root = world.scratch / name
    root.mkdir()
    write_fake_mnist(root, compress=True)
    damage(root)
    return str(root)


def _truncate_gzip(root: Path) -> None:
    path = root / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])


def _labels_out_of_range(root: Path) -> None:
    write_idx(root / "train-labels-idx1-ubyte.gz", np.full(24, 200, np.uint8), compress=True)


def _huge_header(root: Path) -> None:
    with gzip.open(root / "train-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(bytes([0, 0, 0x08, 3]) + (60000).to_bytes(4, "big") * 3)


def _train_sr(world: World, name: str, test_image: np.ndarray | bytes) -> tuple[str, ...]:
    """Train ESPCN on a folder of good images, tested on a folder holding ``test_image``."""
    out = str(world.scratch / "sr.safetensors")
    options = _sr_folders(world, name, test_image)
    return ("train", "--model", "espcn", "--data", "sr_folder", "--out", out, *options)


def _sr_folders(world: World, name: str, test_image: np.ndarray | bytes) -> list[str]:
    train, test = world.scratch / f"{name}-train", world.scratch / f"{name}-test"
    train.mkdir()
    test.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(train / f"{i}.png")
    if isinstance(test_image, bytes):
        (test / "bad.png").write_bytes(test_image)
    else:
        Image.fromarray(test_image).save(test / "t.png")
    opts = [f"train={train}", f"test={test}", "lr_patch=8"]
    return [arg for opt in opts for arg in ("--data-option", opt)]


def _billion_laughs() -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\nname: laughs\n"


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {PWNED}",))


PWNED = Path("/tmp/qdistill-bad-inputs-pwned")


def _malicious_pickle(world: World) -> str:
    path = world.scratch / "evil.pt"
    path.write_bytes(pickle.dumps({"weight": _Payload()}))
    return str(path)


def _no_metadata(world: World) -> str:
    path = world.scratch / "plain.safetensors"
    state, _ = load_checkpoint(world.float)
    save_file(state, str(path))
    return str(path)


def _nan_weights(world: World) -> str:
    """The float checkpoint with every weight NaN (a diverged model saved anyway)."""
    state, meta = load_checkpoint(world.float)
    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
             for k, v in state.items()}  # fmt: skip
    return str(save_checkpoint(world.scratch / "nan.safetensors", state, meta))


def _pickled_cifar(world: World) -> str:
    folder = world.scratch / "cifar-10-batches-py"
    folder.mkdir(exist_ok=True)
    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": _Payload()}))
    return str(folder)


def _locked_sweep(world: World) -> str:
    out = world.scratch / "locked"
    out.mkdir(exist_ok=True)
    holder = {"pid": os.getpid(), "host": os.uname().nodename, "since": "now"}
    (out / ".qdistill.lock").write_text(json.dumps(holder))
    return str(out)


def _run(world, config, *extra):
    return ("run", config, "--out", str(world.sweep), *extra)


def _train(world, *extra, out=None):
    out = out or str(world.scratch / "t.safetensors")
    return ("train", "--model", "mlp", "--epochs", "1", "--out", out, *extra)


def _quantize(world, checkpoint, *extra, out=None):
    out = out or str(world.scratch / "q.safetensors")
    return ("quantize", str(checkpoint), "--bits", "w8a8", "--out", out, *extra)


def _prune(world, *extra, checkpoint=None, out=None):
    out = out or str(world.scratch / "p.safetensors")
    return ("prune", str(checkpoint or world.float), "--out", out, *extra)


# (case id, args from the world, a phrase the one error line must contain)
CASES = [
    # experiment files
    ("yaml-malformed", lambda w: _run(w, w.yaml("m.yaml", "name: [oops\n")), "malformed YAML"),
    ("yaml-missing", lambda w: _run(w, str(w.scratch / "nope.yaml")), "does not exist"),
    ("yaml-list", lambda w: _run(w, w.yaml("l.yaml", "- a\n- b\n")), "mapping"),
    ("yaml-empty", lambda w: _run(w, w.yaml("e.yaml", "")), "mapping"),
    ("yaml-binary", lambda w: _run(w, w.yaml("b.yaml", b"\xff\xfe\x00bin")), "not a text file"),
    ("yaml-laughs", lambda w: _run(w, w.yaml("x.yaml", _billion_laughs())), "expands to more"),
    ("yaml-recursive", lambda w: _run(w, w.yaml("r.yaml", "name: &a [*a]\n")), "refers to itself"),
    ("yaml-huge", lambda w: _run(w, w.yaml("h.yaml", "#" * (2 << 20))), "larger than"),
    ("key-typo", lambda w: _run(w, w.sweep_with("k.yaml", studnets=[])), "studnets"),
    (
        "name-traversal",
        lambda w: _run(w, w.sweep_with("n.yaml", name="../../x")),
        "file and folder",
    ),
    ("name-absolute", lambda w: _run(w, w.sweep_with("a.yaml", name="/tmp/x")), "file and folder"),
    ("student-slash", lambda w: _run(w, w.student("ss.yaml", name="a/b")), "file and folder"),
    ("student-hidden", lambda w: _run(w, w.student("sh.yaml", name=".x")), "file and folder"),
    ("seeds-empty", lambda w: _run(w, w.sweep_with("se.yaml", seeds=[])), "seeds"),
    ("seeds-text", lambda w: _run(w, w.sweep_with("st.yaml", seeds="abc")), "seeds"),
    (
        "teacher-unknown",
        lambda w: _run(w, w.sweep_with("tu.yaml", teacher={"model": "resnet9000"})),
        "resnet9000",
    ),
    (
        "teacher-0-epochs",
        lambda w: _run(
            w, w.sweep_with("t0.yaml", teacher={"model": "mlp", "train": {"epochs": 0}})
        ),
        "0 epochs",
    ),
    (
        "lr-negative",
        lambda w: _run(
            w,
            w.sweep_with("lr.yaml", teacher={"model": "mlp", "train": {"optimizer": {"lr": -1}}}),
        ),
        "lr",
    ),
    (
        "batch-zero",
        lambda w: _run(
            w, w.sweep_with("bz.yaml", teacher={"model": "mlp", "train": {"batch_size": 0}})
        ),
        "batch_size",
    ),
    (
        "optimizer-unknown",
        lambda w: _run(
            w,
            w.sweep_with(
                "ou.yaml", teacher={"model": "mlp", "train": {"optimizer": {"name": "adamw9"}}}
            ),
        ),
        "optimizer.name",
    ),
    (
        "dataset-unknown",
        lambda w: _run(w, w.sweep_with("du.yaml", data={"name": "cifar1000"})),
        "cifar1000",
    ),
    ("bits-zero", lambda w: _run(w, w.student("b0.yaml", bits="w0a8")), "bit width 0"),
    ("bits-33", lambda w: _run(w, w.student("b33.yaml", bits="w33a8")), "bit width 33"),
    ("bits-word", lambda w: _run(w, w.student("bw.yaml", bits="banana")), "banana"),
    (
        "plan-selector-unknown",
        lambda w: _run(w, w.student("ps.yaml", bits={"*": "w8a8", "@poolings": "a8"})),
        "@poolings",
    ),
    (
        "plan-pooling-absent",
        lambda w: _run(w, w.student("pa.yaml", bits={"*": "w8a8", "@pooling": "a8"})),
        "no average pooling for @pooling",
    ),
    (
        "method-unknown",
        lambda w: _run(w, w.student("mu.yaml", method="magic")),
        "students.1.method",
    ),
    (
        "student-option-unknown",
        lambda w: _run(
            w,
            w.student(
                "so.yaml",
                method="float",
                bits=None,
                model={"name": "mlp", "options": {"hiddn": [4]}},
            ),
        ),
        "hiddn",
    ),
    (
        "student-option-value",
        lambda w: _run(
            w,
            w.student(
                "sv.yaml",
                method="float",
                bits=None,
                model={"name": "mlp", "options": {"hidden": [-5]}},
            ),
        ),
        "cannot be built",
    ),
    (
        "alpha-range",
        lambda w: _run(w, w.student("al.yaml", method="qat", distill={"alpha": 2})),
        "alpha",
    ),
    (
        "export-names-nothing",
        lambda w: _run(w, w.sweep_with("ex.yaml", export={"runs": ["nobody"]})),
        "nobody",
    ),
    (
        "benchmark-names-nothing",
        lambda w: _run(w, w.sweep_with("bn.yaml", benchmark={"runs": ["nobody"]})),
        "nobody",
    ),
    ("device-cuda", lambda w: _run(w, w.sweep_with("cu.yaml", device="cuda")), "CUDA"),
    (
        "mnist-root-missing",
        lambda w: _run(
            w, w.sweep_with("mr.yaml", data={"name": "mnist", "options": {"root": "/nonexistent"}})
        ),
        "does not exist",
    ),
    (
        "val-fraction-zero",
        lambda w: _run(
            w, w.sweep_with("vz.yaml", data={"name": "digits", "options": {"val_fraction": 0}})
        ),
        "empty val split",
    ),
    (
        "set-malformed",
        lambda w: _run(w, w.sweep_with("s1.yaml"), "--set", "foo"),
        "key.subkey=value",
    ),
    (
        "set-bad-index",
        lambda w: _run(w, w.sweep_with("s2.yaml"), "--set", "students.9.bits=w4a4"),
        "not an index",
    ),
    (
        "qat-precision",
        lambda w: _run(w, w.student("qp.yaml", method="qat", train={"precision": "bf16"})),
        "runs in fp32",
    ),
    (
        "module-untrusted",
        lambda w: _run(w, w.sweep_with("mu.yaml", teacher={"model": {"module": "os:system"}})),
        "--trust-module os",
    ),
    (
        "module-missing",
        lambda w: (
            "--trust-module",
            "nowhere_pkg",
            *_run(w, w.sweep_with("mm.yaml", teacher={"model": {"module": "nowhere_pkg.m:b"}})),
        ),
        "does not import",
    ),
    ("profile-unknown", lambda w: _run(w, w.sweep_with("pu.yaml"), "--profile", "x"), "profile"),
    ("workers-zero", lambda w: _run(w, w.sweep_with("w0.yaml"), "--workers", "0"), "at least 1"),
    ("threads-zero", lambda w: _run(w, w.sweep_with("t0.yaml"), "--threads", "0"), "at least 1"),
    (
        "executor-unknown",
        lambda w: _run(w, w.sweep_with("eu.yaml"), "--executor", "slurm"),
        "use local or ray",
    ),
    (
        "address-without-ray",
        lambda w: _run(w, w.sweep_with("ar.yaml"), "--address", "auto"),
        "add --executor ray",
    ),
    (
        "out-is-file",
        lambda w: ("run", w.sweep_with("o1.yaml"), "--out", str(w.a_file)),
        "a file stands",
    ),
    (
        "out-under-file",
        lambda w: ("run", w.sweep_with("o2.yaml"), "--out", str(w.a_file / "sub")),
        "a file stands",
    ),
    (
        "out-locked",
        lambda w: ("run", w.sweep_with("lk.yaml"), "--out", _locked_sweep(w)),
        "another sweep",
    ),
    # train
    (
        "train-model-unknown",
        lambda w: ("train", "--model", "nope", "--out", str(w.scratch / "x")),
        "unknown model",
    ),
    ("train-dataset-unknown", lambda w: _train(w, "--data", "cifar1000"), "unknown dataset"),
    ("train-lr-negative", lambda w: _train(w, "--lr", "-1"), "optimizer.lr"),
    ("train-epochs-negative", lambda w: _train(w, "--epochs", "-1"), "epochs"),
    ("train-option-form", lambda w: _train(w, "--model-option", "hidden"), "key=value"),
    ("train-option-unknown", lambda w: _train(w, "--model-option", "hiddn=[4]"), "hiddn"),
    ("train-out-dir", lambda w: _train(w, out=str(w.scratch)), "is a folder"),
    (
        "train-out-under-file",
        lambda w: _train(w, out=str(w.a_file / "x.safetensors")),
        "a file stands",
    ),
    ("train-diverges", lambda w: _train(w, "--lr", "1000"), "diverged"),
    (
        "mnist-truncated-gzip",
        lambda w: _train(
            w, "--data", "mnist", "--data-option", f"root={_mnist(w, 'tg', _truncate_gzip)}"
        ),
        "truncated or corrupt",
    ),
    (
        "mnist-labels-range",
        lambda w: _train(
            w, "--data", "mnist", "--data-option", f"root={_mnist(w, 'lr', _labels_out_of_range)}"
        ),
        "labels range",
    ),
    (
        "mnist-huge-header",
        lambda w: _train(
            w, "--data", "mnist", "--data-option", f"root={_mnist(w, 'hh', _huge_header)}"
        ),
        "at most",
    ),
    (
        "sr-image-below-scale",
        lambda w: _train_sr(w, "tiny", np.zeros((1, 1, 3), np.uint8)),
        "smaller than the scale",
    ),
    (
        "sr-image-corrupt",
        lambda w: _train_sr(w, "corrupt", b"\x89PNG garbage"),
        "cannot decode",
    ),
    (
        "sr-folder-missing",
        lambda w: (
            "train",
            "--model",
            "espcn",
            "--data",
            "sr_folder",
            "--out",
            str(w.scratch / "s"),
        ),
        "needs option 'test'",
    ),
    (
        "sr-folder-train-without-train",
        lambda w: (
            *_train_sr(w, "evalonly", np.zeros((32, 32, 3), np.uint8))[:7],  # no options
            "--data-option",
            f"test={w.scratch / 'evalonly-test'}",
        ),
        "has no training images (it was read for evaluation); give the option 'train'",
    ),
    # quantize, evaluate, export, benchmark, hardware
    (
        "quantize-bits-zero",
        lambda w: ("quantize", str(w.float), "--bits", "w0a8", "--out", str(w.scratch / "q")),
        "bit width 0",
    ),
    ("quantize-method", lambda w: _quantize(w, w.float, "--method", "magic"), "method 'magic'"),
    ("quantize-twice", lambda w: _quantize(w, w.quantized), "already quantized"),
    ("quantize-nan-model", lambda w: _quantize(w, _nan_weights(w)), "NaN or infinite range"),
    ("quantize-missing", lambda w: _quantize(w, w.scratch / "none.safetensors"), "does not exist"),
    (
        "quantize-out-under-file",
        lambda w: _quantize(w, w.float, out=str(w.a_file / "q")),
        "a file stands",
    ),
    ("ckpt-pickle", lambda w: ("evaluate", _malicious_pickle(w)), "weights-only"),
    (
        "ckpt-truncated",
        lambda w: ("evaluate", w.yaml("c.safetensors", w.float.read_bytes()[:300])),
        "corrupt",
    ),
    ("ckpt-no-metadata", lambda w: ("evaluate", _no_metadata(w)), "no qdistill metadata"),
    (
        "ckpt-shape-missing",
        lambda w: ("evaluate", w.checkpoint_with("m1.safetensors", input_shape=None)),
        "input_shape",
    ),
    (
        "ckpt-outputs-text",
        lambda w: ("evaluate", w.checkpoint_with("m2.safetensors", num_outputs="ten")),
        "num_outputs",
    ),
    (
        "ckpt-options-text",
        lambda w: ("evaluate", w.checkpoint_with("m3.safetensors", model_options="x")),
        "model_options",
    ),
    (
        "ckpt-huge-model",
        lambda w: (
            "evaluate",
            w.checkpoint_with("m4.safetensors", model="mlp", model_options={"hidden": [2**28]}),
        ),
        "does not fit",
    ),
    (
        "ckpt-unknown-model",
        lambda w: ("evaluate", w.checkpoint_with("m5.safetensors", model="gpt9")),
        "gpt9",
    ),
    (
        "evaluate-wrong-data",
        lambda w: ("evaluate", str(w.float), "--data", "photos"),
        "holds a classification model (dnn_30) but dataset 'photos' is a super-resolution",
    ),
    (
        "export-format",
        lambda w: (
            "export",
            str(w.quantized),
            "--format",
            "tflite",
            "--out",
            str(w.scratch / "e.onnx"),
        ),
        "tflite",
    ),
    (
        "export-float-qdq",
        lambda w: (
            "export",
            str(w.float),
            "--format",
            "onnx-qdq",
            "--out",
            str(w.scratch / "e.onnx"),
        ),
        "needs a quantized model",
    ),
    (
        "export-samples",
        lambda w: (
            "export",
            str(w.quantized),
            "--format",
            "onnx",
            "--samples",
            "0",
            "--out",
            str(w.scratch / "e.onnx"),
        ),
        "at least 1",
    ),
    (
        "export-out-dir",
        lambda w: ("export", str(w.quantized), "--format", "onnx", "--out", str(w.scratch)),
        "is a folder",
    ),
    (
        "benchmark-sizes",
        lambda w: (
            "benchmark",
            str(w.float),
            "--batch-sizes",
            "a,b",
            "--out",
            str(w.scratch / "bm"),
        ),
        "comma-separated integers",
    ),
    (
        "benchmark-out-file",
        lambda w: ("benchmark", str(w.float), "--out", str(w.a_file)),
        "a file stands",
    ),
    ("cifar-root-missing", lambda w: _train(w, "--data", "cifar10"), "needs 'root'"),
    (
        "cifar-python-version",
        lambda w: _train(w, "--data", "cifar10", "--data-option", f"root={_pickled_cifar(w)}"),
        "never unpickles",
    ),
    ("prune-ratio", lambda w: _prune(w, "--ratio", "1.5"), "ratio"),
    ("prune-importance", lambda w: _prune(w, "--importance", "magic"), "importance"),
    (
        "prune-two-targets",
        lambda w: _prune(w, "--target-macs", "0.5", "--target-params", "0.5"),
        "not both",
    ),
    (
        "prune-unreachable",
        lambda w: _prune(w, "--ratio", "0.1", "--target-macs", "0.01"),
        "cannot bring",
    ),
    ("prune-quantized", lambda w: _prune(w, checkpoint=w.quantized), "prune the float model"),
    ("prune-out-under-file", lambda w: _prune(w, out=str(w.a_file / "p")), "a file stands"),
    ("search-no-block", lambda w: ("search", w.sweep_with("sn.yaml")), "has no 'search' block"),
    (
        "search-objective-unknown",
        lambda w: w.search("so.yaml", objectives=["error", "latency"]),
        "unknown objective 'latency' (did you mean 'latency_ms'?)",
    ),
    (
        "search-gene-empty",
        lambda w: w.search("sg.yaml", genes={"distill.alpha": []}),
        "genes.distill.alpha lists no values",
    ),
    (
        "search-one-candidate",
        lambda w: w.search(
            "s1.yaml", space={"name": "mlp", "layers": {"hidden": {"depth": [1], "widths": [16]}}}
        ),
        "single candidate",
    ),
    (
        "search-contradiction",
        lambda w: w.search("sc.yaml", constraints=["params <= 100", "params >= 200"]),
        "contradict",
    ),
    (
        "search-constraint-text",
        lambda w: w.search("st.yaml", constraints=["params < 100"]),
        "must read '<objective> <= <number>'",
    ),
    (
        "search-baseline-outside",
        lambda w: w.search("sb.yaml", baseline={"hidden": [12]}),
        "[12] are not among [8, 16]",
    ),
    (
        "search-baseline-typo",
        lambda w: w.search("sy.yaml", baseline={"hiden": [16]}),
        "neither searched layers nor genes",
    ),
    ("hardware-missing", lambda w: ("hardware", str(w.scratch / "none.onnx")), "does not exist"),
    ("hardware-board", lambda w: ("hardware", str(w.quantized), "--board", "pynq-z9"), "pynq-z9"),
]


@pytest.mark.parametrize("build", [case[1] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_one_line_exit_2_and_keeps_earlier_results(
    world, build, monkeypatch, capsys, request
):
    phrase = dict((case[0], case[2]) for case in CASES)[request.node.callspec.id]
    before = world.snapshot()
    args = build(world)
    monkeypatch.setattr(sys, "argv", ["qdistill", *args])
    with pytest.raises(SystemExit) as done:
        main()
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    if "out-" in request.node.callspec.id:  # a bad output location is found before work
        assert "epoch" not in out, out
    assert done.value.code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert phrase in lines[0], lines[0]
    assert world.snapshot() == before
    assert not PWNED.exists()


def test_the_table_is_large_and_the_sweep_is_real(world):
    assert len(CASES) >= 60
    assert len({case[0] for case in CASES}) == len(CASES)
    assert {"results.jsonl", "experiment.json"} <= set(world.snapshot())
    model, _ = load_model(next((world.sweep / "checkpoints").glob("ptq-*.safetensors")))
    assert model is not None
