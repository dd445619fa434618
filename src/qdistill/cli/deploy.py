"""Deployment commands: ``export``, ``benchmark`` and ``hardware``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from qdistill.cli.app import app, int_list, key_values
from qdistill.console import console
from qdistill.errors import ConfigError
from qdistill.paths import writable_folder


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint written by qdistill.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="onnx, onnx-qdq, qonnx or finn.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write.")],
    samples: Annotated[int, typer.Option(help="Test inputs the export is verified on.")] = 64,
    min_agreement: Annotated[
        float | None,
        typer.Option(help="Least share of samples whose top class must agree (default 0.99)."),
    ] = None,
    min_psnr: Annotated[
        float | None, typer.Option(help="Least PSNR (dB) of image outputs (default 40).")
    ] = None,
    max_mean_diff: Annotated[
        float | None,
        typer.Option(help="Largest mean |diff|, relative to the mean |output| (default 0.05)."),
    ] = None,
    on_mismatch: Annotated[
        str, typer.Option(help="Beyond tolerance: refuse (keep *.unverified.onnx) or warn.")
    ] = "refuse",
) -> None:
    """Export a checkpoint and verify the written file against PyTorch."""
    from qdistill.experiment.commands import export_checkpoint
    from qdistill.export import Tolerance

    if on_mismatch not in ("refuse", "warn"):
        raise ConfigError(f"--on-mismatch must be refuse or warn, got {on_mismatch!r}")
    given = {"agreement": min_agreement, "psnr_db": min_psnr, "mean_diff": max_mean_diff}
    tolerance = Tolerance(**{key: value for key, value in given.items() if value is not None})
    report = export_checkpoint(checkpoint, fmt, out, samples, tolerance, on_mismatch)
    if report.passed:
        console.print(f"[bold green]Verified:[/] {report.summary()}")
    else:
        console.print(f"[bold yellow]Written with warnings:[/] {report.summary()}")
    console.print(f"Report: {out}.report.json")


@app.command()
def benchmark(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint written by qdistill.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the report.")] = Path(
        "runs/benchmark"
    ),
    backends: Annotated[
        str | None,
        typer.Option(help="Comma-separated: torch, torch_compile, ort_float, ort_int8, cuda."),
    ] = None,
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = (
        "1,2,4,8,16,32,64,128,256"
    ),
    repeats: Annotated[int, typer.Option(help="Timed runs per batch size.")] = 20,
    time_limit: Annotated[float, typer.Option(help="Seconds per batch size before stopping.")] = (
        10.0
    ),
) -> None:
    """Latency, throughput versus batch size and energy estimates on each backend."""
    from qdistill.experiment.commands import benchmark_checkpoint
    from qdistill.report.benchmark import benchmark_table, write_benchmark_report

    writable_folder(out)
    chosen = tuple(b.strip() for b in backends.split(",")) if backends else None
    measurement = benchmark_checkpoint(
        checkpoint, chosen, int_list(batch_sizes, "--batch-sizes"), repeats, time_limit
    )
    measurement.save(out)
    path = write_benchmark_report(measurement, out, checkpoint.name)
    console.print(benchmark_table(measurement.benchmark))
    for note in measurement.benchmark.notes:
        console.print(note)
    console.print(f"[bold green]Report:[/] {path}")


@app.command()
def hardware(
    checkpoint: Annotated[
        Path,
        typer.Argument(help="Quantized checkpoint written by qdistill, or a QONNX file (.onnx)."),
    ],
    fps: Annotated[
        float | None, typer.Option(help="Target frames per second (fold to reach it).")
    ] = None,
    board: Annotated[
        str | None,
        typer.Option(help="Without --fps: the fastest design that fits this catalogue board."),
    ] = None,
    clock_mhz: Annotated[float, typer.Option(help="Accelerator clock.")] = 100.0,
    input_shape: Annotated[
        str | None,
        typer.Option(help="Estimate for inputs of this C,H,W (default: the checkpoint's)."),
    ] = None,
    folding: Annotated[
        Path | None, typer.Option(help="YAML/JSON {unit_or_layer: {PE: n, SIMD: m}} overrides.")
    ] = None,
    utilisation: Annotated[
        float, typer.Option(help="Share of the board's resources --board may use.")
    ] = 1.0,
    catalogue: Annotated[
        Path | None, typer.Option(help="Board catalogue YAML (default: the shipped one).")
    ] = None,
    measure_cpu: Annotated[
        bool, typer.Option(help="Measure this CPU's throughput for the comparison.")
    ] = False,
    processor: Annotated[
        list[str] | None,
        typer.Option(help="NAME=FPS: a catalogue processor's throughput (repeatable)."),
    ] = None,
    mvau_wwidth_max: Annotated[
        int, typer.Option(help="FINN's cap on SIMD x weight bits per PE when folding.")
    ] = 36,
    hls4ml_reuse: Annotated[
        int | None, typer.Option(help="Also show an hls4ml-style view at this reuse factor.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """FPGA dataflow estimate (cycles, PE/SIMD, LUT/FF/BRAM/DSP per unit) and economics."""
    from qdistill.experiment.commands import hardware_checkpoint
    from qdistill.hardware.estimate import DataflowTarget
    from qdistill.hardware.folding import read_folding
    from qdistill.report.hardware import cost_tables, price_notes, summary_line

    target = DataflowTarget(
        clock_mhz=clock_mhz,
        fps=fps,
        folding=read_folding(folding) if folding else {},
        mvau_wwidth_max=mvau_wwidth_max,
    )
    given = key_values(processor, "--processor")
    if not all(isinstance(v, (int, float)) and v > 0 for v in given.values()):
        raise ConfigError(f"--processor takes NAME=FPS with a positive number, got {processor}")
    report = hardware_checkpoint(
        checkpoint,
        target,
        input_shape=int_list(input_shape, "--input-shape") if input_shape else None,
        board=board,
        utilisation=utilisation,
        catalogue_path=catalogue,
        measure_cpu=measure_cpu,
        processor_fps=given,
        hls4ml_reuse=hls4ml_reuse,
    )
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    for table in cost_tables(report):
        console.print(table)
    console.print(summary_line(report.estimate))
    cheapest = report.cheapest
    console.print(
        f"Cheapest board that fits: {cheapest.board} ({cheapest.price_label})"
        if cheapest
        else "No priced board in the catalogue fits this design."
    )
    for note in price_notes(report):
        console.print(f"  price {note}")
