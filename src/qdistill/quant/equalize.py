"""Range equalization across layer pairs (function-preserving, before quantizing).

For a producer -> (ReLU | LeakyReLU | PReLU | max-pool | dropout) -> consumer chain of
conv/linear layers (the producer may be an affine BatchNorm), channel ``c`` is divided
by ``s_c`` in the producer and multiplied by ``s_c`` in the consumer, which leaves the
model's function unchanged (the ops between are positively homogeneous) while evening
out the per-channel ranges a per-tensor activation quantizer must share. As in
data-free quantization (Nagel et al. 2019) and SmoothQuant (Xiao et al. 2023),
``s_c = r_c ** strength / w_c ** (1 - strength)``, with ``r_c`` channel c's largest
|activation| on data and ``w_c`` the consumer's largest |weight| for that channel:
``strength=1`` gives every channel the full activation range, ``0.5`` balances
activation and weight ranges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from qdistill.errors import ConfigError
from qdistill.quant.calibrate import feed_batches
from qdistill.quant.plan import pattern_matches
from qdistill.quant.prepare import is_quantized, quantizable_layers

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
_AFFINE_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
# Channel-wise ops that commute with a positive per-channel scale.
_HOMOGENEOUS = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.Dropout,
    nn.Identity,
)
_HOMOGENEOUS_FUNCTIONS = {torch.relu, torch.nn.functional.relu, torch.nn.functional.leaky_relu}
# A channel whose activation or consumer-weight range is below this fraction of the
# widest is left alone: it carries next to nothing, and rescaling it would push the
# other channels' scales to extremes.
_MIN_RATIO = 1e-3


@dataclass(frozen=True)
class EqualizedPair:
    """One rescaled producer/consumer pair and how uneven its channel ranges were."""

    producer: str
    consumer: str
    channels: int
    spread: float  # widest / narrowest live channel range before equalization

    def to_dict(self) -> dict[str, object]:
        return {
            "producer": self.producer,
            "consumer": self.consumer,
            "channels": self.channels,
            "spread": round(self.spread, 2),
        }


def _out_channels(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, _LAYERS):
        return module.out_channels
    if isinstance(module, _AFFINE_NORMS) and module.affine:
        return module.num_features
    return None


def _reads_all_channels(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or (isinstance(module, _LAYERS) and module.groups == 1)


def _in_channels(module: nn.Module) -> int:
    return module.in_features if isinstance(module, nn.Linear) else module.in_channels


def _passes_scale(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(node.target), _HOMOGENEOUS)
    return node.op == "call_function" and node.target in _HOMOGENEOUS_FUNCTIONS


def _trace_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(producer, consumer) module names joined by scale-commuting ops used nowhere else."""
    graph = torch.fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not _reads_all_channels(modules.get(node.target)):
            continue
        source = node.args[0] if node.args else None
        while isinstance(source, torch.fx.Node) and len(source.users) == 1:
            if source.op == "call_module" and _out_channels(modules.get(source.target)):
                pairs.append((source.target, node.target))
                break
            if not _passes_scale(source, modules):
                break
            source = source.args[0] if source.args else None
    # A module called twice shares its weights between calls: scaling it for one call
    # would change the other.
    return [(p, c) for p, c in pairs if calls[p] == 1 and calls[c] == 1]


def _sequential_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """Fallback for models fx cannot trace: pairs inside one nn.Sequential."""
    pairs = []
    for prefix, container in model.named_modules():
        if not isinstance(container, nn.Sequential):
            continue
        join = f"{prefix}." if prefix else ""
        producer = None
        for name, child in container.named_children():
            if _reads_all_channels(child) and producer is not None:
                pairs.append((join + producer, join + name))
            if _out_channels(child):
                producer = name
            elif not isinstance(child, _HOMOGENEOUS):
                producer = None
    return pairs


def equalizable_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """Producer/consumer pairs whose shared channels :func:`equalize_ranges` can rescale."""
    try:
        pairs = _trace_pairs(model)
    except Exception:
        pairs = _sequential_pairs(model)
    return [
        (producer, consumer)
        for producer, consumer in pairs
        if _out_channels(model.get_submodule(producer))
        == _in_channels(model.get_submodule(consumer))
    ]


