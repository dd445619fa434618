"""Single-model commands: ``train``, ``quantize``, ``evaluate``, ``sensitivity`` and the
registry listings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from qdistill.cli.app import app, key_values
from qdistill.console import console
from qdistill.errors import ConfigError


def _validated(config_class: type, what: str, **values: Any) -> Any:
    """``config_class(**values)``; the first validation problem is one ConfigError line."""
    try:
        return config_class(**values)
    except ValidationError as err:
        first = err.errors()[0]
        location = ".".join(str(p) for p in first["loc"]) or "value"
        raise ConfigError(f"{what} option {location}: {first['msg']}") from None


def _train_config(**values: Any):
    from qdistill.train import TrainConfig

    epochs, batch_size = values.pop("epochs"), values.pop("batch_size")
    return _validated(
        TrainConfig, "training", epochs=epochs, batch_size=batch_size, optimizer=values
    )


@app.command()
def train(
    model: Annotated[str, typer.Option(help="Registered model name (see 'qdistill models').")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write (.safetensors).")],
    data: Annotated[str, typer.Option(help="Registered dataset name.")] = "digits",
    data_option: Annotated[list[str] | None, typer.Option(help="Dataset option key=value.")] = None,
    model_option: Annotated[list[str] | None, typer.Option(help="Model option key=value.")] = None,
    epochs: int = 30,
    batch_size: int = 64,
    optimizer: str = "adam",
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> None:
    """Train a float model and save it as a safetensors checkpoint."""
    from qdistill.data import build_dataset
    from qdistill.experiment.commands import train_float

    data_options = key_values(data_option, "--data-option")
    model_options = key_values(model_option, "--model-option")
    config = _train_config(
        epochs=epochs, batch_size=batch_size, name=optimizer, lr=lr, weight_decay=weight_decay
    )
    dataset = build_dataset(data, **data_options)
    metrics = train_float(dataset, data_options, model, model_options, config, seed, out)
    shown = ("test_acc", "val_acc", "test_psnr_y", "test_ssim_y", "bicubic_test_psnr_y")
    console.print(
        "  ".join(f"{k.replace('_', ' ')} {metrics[k]:.4g}" for k in shown if k in metrics)
    )
    console.print(f"[bold green]Checkpoint:[/] {out}")


@app.command()
def quantize(
    checkpoint: Annotated[Path, typer.Argument(help="Float checkpoint from 'qdistill train'.")],
    bits: Annotated[str, typer.Option(help="Plan such as w8a8, w4a4, w2a2.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Quantized checkpoint to write.")],
    method: Annotated[str, typer.Option(help="ptq (calibrate only) or qat (train).")] = "ptq",
    epochs: int = 15,
    batch_size: int = 64,
    optimizer: str = "adam",
    lr: float = 1e-3,
    calibration_batches: int = 8,
    fold_bn: bool = False,
    equalize: Annotated[
        bool, typer.Option(help="Equalize activation ranges across layer pairs first.")
    ] = False,
    seed: int = 0,
) -> None:
    """Quantize a checkpoint by post-training calibration or quantization-aware training."""
    from qdistill.experiment.commands import quantize_checkpoint
    from qdistill.quant import QuantPlan

    if method not in ("ptq", "qat"):
        raise ConfigError(f"method {method!r} is unknown; use ptq or qat")
    plan = QuantPlan.from_config(bits)
    train_config = _train_config(epochs=epochs, batch_size=batch_size, name=optimizer, lr=lr)
    summary = quantize_checkpoint(
        checkpoint,
        plan,
        method,
        train_config if method == "qat" else None,
        calibration_batches,
        fold_bn,
        seed,
        out,
        equalize,
    )
    console.print(
        f"float {summary.headline} {summary.float_value:.2f} -> {method} {plan.short} "
        f"{summary.value:.2f} (integer model {summary.integer_value:.2f}), "
        f"size {summary.float_bytes / 1024:.1f} -> {summary.size_bytes / 1024:.1f} KiB"
    )
    console.print(f"[bold green]Checkpoint:[/] {out}")


@app.command()
def prune(
    checkpoint: Annotated[Path, typer.Argument(help="Float checkpoint from qdistill.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Pruned checkpoint to write.")],
    ratio: Annotated[float, typer.Option(help="Share of channels removed (0..1).")] = 0.5,
    importance: Annotated[str, typer.Option(help="random, l1, l2, lamp or taylor.")] = "lamp",
    scope: Annotated[str, typer.Option(help="local (every layer) or global.")] = "local",
    steps: Annotated[int, typer.Option(help="Reach the ratio in this many steps.")] = 1,
    target_macs: Annotated[
        float | None, typer.Option(help="Prune until MACs fall to this share of the original.")
    ] = None,
    target_params: Annotated[
        float | None, typer.Option(help="Prune until parameters fall to this share.")
    ] = None,
    target_latency_ms: Annotated[
        float | None,
        typer.Option(help="Prune until PyTorch latency at batch 1 here is at most this."),
    ] = None,
    ignore: Annotated[
        list[str] | None, typer.Option(help="Layer name pattern left whole (repeatable).")
    ] = None,
    finetune_epochs: Annotated[
        int, typer.Option(help="Fine-tuning epochs after each step and at the end (0: none).")
    ] = 0,
    lr: float = 1e-3,
    seed: int = 0,
) -> None:
    """Remove whole channels (dependency-aware structured pruning), then fine-tune."""
    from qdistill.experiment.pruning import prune_checkpoint
    from qdistill.prune.structured import ChannelPruning

    pruning = _validated(
        ChannelPruning,
        "prune",
        importance=importance,
        ratio=ratio,
        scope=scope,
        steps=steps,
        target_macs=target_macs,
        target_params=target_params,
        target_latency_ms=target_latency_ms,
        ignore=ignore or [],
    )
    finetune = None
    if finetune_epochs:
        finetune = _train_config(epochs=finetune_epochs, batch_size=64, name="adam", lr=lr)
    summary = prune_checkpoint(checkpoint, pruning, finetune, seed, out)
    after = f", fine-tuned {summary.finetuned:.2f}" if summary.finetuned is not None else ""
    console.print(
        f"{summary.headline} {summary.before:.2f} -> pruned {summary.pruned:.2f}{after}; MACs x"
        f"{summary.report.mac_ratio:.2f}, size {summary.bytes_before / 1024:.1f} -> "
        f"{summary.bytes_after / 1024:.1f} KiB"
    )
    console.print(f"[bold green]Checkpoint:[/] {out}")


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint written by qdistill.")],
    data: Annotated[
        str | None, typer.Option(help="Dataset (default: the one it was trained on).")
    ] = None,
    data_option: Annotated[list[str] | None, typer.Option(help="Dataset option key=value.")] = None,
) -> None:
    """Evaluate a checkpoint: accuracy on every split, size, integer-model agreement."""
    from qdistill.experiment.commands import evaluate_checkpoint

    result = evaluate_checkpoint(checkpoint, data, key_values(data_option, "--data-option"))
    for key, value in result.items():
        if "@" not in key:  # per-image values (test_psnr_y@<image>) go to a table
            console.print(
                f"{key:>20}: {value:.4f}" if isinstance(value, float) else f"{key:>20}: {value}"
            )
    per_image = {key: value for key, value in result.items() if "@" in key}
    if per_image:
        console.print(_per_image_table(per_image))


def _per_image_table(per_image: dict[str, float]):
    """Image rows, one column per metric recorded per image (``<key>@<image>``)."""
    from rich.table import Table

    keys = list(dict.fromkeys(key.split("@", 1)[0] for key in per_image))
    images = list(dict.fromkeys(key.split("@", 1)[1] for key in per_image))
    table = Table("image", *keys, title="Per test image")
    for image in images:
        values = (per_image.get(f"{key}@{image}") for key in keys)
        table.add_row(image, *("" if v is None else f"{v:.4f}" for v in values))
    return table


@app.command()
def sensitivity(
    checkpoint: Annotated[Path, typer.Argument(help="Float checkpoint from qdistill.")],
    bits: Annotated[str, typer.Option(help="Bit width each unit is probed at.")] = "w4a4",
    granularity: Annotated[str, typer.Option(help="stages or layers.")] = "stages",
    calibration_batches: int = 8,
    levels: Annotated[
        str | None,
        typer.Option(help="Probe every unit at each of these widths, low to high: w2a2,w4a4,w8a8."),
    ] = None,
    low: Annotated[str | None, typer.Option(help="Allocate: bits of insensitive units.")] = None,
    high: Annotated[str | None, typer.Option(help="Allocate: bits of sensitive units.")] = None,
    budget: Annotated[
        str | None, typer.Option(help="Allocate: size budget, bytes or a plan like w6a6.")
    ] = None,
    spend_leftover: Annotated[
        bool, typer.Option(help="Allocate: give unspent budget to the most sensitive units.")
    ] = False,
) -> None:
    """Quantize one stage (or layer) at a time and report each one's quality drop;
    with --budget (and --levels, or --low and --high), also allocate a mixed-precision plan."""
    from pydantic import ValidationError
    from rich.table import Table

    from qdistill.experiment.commands import sensitivity_checkpoint
    from qdistill.experiment.schema import format_validation_error
    from qdistill.experiment.stages.mixed_precision import MixedPrecisionStage
    from qdistill.quant.sensitivity import Allocation
    from qdistill.report.sensitivity import spec_label

    options: dict[str, Any] = {
        "granularity": granularity,
        "calibration_batches": calibration_batches,
        "spend_leftover": spend_leftover,
    }
    if levels is not None:
        if low or high:
            raise ConfigError("give either --levels or --low/--high, not both")
        options["levels"] = [part.strip() for part in levels.split(",") if part.strip()]
    elif low or high:
        if not (low and high and budget):
            raise ConfigError("allocation needs all of --low, --high and --budget")
        options.update(low=low, high=high, probe=bits)
    else:
        options.update(low=bits, probe=bits)
    if budget is not None:
        options["budget"] = int(budget) if budget.isdigit() else budget
    try:
        allocation = MixedPrecisionStage(**options)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "sensitivity options")) from None
    result = sensitivity_checkpoint(
        checkpoint, allocation, budget is not None, lambda line: console.print(f"  {line}")
    )
    drops = {label: {s.unit: s.drop for s in scores} for label, scores in result.levels.items()}
    first = next(iter(result.levels.values()))
    table = Table(title=f"Sensitivity ({result.metric}, float {result.float_score:.3f})")
    for header in ("Unit", "Layers", "Params", *(f"Drop at {label}" for label in drops)):
        table.add_column(header, justify="left" if header == "Unit" else "right")
    for s in first:
        row = [f"{by_unit[s.unit]:+.3f}" for by_unit in drops.values()]
        table.add_row(s.unit, str(s.layers), f"{s.params:,}", *row)
    console.print(table)
    if isinstance(result, Allocation):
        plan = {pattern: spec_label(spec) for pattern, spec in result.plan.rules}
        console.print(f"Allocated plan ({result.budget_bytes} bytes budget): {plan}")


@app.command()
def models() -> None:
    """List the registered models."""
    from qdistill.models import MODELS

    for name in MODELS.names():
        doc = (MODELS.get(name).__doc__ or "").strip().splitlines()
        console.print(f"{name:<16} {doc[0] if doc else ''}")
    console.print(
        f"{'torchvision:<n>':<16} any torchvision classification model <n>, without weights "
        "(e.g. torchvision:resnet18)"
    )


@app.command()
def datasets() -> None:
    """List the registered datasets."""
    from qdistill.data import DATASETS

    for name in DATASETS.names():
        doc = (DATASETS.get(name).__doc__ or "").strip().splitlines()
        console.print(f"{name:<16} {doc[0] if doc else ''}")
