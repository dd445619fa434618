"""Half-precision (FP16 or BF16) inference that keeps chosen modules in float32.

``half_precision(model, keep_fp32=["upsampling"])`` returns a copy whose parameters,
buffers and activations are float16 except inside the kept modules, which compute in
float32 on inputs cast up and return outputs cast back down. The model takes and returns
float32 tensors (cast at its entry and exit), so evaluation code needs no change. This is
real half-precision arithmetic (PyTorch's float16 kernels, on the CPU too), not an
emulation; kept modules are named with the quantization plan's patterns (a module path,
its prefix, or a shell-style glob such as ``body.*``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from qdistill.errors import ConfigError
from qdistill.quant.plan import pattern_matches
from qdistill.quant.prepare import is_quantized, quantizable_layers

HALF_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class HalfPlan:
    """Which half type a model runs in and which modules stay float32."""

    dtype: str = "float16"
    keep_fp32: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.dtype not in HALF_DTYPES:
            raise ConfigError(f"half dtype {self.dtype!r} is unknown; use float16 or bfloat16")

    @property
    def label(self) -> str:
        """``fp16``, ``bf16``, or e.g. ``fp16+fp32:upsampling``."""
        short = "fp16" if self.dtype == "float16" else "bf16"
        return short + (f"+fp32:{','.join(self.keep_fp32)}" if self.keep_fp32 else "")

    def to_config(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "keep_fp32": list(self.keep_fp32)}

    @classmethod
    def from_config(cls, config: Any) -> HalfPlan:
        try:
            return cls(config["dtype"], tuple(config["keep_fp32"]))
        except (KeyError, TypeError):
            raise ConfigError(
                f"half-precision plan {config!r} needs 'dtype' and a 'keep_fp32' list"
            ) from None


def _cast_floats(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    if isinstance(value, tuple):
        return tuple(_cast_floats(v, dtype) for v in value)
    if isinstance(value, list):
        return [_cast_floats(v, dtype) for v in value]
    return value


def _cast_hooks(module: nn.Module, inside: torch.dtype, outside: torch.dtype) -> None:
    """Make ``module`` cast its floating inputs to ``inside`` and its outputs to
    ``outside``."""
    module.register_forward_pre_hook(lambda _m, args: _cast_floats(args, inside))
    module.register_forward_hook(lambda _m, _args, out: _cast_floats(out, outside))


def kept_modules(model: nn.Module, patterns: Sequence[str]) -> list[str]:
    """The outermost modules of ``model`` that ``patterns`` name (``@first``/``@last``:
    the first/last layer with weights; a pattern naming nothing is an error)."""
    names = [name for name, _ in model.named_modules() if name]
    layers = [name for name, _ in quantizable_layers(model)]
    chosen: list[str] = []
    for pattern in patterns:
        if pattern in ("@first", "@last"):  # the first or last layer with weights
            hits = layers[:1] if pattern == "@first" else layers[-1:]
        else:
            hits = [n for n in names if pattern_matches(pattern, n, 0, len(names))]
        if not hits:
            top = ", ".join(n for n in names if "." not in n)
            raise ConfigError(
                f"keep_fp32 pattern {pattern!r} matches no module; top-level modules: {top}"
            )
        chosen.extend(hits)
    return [n for n in dict.fromkeys(chosen) if not any(n.startswith(f"{o}.") for o in chosen)]


def half_precision(model: nn.Module, plan: HalfPlan | None = None) -> nn.Module:
    """A copy of float ``model`` that runs in ``plan.dtype`` except ``plan.keep_fp32``."""
    plan = plan or HalfPlan()
    if is_quantized(model):
        raise ConfigError("half precision applies to float models; this one is quantized")
    if is_half(model):
        raise ConfigError(f"the model already runs in half precision ({model.half_plan.label})")
    keep = kept_modules(model, plan.keep_fp32)
    dtype = HALF_DTYPES[plan.dtype]
    half = copy.deepcopy(model).to(dtype)
    _cast_hooks(half, dtype, torch.float32)
    for name in keep:
        module = half.get_submodule(name).float()
        _cast_hooks(module, torch.float32, dtype)
    half.half_plan = plan
    return half


def is_half(model: nn.Module) -> bool:
    return isinstance(getattr(model, "half_plan", None), HalfPlan)


def half_plan_of(model: nn.Module) -> dict[str, Any] | None:
    """The plan of a half-precision model as JSON-friendly config, else None."""
    return model.half_plan.to_config() if is_half(model) else None