def _select_consumers(
    model: nn.Module, pairs: list[tuple[str, str]], patterns: Sequence[str]
) -> list[tuple[str, str]]:
    """The pairs whose consumer a plan pattern names; a pattern naming none is an error."""
    layers = [name for name, _ in quantizable_layers(model)]
    position = {name: index for index, name in enumerate(layers)}

    def chosen(consumer: str, pattern: str) -> bool:
        return pattern_matches(pattern, consumer, position[consumer], len(layers))

    for pattern in patterns:
        if not any(chosen(consumer, pattern) for _, consumer in pairs):
            known = ", ".join(consumer for _, consumer in pairs) or "none"
            raise ConfigError(
                f"equalize consumer pattern {pattern!r} matches no equalizable layer; "
                f"equalizable consumers: {known}"
            )
    return [(p, c) for p, c in pairs if any(chosen(c, pattern) for pattern in patterns)]


def _input_ranges(
    model: nn.Module,
    consumers: list[str],
    batches: Iterable,
    max_batches: int,
    device: torch.device | None,
) -> dict[str, torch.Tensor]:
    """Largest |value| per channel entering each consumer, over the batches."""
    ranges: dict[str, torch.Tensor] = {}

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0].detach().abs()
            channel_dim = x.dim() - 1 if isinstance(module, nn.Linear) else 1
            peak = x.amax(dim=[d for d in range(x.dim()) if d != channel_dim]).float()
            ranges[name] = peak if name not in ranges else torch.maximum(ranges[name], peak)

        return hook

    handles = [
        model.get_submodule(name).register_forward_pre_hook(record(name)) for name in consumers
    ]
    was_training = model.training
    model.eval()
    try:
        feed_batches(model, batches, max_batches, device)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return ranges


def _column_ranges(module: nn.Module) -> torch.Tensor:
    """Largest |weight| per input channel of a consumer."""
    weight = module.weight.detach().abs()
    return weight.amax(dim=[d for d in range(weight.dim()) if d != 1]).float()


def _scale_producer(module: nn.Module, inverse: torch.Tensor) -> None:
    """Multiply the producer's output channels by ``inverse`` (= 1 / s)."""
    shape = (-1,) + (1,) * (module.weight.dim() - 1)
    module.weight.mul_(inverse.reshape(shape).to(module.weight))
    if module.bias is not None:
        module.bias.mul_(inverse.to(module.bias))


def _scale_consumer(module: nn.Module, scale: torch.Tensor) -> None:
    shape = (1, -1) + (1,) * (module.weight.dim() - 2)
    module.weight.mul_(scale.reshape(shape).to(module.weight))


@torch.no_grad()
def equalize_ranges(
    model: nn.Module,
    batches: Iterable,
    *,
    strength: float = 0.5,
    consumers: Sequence[str] | None = None,
    max_batches: int = 8,
    device: torch.device | None = None,
) -> list[EqualizedPair]:
    """Rescale every equalizable pair of the float ``model`` in place (see the module
    text for ``strength``), or only the pairs whose consumer matches one of the plan
    patterns in ``consumers`` (e.g. the layers that will read low-bit activations); the
    model computes the same function. Call it before :func:`~qdistill.quant.quantize`;
    returns what it changed."""
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"equalization strength {strength} must be in [0, 1]")
    if is_quantized(model):
        raise ConfigError("equalize the float model before quantizing it")
    pairs = equalizable_pairs(model)
    if consumers is not None:
        pairs = _select_consumers(model, pairs, consumers)
    if not pairs:
        return []
    ranges = _input_ranges(model, [c for _, c in pairs], batches, max_batches, device)
    changed = []
    for producer, consumer in pairs:
        if consumer not in ranges:
            continue  # not reached by these batches
        peak = ranges[consumer]
        columns = _column_ranges(model.get_submodule(consumer)).to(peak)
        act_ratio = peak / peak.max().clamp_min(1e-12)
        weight_ratio = columns / columns.max().clamp_min(1e-12)
        live = (act_ratio >= _MIN_RATIO) & (weight_ratio >= _MIN_RATIO)
        if live.sum() < 2:
            continue
        scale = act_ratio.clamp_min(_MIN_RATIO) ** strength
        scale = scale / weight_ratio.clamp_min(_MIN_RATIO) ** (1 - strength)
        scale = torch.where(live, scale / scale[live].max(), torch.ones_like(scale))
        _scale_producer(model.get_submodule(producer), 1.0 / scale)
        _scale_consumer(model.get_submodule(consumer), scale)
        changed.append(
            EqualizedPair(producer, consumer, len(peak), float(peak.max() / peak[live].min()))
        )
    return changed
