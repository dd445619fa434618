"""The CLI end to end, in process, and the error contract: one line, exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qdistill.cli import main
from qdistill.models import load_model


def run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["qdistill", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def assert_user_error(code, err, pattern):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert pattern in lines[0], lines[0]


def test_train_quantize_evaluate(monkeypatch, capsys, tmp_path):
    ckpt, qckpt = tmp_path / "float.safetensors", tmp_path / "q.safetensors"
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        "train",
        "--model",
        "mlp",
        "--model-option",
        "hidden=[32]",
        "--epochs",
        "3",
        "--out",
        str(ckpt),
    )
    assert code == 0 and "test acc" in out and ckpt.is_file()
    quantize = ["quantize", str(ckpt), "--bits", "w4a4"]
    code, out, _ = run_cli(
        monkeypatch, capsys, *quantize, "--method", "qat", "--epochs", "1", "-o", str(qckpt)
    )
    assert code == 0 and "-> qat w4a4" in out and qckpt.is_file()
    eq_ckpt = tmp_path / "eq.safetensors"
    code, out, _ = run_cli(monkeypatch, capsys, *quantize, "--equalize", "-o", str(eq_ckpt))
    assert code == 0 and "equalized features.1 -> classifier: 32 channels" in out
    assert load_model(eq_ckpt)[1]["equalized"][0]["consumer"] == "classifier"
    code, out, _ = run_cli(monkeypatch, capsys, "evaluate", str(qckpt))
    assert code == 0 and "test_acc_integer" in out and "size_bytes" in out


def test_listing_commands(monkeypatch, capsys):
    from qdistill import __version__

    code, out, _ = run_cli(monkeypatch, capsys, "--version")
    assert code == 0 and out.strip() == f"qdistill {__version__}"
    code, out, _ = run_cli(monkeypatch, capsys, "models")
    assert code == 0 and "kl_mlp_teacher" in out and "small_cnn" in out
    code, out, _ = run_cli(monkeypatch, capsys, "datasets")
    assert code == 0 and "fashion_mnist" in out
    code, out, _ = run_cli(monkeypatch, capsys, "spaces")
    assert code == 0 and "flex_cnn" in out and "conv: depth [1, 2, 3]" in out
    assert "cifar_resnet" in out and "depth: [8, 14, 20]" in out


@pytest.fixture
def float_ckpt(tmp_path, monkeypatch, capsys):
    path = tmp_path / "f.safetensors"
    run_cli(monkeypatch, capsys, "train", "--model", "dnn_30", "--epochs", "1", "--out", str(path))
    return path


def test_bad_inputs_exit_2_with_one_line(monkeypatch, capsys, tmp_path, float_ckpt):
    malformed = tmp_path / "bad.yaml"
    malformed.write_text("name: [oops\n")
    cases = [
        (("run", str(malformed)), "malformed YAML"),
        (("run", str(tmp_path / "missing.yaml")), "does not exist"),
        (("train", "--model", "nope", "--out", str(tmp_path / "x.safetensors")), "unknown model"),
        (
            ("train", "--model", "mlp", "--data", "cifar1000", "--out", str(tmp_path / "x")),
            "unknown dataset",
        ),
        (
            (
                "train",
                "--model",
                "mlp",
                "--data",
                "mnist",
                "--data-option",
                f"root={tmp_path / 'no-mnist'}",
                "--out",
                str(tmp_path / "x"),
            ),
            "does not exist",
        ),
        (("train", "--model", "mlp", "--lr", "-1", "--out", str(tmp_path / "x")), "optimizer.lr"),
        (
            ("quantize", str(float_ckpt), "--bits", "w0a8", "--out", str(tmp_path / "q")),
            "bit width 0",
        ),
        (
            ("quantize", str(float_ckpt), "--bits", "w33a8", "--out", str(tmp_path / "q")),
            "bit width 33",
        ),
        (
            (
                "quantize",
                str(float_ckpt),
                "--bits",
                "w4a4",
                "--method",
                "magic",
                "--out",
                str(tmp_path / "q"),
            ),
            "method 'magic'",
        ),
    ]
    for args, pattern in cases:
        code, _, err = run_cli(monkeypatch, capsys, *args)
        assert_user_error(code, err, pattern)


def test_a_name_cannot_lead_outside_the_output_folder(monkeypatch, capsys, tmp_path):
    shipped = (Path(__file__).parents[1] / "configs" / "demo-digits.yaml").read_text()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for name in ("../../escape", str(tmp_path / "absolute")):
        config = work / "hostile.yaml"
        config.write_text(shipped.replace("name: demo-digits", f"name: {name}", 1))
        code, _, err = run_cli(monkeypatch, capsys, "run", str(config))
        assert_user_error(code, err, "becomes part of file and folder names")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    assert sorted(p.name for p in work.iterdir()) == ["hostile.yaml"]


def test_corrupt_checkpoint(monkeypatch, capsys, tmp_path, float_ckpt):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(float_ckpt.read_bytes()[:100])
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", str(corrupt))
    assert_user_error(code, err, "corrupt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a pickle")
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", str(garbage))
    assert_user_error(code, err, "weights-only")


def test_nan_loss_exits_2_and_keeps_earlier_results(monkeypatch, capsys, tmp_path, tiny_yaml):
    out = tmp_path / "out"
    config = yaml.safe_load(tiny_yaml.read_text())
    config["students"] = [{"name": "ptq", "method": "ptq", "bits": "w8a8"}]
    tiny_yaml.write_text(yaml.safe_dump(config))
    code, stdout, _ = run_cli(monkeypatch, capsys, "run", str(tiny_yaml), "--out", str(out))
    assert code == 0 and "Report:" in stdout
    before = (out / "results.jsonl").read_text()
    config["students"].append(
        {
            "name": "boom",
            "method": "qat",
            "bits": "w4a4",
            "train": {"epochs": 1, "optimizer": {"name": "sgd", "lr": 1e30}},
        }
    )
    tiny_yaml.write_text(yaml.safe_dump(config))
    code, _, err = run_cli(monkeypatch, capsys, "run", str(tiny_yaml), "--out", str(out))
    assert_user_error(code, err, "loss became")
    assert (out / "results.jsonl").read_text() == before
    assert (out / "report.md").is_file()


@pytest.mark.parametrize("tiny", [True])
def test_console_script_prints_no_traceback(tmp_path, tiny):
    bad = tmp_path / "bad.yaml"
    bad.write_text("students: {")
    done = subprocess.run(
        [sys.executable, "-m", "qdistill.cli", "run", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "malformed YAML" in done.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "qdistill.cli", "--debug", "run", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_run_with_overrides(monkeypatch, capsys, tmp_path, tiny_yaml):
    out = tmp_path / "out"
    code, _, _ = run_cli(
        monkeypatch,
        capsys,
        "run",
        str(tiny_yaml),
        "--out",
        str(out),
        "--set",
        "students=[{name: p, method: ptq, bits: w4a4}]",
        "--set",
        "seeds=[5]",
    )
    assert code == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["name"], r["seed"], r["bits"]) for r in records] == [
        ("teacher", 5, "float"),
        ("p", 5, "w4a4"),
    ]
    code, _, err = run_cli(monkeypatch, capsys, "run", str(tiny_yaml), "--set", "seeds")
    assert_user_error(code, err, "key.subkey=value")


def test_benchmark_command(monkeypatch, capsys, tmp_path):
    ckpt = tmp_path / "f.safetensors"
    run_cli(monkeypatch, capsys, "train", "--model", "dnn_30", "--epochs", "1", "--out", str(ckpt))
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        "benchmark",
        str(ckpt),
        "--out",
        str(tmp_path / "b"),
        "--batch-sizes",
        "1,8",
        "--repeats",
        "3",
        "--backends",
        "torch,ort_float",
    )
    assert code == 0 and "ort_float" in out and (tmp_path / "b" / "benchmark.md").is_file()
    code, _, err = run_cli(monkeypatch, capsys, "benchmark", str(ckpt), "--batch-sizes", "1,x")
    assert_user_error(code, err, "comma-separated integers")


def test_demo_command_runs_the_shipped_demo(monkeypatch, capsys, tmp_path, tiny_yaml):
    import qdistill.experiment.shipped as shipped

    asked = []
    monkeypatch.setattr(shipped, "shipped_config", lambda name: asked.append(name) or tiny_yaml)
    code, out, _ = run_cli(monkeypatch, capsys, "demo", "--out", str(tmp_path / "demo"))
    assert code == 0 and asked == ["demo-digits"]
    assert "Report:" in out and (tmp_path / "demo" / "report.md").is_file()


def test_sensitivity_command_probes_levels_and_allocates(monkeypatch, capsys, tmp_path):
    ckpt = tmp_path / "sr.safetensors"
    data = ["eval_crop=32", "lr_patch=8", "patches_per_epoch=16", "channels=y"]
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        "train",
        "--model",
        "espcn",
        "--model-option",
        "features=[8,4]",
        "--data",
        "photos",
        *[arg for option in data for arg in ("--data-option", option)],
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--out",
        str(ckpt),
    )
    assert code == 0 and "test psnr y" in out
    args = ["sensitivity", str(ckpt), "--calibration-batches", "1"]
    code, out, _ = run_cli(monkeypatch, capsys, *args, "--levels", "w2a2,w4a4,w8a8")
    assert code == 0 and "Drop at w2a2" in out and "Drop at w8a8" in out
    assert "feature_extraction" in out and "Allocated plan" not in out
    code, out, _ = run_cli(
        monkeypatch, capsys, *args, "--levels", "w2a2,w4a4,w8a8", "--budget", "w4a4"
    )
    assert code == 0 and "Allocated plan" in out and "'*': 'w2a2 (learned ranges)'" in out
    import qdistill.experiment.stages.mixed_precision as steps

    seen = []
    allocate_bits = steps.allocate_bits
    monkeypatch.setattr(steps, "allocate_bits", lambda *a: seen.append(a[-1]) or allocate_bits(*a))
    flags = ("--levels", "w2a2,w8a8", "--budget", "2000", "--spend-leftover")
    code, out, _ = run_cli(monkeypatch, capsys, *args, *flags)
    assert code == 0 and seen == [True] and out.count("'w8a8'") == 3  # 2000 bytes fit 8 bits
    code, out, _ = run_cli(monkeypatch, capsys, *args, "--bits", "w3a3")
    assert code == 0 and "Drop at w3a3" in out
    code, _, err = run_cli(monkeypatch, capsys, *args, "--levels", "w4a4")
    assert_user_error(code, err, "levels needs at least two different specs")
    code, _, err = run_cli(monkeypatch, capsys, *args, "--levels", "w2a2,w8a8", "--low", "w2a2")
    assert_user_error(code, err, "either --levels or --low/--high")


def test_hardware_command(monkeypatch, capsys, tmp_path, float_ckpt):
    qckpt = tmp_path / "q.safetensors"
    run_cli(monkeypatch, capsys, "quantize", str(float_ckpt), "--bits", "w4a4", "-o", str(qckpt))
    code, out, _ = run_cli(
        monkeypatch, capsys, "hardware", str(qckpt), "--fps", "20000", "--processor", "cpu=5000"
    )
    assert code == 0 and "Dataflow units" in out and "Cheapest board that fits: pynq-z2" in out
    assert "price pynq-z2: GBP 103" in out
    code, out, _ = run_cli(
        monkeypatch, capsys, "hardware", str(qckpt), "--board", "pynq-z2", "--json"
    )
    report = json.loads(out)
    assert code == 0 and report["fps"] > 20000 and report["units"][1]["kind"] == "mvau"
    pynq = next(b for b in report["boards"] if b["board"] == "pynq-z2")
    assert pynq["fits"] and pynq["utilisation"]["lut"] <= 1.0
    # the same model's QONNX export estimates the same design
    qonnx, plain = tmp_path / "q.onnx", tmp_path / "float.onnx"
    for path, fmt in ((qonnx, "qonnx"), (plain, "onnx")):
        run_cli(monkeypatch, capsys, "export", str(qckpt), "--format", fmt, "--out", str(path))
    code, out, _ = run_cli(
        monkeypatch, capsys, "hardware", str(qonnx), "--board", "pynq-z2", "--json"
    )
    from_file = json.loads(out)
    assert code == 0 and from_file["fps"] == report["fps"]
    assert [u["cycles"] for u in from_file["units"]] == [u["cycles"] for u in report["units"]]
    assert from_file["total"] == report["total"]
    folding = tmp_path / "folding.yaml"
    folding.write_text("features.1: {PE: 4}\n")
    catalogue = tmp_path / "boards.yaml"
    catalogue.write_text("boards: [\n")
    catalogue.with_suffix(".onnx").write_bytes(b"\x00garbage")
    cases = [
        (["hardware", str(float_ckpt)], "holds a float model"),
        (["hardware", str(qckpt), "--board", "pynq"], "unknown board 'pynq'"),
        (["hardware", str(qckpt), "--fps", "1e12"], "is unreachable at 100 MHz"),
        (["hardware", str(qckpt), "--catalogue", str(catalogue)], "is unreadable"),
        (["hardware", str(qckpt), "--processor", "cpu=fast"], "--processor takes NAME=FPS"),
        (["hardware", str(qckpt), "--folding", str(folding)], "PE=4 must divide 30"),
        (["hardware", str(qckpt), "--clock-mhz", "0"], "clock must be positive"),
        (["hardware", str(tmp_path / "model.onnx")], "does not exist"),
        (["hardware", str(catalogue.with_suffix(".onnx"))], "is not a readable ONNX file"),
        (["hardware", str(plain)], "not a quantized QONNX model"),
        (["hardware", str(qckpt), "--input-shape", "1,8"], "does not fit"),
        # the standardised digits input quantizes with a non-zero zero point: FINN refuses it
        (
            ["export", str(qckpt), "--format", "finn", "--out", str(tmp_path / "f.onnx")],
            "FINN maps only zero-point-0 quantizers",
        ),
        (["hardware", str(qckpt), "--input-shape", "1,16,16"], "does not take inputs of shape"),
        (["hardware", str(qckpt), "--input-shape", "1,100000,100000"], "estimate at a smaller"),
    ]
    for args, pattern in cases:
        code, _, err = run_cli(monkeypatch, capsys, *args)
        assert_user_error(code, err, pattern)


def test_ctrl_c_says_finished_runs_are_kept(monkeypatch, capsys, tmp_path, tiny_yaml):
    import qdistill.experiment.executors as executors

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(executors, "execute_run", interrupted)
    out = tmp_path / "out"
    code, _, err = run_cli(monkeypatch, capsys, "run", str(tiny_yaml), "--out", str(out))
    assert code == 130
    assert err.strip() == "interrupted; finished runs are kept in results.jsonl"
    assert not (out / ".qdistill.lock").exists()


def test_runs_that_crash_twice_are_recorded_and_the_rest_reported(
    monkeypatch, capsys, tmp_path, tiny_yaml
):
    import qdistill.experiment.executors as executors

    real = executors.execute_run
    attempts = []

    def crash_small(ctx, run):
        if run.name == "small":
            attempts.append(run.name)
            raise RuntimeError("CUDA error: an illegal memory access")
        return real(ctx, run)

    monkeypatch.setattr(executors, "execute_run", crash_small)
    out = tmp_path / "out"
    code, printed, err = run_cli(monkeypatch, capsys, "run", str(tiny_yaml), "--out", str(out))
    assert_user_error(code, err, "1 run(s) failed twice (first: small seed 0: RuntimeError")
    assert attempts == ["small", "small"]
    assert (out / "report.md").is_file() and "Report:" in printed
    assert len((out / "results.jsonl").read_text().splitlines()) == 4
    failure = json.loads((out / "failures.jsonl").read_text())
    assert (failure["name"], failure["attempts"]) == ("small", 2)
    assert "illegal memory access" in failure["traceback"]


def test_prune_then_quantize_evaluate_and_export(monkeypatch, capsys, tmp_path, float_ckpt):
    pruned, quantized = tmp_path / "p.safetensors", tmp_path / "pq.safetensors"
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        "prune",
        str(float_ckpt),
        "--ratio",
        "0.5",
        "--importance",
        "taylor",
        "--steps",
        "2",
        "--finetune-epochs",
        "1",
        "--out",
        str(pruned),
    )
    assert code == 0 and "MACs x0." in out and "fine-tuned" in out and "finetune step 1" in out
    _, metadata = load_model(pruned)
    assert metadata["pruned_shapes"] and metadata["pruning"]["importance"] == "taylor"
    code, out, _ = run_cli(
        monkeypatch, capsys, "quantize", str(pruned), "--bits", "w4a4", "-o", str(quantized)
    )
    assert code == 0
    assert load_model(quantized)[1]["pruned_shapes"] == metadata["pruned_shapes"]
    code, out, _ = run_cli(monkeypatch, capsys, "evaluate", str(quantized))
    assert code == 0 and "test_acc_integer" in out
    onnx_path = tmp_path / "pq.onnx"
    code, _, _ = run_cli(
        monkeypatch,
        capsys,
        "export",
        str(quantized),
        "--format",
        "onnx-qdq",
        "--out",
        str(onnx_path),
    )
    assert code == 0 and onnx_path.is_file()


def test_export_tolerance_and_mismatch_from_the_command_line(
    monkeypatch, capsys, tmp_path, float_ckpt
):
    import qdistill.export.api as api

    qckpt = tmp_path / "q.safetensors"
    run_cli(monkeypatch, capsys, "quantize", str(float_ckpt), "--bits", "w8a8", "-o", str(qckpt))
    real = api.run_exported
    monkeypatch.setattr(api, "run_exported", lambda *args: real(*args) + 0.5)  # a broken runtime
    path = tmp_path / "q.onnx"
    export = ["export", str(qckpt), "--format", "onnx-qdq", "--out", str(path)]
    code, _, err = run_cli(monkeypatch, capsys, *export)
    assert_user_error(code, err, "outside tolerance: mean |diff| 0.5")
    code, out, _ = run_cli(monkeypatch, capsys, *export, "--on-mismatch", "warn")
    assert code == 0 and "Written with warnings" in out and path.is_file()
    code, out, _ = run_cli(monkeypatch, capsys, *export, "--max-mean-diff", "1e6")
    assert code == 0 and "Verified" in out
    code, _, err = run_cli(monkeypatch, capsys, *export, "--on-mismatch", "maybe")
    assert_user_error(code, err, "--on-mismatch must be refuse or warn")
    code, _, err = run_cli(monkeypatch, capsys, *export, "--min-agreement", "2")
    assert_user_error(code, err, "agreement must be in [0, 1]")
