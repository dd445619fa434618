"""FakeQuantizer: quantize-then-dequantize one tensor in the forward pass.

Gradients pass straight through the rounding (STE) and are zero where values are
clipped. The arithmetic lives in :mod:`qdistill.quant.kernels` (PyTorch's fused
kernels on CUDA, vectorised tensor ops on the CPU); with ``range="learned"`` the
scale is a trainable parameter updated by the LSQ gradient
(``torch._fake_quantize_learnable_*``). Weight ranges (min/max or MSE) are recomputed
from the current weight at every call, so they never go stale; activation ranges are
observed (running min/max, EMA, percentile; see :mod:`qdistill.quant.observers`) while
training or calibrating and frozen in eval mode.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Literal, NamedTuple

import torch
from torch import nn

from qdistill.errors import ConfigError
from qdistill.quant.kernels import (
    binary_fake_quantize,
    fake_quantize,
    host_scalars_apply,
    learned_fake_quantize_half_up,
)
from qdistill.quant.observers import (
    batch_range,
    channels_first,
    mse_scale,
    running_range_scalar,
    update_running_range,
)
from qdistill.quant.qmath import (
    SCALE_EPS,
    power_of_two,
    qparams_from_range,
    scalar_qparams_from_range,
)
from qdistill.quant.spec import QuantizerSpec

Role = Literal["weight", "act"]


class QParams(NamedTuple):
    """Everything needed to map a tensor to integer codes and back."""

    scale: torch.Tensor  # float32, shape (channels,) or (1,)
    zero_point: torch.Tensor  # int32, same shape
    q_min: int
    q_max: int
    axis: int | None  # channel axis, None when per tensor
    binary: bool  # codes are {-1, +1}: x_hat = scale * code
    half_up: bool = False  # ties round towards +inf (else to even)


class FakeQuantizer(nn.Module):
    """Fake-quantizes a weight (role="weight") or a layer input (role="act")."""

    def __init__(
        self,
        spec: QuantizerSpec,
        role: Role,
        channel_axis: int = 0,
        num_channels: int = 1,
        device: torch.device | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.role = role
        per_channel = spec.granularity == "per_channel"
        self.axis = channel_axis if per_channel else None
        n = num_channels if per_channel else 1
        self.learned = spec.range == "learned"
        self.fake_quant_enabled = True
        self.observer_enabled = True
        self.calibrating = False

        signed = spec.signed
        if signed is None and role == "weight":
            signed = True
        elif signed is None and not spec.symmetric:
            signed = False  # asymmetric activations: unsigned codes with a zero point
        self._set_signed(signed)  # None: symmetric activations, decided by the first batch

        kw = {"device": device}
        self.register_buffer("_zeros", torch.zeros(n, dtype=torch.int32, **kw), persistent=False)
        if role == "act" or self.learned:
            self.register_buffer("zero_point", torch.zeros(n, dtype=torch.int32, **kw))
            self.register_buffer("initialized", torch.zeros((), dtype=torch.uint8, **kw))
            if self.learned:
                self.scale = nn.Parameter(torch.ones(n, **kw))
            else:
                self.register_buffer("scale", torch.ones(n, **kw))
        if role == "act":
            self.register_buffer("running_min", torch.zeros(n, **kw))
            self.register_buffer("running_max", torch.zeros(n, **kw))
            self.register_buffer(
                "signed_state", torch.tensor(-1 if signed is None else int(signed), **kw)
            )
        self._initialized = False
        # The scale the last forward pass used (detached): integer biases are rounded to
        # the accumulator grid s_x * s_w built from these.
        self.last_scale: torch.Tensor | None = None
        self._mse_cache: tuple[tuple[int, int], torch.Tensor] | None = None
        self._collected: list[torch.Tensor] | None = None  # see observe_once()
        self.register_load_state_dict_post_hook(lambda module, _keys: module._sync_from_buffers())

    # -- state ---------------------------------------------------------------------------
    def _set_signed(self, signed: bool | None) -> None:
        self.signed = signed
        if signed is None:
            self.q_min, self.q_max, self.binary = 0, 0, False
            return
        self.q_min, self.q_max = self.spec.integer_range(signed)
        self.binary = self.spec.is_binary(signed)

    def _sync_from_buffers(self) -> None:
        if hasattr(self, "initialized"):
            self._initialized = bool(self.initialized.item())
        if hasattr(self, "signed_state") and int(self.signed_state) >= 0:
            self._set_signed(bool(int(self.signed_state)))

    @property
    def is_ready(self) -> bool:
        """True when the quantizer can produce qparams without seeing more data."""
        return (self.role == "weight" and not self.learned) or self._initialized

    def _mark_initialized(self) -> None:
        self._initialized = True
        self.initialized.fill_(1)

    # -- ranges --------------------------------------------------------------------------
    @torch.no_grad()
    def weight_qparams(
        self, weight: torch.Tensor, use_mse: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero point for ``weight`` from its current values (min/max or MSE).

        Binary weights use the L2-optimal scale mean(|w|) per channel.
        """
        flat = channels_first(weight.detach(), self.axis)
        pow2 = self.spec.power_of_two
        if self.binary:
            scale = flat.abs().mean(1).clamp_min(SCALE_EPS)
            return (power_of_two(scale, up=False) if pow2 else scale), self._zeros
        if use_mse is None:
            use_mse = self.spec.range == "mse"
        if self.spec.symmetric:
            # abs().amax() measured 8x faster than aminmax(dim=...) on the CPU.
            amax = flat.abs().amax(1)
            if use_mse and not isinstance(weight, nn.Parameter):
                scale = mse_scale(flat, amax, self.q_min, self.q_max)
                return (power_of_two(scale, up=False) if pow2 else scale), self._zeros
            if use_mse:
                # The search is costly: reuse it until the parameter changes in place.
                key = (weight.data_ptr(), weight._version)
                if self._mse_cache is None or self._mse_cache[0] != key:
                    scale = mse_scale(flat, amax, self.q_min, self.q_max)
                    self._mse_cache = (key, power_of_two(scale, up=False) if pow2 else scale)
                return self._mse_cache[1], self._zeros
            scale = amax.div_(self.q_max).clamp_min_(SCALE_EPS)
            return (power_of_two(scale) if pow2 else scale), self._zeros
        return qparams_from_range(
            flat.amin(1), flat.amax(1), self.q_min, self.q_max, symmetric=False, pow2=pow2
        )

    @torch.no_grad()
    def _observe(self, x: torch.Tensor) -> None:
        """Update the running activation range from one batch and refresh scale/zero point."""
        x = x.detach()
        if self.signed is None:
            self._set_signed(bool(x.min() < 0))
            self.signed_state.fill_(int(self.signed))
        if self._observe_scalar(x):
            return
        lo, hi = batch_range(x, self.spec, self.binary)
        update_running_range(
            self.running_min, self.running_max, lo, hi, self.spec, first=not self._initialized
        )
        if self.binary:
            scale, zero_point = self.running_max.clamp_min(SCALE_EPS), self._zeros
            scale = power_of_two(scale, up=False) if self.spec.power_of_two else scale
        else:
            scale, zero_point = qparams_from_range(
                self.running_min,
                self.running_max,
                self.q_min,
                self.q_max,
                self.spec.symmetric,
                self.spec.power_of_two,
            )
        self.scale.copy_(scale)
        self.zero_point.copy_(zero_point)
        if not self._initialized:
            self._mark_initialized()

    def _observe_scalar(self, x: torch.Tensor) -> bool:
        """_observe for one range of finite min/max of a float32 batch on the CPU, in
        Python numbers (same values, a dozen fewer one-element tensor ops). False where
        it does not apply."""
        if (
            self.axis is not None
            or self.binary
            or self.spec.range == "percentile"
            or self.spec.power_of_two
            or not host_scalars_apply(x, self.running_min)
        ):
            return False
        lo, hi = (value.item() for value in torch.aminmax(x))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return False
        if self._initialized:
            lo, hi = running_range_scalar(
                self.running_min.item(), self.running_max.item(), lo, hi, self.spec
            )
        scale, zero_point = scalar_qparams_from_range(
            lo, hi, self.q_min, self.q_max, self.spec.symmetric
        )
        self.running_min.fill_(lo)
        self.running_max.fill_(hi)
        self.scale.fill_(scale)
        self.zero_point.fill_(zero_point)
        if not self._initialized:
            self._mark_initialized()
        return True

    @torch.no_grad()
    def _init_learned_weight(self, weight: torch.Tensor) -> None:
        """Start a learned weight scale at the MSE-optimal clipping range."""
        scale, zero_point = self.weight_qparams(weight, use_mse=True)
        self.scale.copy_(scale)
        self.zero_point.copy_(zero_point)
        self._mark_initialized()

    def _should_observe(self) -> bool:
        if self.role == "weight":
            return False
        if self.learned:
            return self.calibrating or not self._initialized
        return self.calibrating or (self.training and self.observer_enabled)

    # -- forward -------------------------------------------------------------------------
    def qparams(self, weight: torch.Tensor | None = None) -> QParams:
        """Current quantization parameters (weights need the weight tensor they apply to)."""
        if self.role == "weight" and not self.learned:
            if weight is None:
                raise ValueError("weight quantizer qparams need the weight tensor")
            scale, zero_point = self.weight_qparams(weight)
        else:
            if not self._initialized:
                raise RuntimeError("quantizer has no range yet: calibrate or train the model first")
            scale = self._learned_scale().detach() if self.learned else self.scale.detach()
            zero_point = self.zero_point
        return QParams(
            scale, zero_point, self.q_min, self.q_max, self.axis, self.binary, self.spec.half_up
        )

    @contextmanager
    def observe_once(self):
        """Within the block, the inputs this quantizer would observe are collected and then
        observed as one batch: a layer applied at every step of a sequence (a recurrent
        layer's hidden-state projection) measures the range of the whole sequence, not an
        EMA over steps dragged towards the zero initial state. Without a range yet and
        fake quantization on, the first input must set one, so it is observed at once."""
        if not self._should_observe() or (self.fake_quant_enabled and not self._initialized):
            yield
            return
        self._collected = []
        try:
            yield
            collected = self._collected
        finally:
            self._collected = None
        if collected:
            self._observe(torch.cat([x.reshape(-1) for x in collected]))

    @property
    def plain_affine(self) -> bool:
        """Whether fake quantization is the composed affine one: no learned scale, no
        binary codes, ties rounded to even."""
        return not (self.learned or self.spec.bits == 1 or self.spec.half_up)

    @property
    def covers_range(self) -> bool:
        """Whether the scale comes from the tensor's own max |x| with zero point 0 (a
        symmetric min/max weight range): no code is ever clipped."""
        return self.role == "weight" and self.spec.symmetric and self.spec.range == "minmax"

    def observe(self, x: torch.Tensor) -> None:
        """The observing part of forward: fold ``x`` into the activation range (or collect
        it, see observe_once), or start a learned scale from it."""
        if self._collected is not None and self._should_observe():
            self._collected.append(x.detach())
        elif self._should_observe():
            self._observe(x)
        elif self.learned and not self._initialized:
            self._init_learned_weight(x)

    def require_range(self) -> None:
        if self.role == "act" and not self._initialized:
            raise ConfigError(
                "activation ranges are not set: run qdistill.calibrate(model, batches) or a "
                "training step before evaluating a quantized model"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.observe(x)
        if not self.fake_quant_enabled:
            self.last_scale = None
            return x
        self.require_range()
        if self.learned:
            return self._learned_fake_quant(x)
        if self.role == "weight":
            scale, zero_point = self.weight_qparams(x)
        else:
            scale, zero_point = self.scale, self.zero_point
        self.last_scale = scale.detach()
        if self.binary:
            return binary_fake_quantize(x, scale, self.axis)
        if self.spec.symmetric:
            zero_point = None
        return fake_quantize(
            x,
            scale,
            zero_point,
            self.q_min,
            self.q_max,
            self.axis,
            covers_range=self.covers_range,
            half_up=self.spec.half_up,
        )

    def _learned_scale(self) -> torch.Tensor:
        """|s|, snapped to the nearest power of two (straight-through) when asked."""
        scale = self.scale.abs().clamp_min(SCALE_EPS)
        if self.spec.power_of_two:
            scale = scale + (power_of_two(scale.detach(), up=False) - scale).detach()
        return scale

    def _learned_fake_quant(self, x: torch.Tensor) -> torch.Tensor:
        scale = self._learned_scale()
        self.last_scale = scale.detach()
        if self.binary:
            return binary_fake_quantize(x, scale, self.axis)
        # LSQ gradient scaling: 1 / sqrt(elements per scale * q_max).
        grad_factor = 1.0 / math.sqrt(x.numel() / scale.numel() * max(self.q_max, 1))
        zero_point = self.zero_point.float()
        if self.spec.half_up:
            return learned_fake_quantize_half_up(
                x, scale, zero_point, self.q_min, self.q_max, self.axis, grad_factor
            )
        if self.axis is None:
            return torch._fake_quantize_learnable_per_tensor_affine(
                x, scale, zero_point, self.q_min, self.q_max, grad_factor
            )
        return torch._fake_quantize_learnable_per_channel_affine(
            x, scale, zero_point, self.axis, self.q_min, self.q_max, grad_factor
        )

    def extra_repr(self) -> str:
        sign = "auto" if self.signed is None else ("signed" if self.signed else "unsigned")
        kind = "binary" if self.binary else f"[{self.q_min}, {self.q_max}]"
        return (
            f"{self.role}, bits={self.spec.bits}, {sign} {kind}, {self.spec.granularity}, "
            f"range={self.spec.range}, symmetric={self.spec.symmetric}"
            + (", rounding=half_up" if self.spec.half_up else "")
        )
