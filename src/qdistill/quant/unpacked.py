"""Float layers whose weights PyTorch keeps outside any nn.Linear, rebuilt from Linears.

nn.MultiheadAttention packs its query/key/value projections into one parameter and runs
them (and its output projection) inside one fused function; nn.LSTM and nn.GRU hold
their gate weights as flat parameters of a fused kernel. Neither can be quantized layer
by layer. The modules here compute the same function with one nn.Linear per projection
(attention: ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``; recurrence: ``cells.l<k>.ih``
for the inputs of layer k and ``cells.l<k>.hh`` for its hidden state, ``l<k>_reverse``
for the backward direction), so quantize() quantizes them like any Linear and the
exporters find them like any Linear. A recurrent layer runs its time steps in a Python
loop, so an export unrolls them for the traced sequence length.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from qdistill.errors import ConfigError


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """An nn.Linear holding copies of ``weight`` and ``bias``."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    layer.weight = nn.Parameter(weight.detach().clone(), weight.requires_grad)
    if bias is not None:
        layer.bias = nn.Parameter(bias.detach().clone(), bias.requires_grad)
    return layer


def _additive(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A mask as nn.MultiheadAttention reads it: boolean True = may not attend, float =
    added to the attention scores."""
    if mask is None or mask.is_floating_point():
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, -math.inf)


class UnpackedMultiheadAttention(nn.Module):
    """nn.MultiheadAttention with its four projections as nn.Linear layers."""

    # What nn.TransformerEncoderLayer reads before choosing its fused fast path: no
    # packed projection, so it calls this module like any attention.
    _qkv_same_embed_dim = False
    in_proj_weight = None
    in_proj_bias = None

    def __init__(self, attention: nn.MultiheadAttention) -> None:
        super().__init__()
        if not can_unpack_attention(attention):
            raise ConfigError("attention with bias_k/bias_v or add_zero_attn cannot be unpacked")
        embed = attention.embed_dim
        bias = attention.in_proj_bias
        biases = bias.chunk(3) if bias is not None else (None, None, None)
        if attention._qkv_same_embed_dim:
            weights = attention.in_proj_weight.chunk(3)
        else:
            weights = (attention.q_proj_weight, attention.k_proj_weight, attention.v_proj_weight)
        self.q_proj, self.k_proj, self.v_proj = (
            _linear(w, b) for w, b in zip(weights, biases, strict=True)
        )
        self.out_proj = _linear(attention.out_proj.weight, attention.out_proj.bias)
        self.embed_dim, self.num_heads = embed, attention.num_heads
        self.head_dim = embed // attention.num_heads
        self.dropout = attention.dropout
        self.batch_first = attention.batch_first
        self.train(attention.training)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint.")
        batched = query.dim() == 3
        if not batched:
            query, key, value = (x.unsqueeze(0) for x in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        batch, target, source = query.shape[0], query.shape[1], key.shape[1]
        q, k, v = (
            self._heads(projection(x))
            for projection, x in ((self.q_proj, query), (self.k_proj, key), (self.v_proj, value))
        )
        mask = self._merged_mask(attn_mask, key_padding_mask, batch, target, source, q.dtype)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores + mask
        weights = F.dropout(scores.softmax(-1), self.dropout, self.training)
        context = (weights @ v).transpose(1, 2).reshape(batch, target, self.embed_dim)
        output = self.out_proj(context)
        if not batched:
            output = output.squeeze(0)
        elif not self.batch_first:
            output = output.transpose(0, 1)
        if not need_weights:
            return output, None
        weights = weights.mean(1) if average_attn_weights else weights
        return output, weights if batched else weights.squeeze(0)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, length, embed) -> (batch, heads, length, head_dim)."""
        return x.reshape(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def _merged_mask(self, attn_mask, key_padding_mask, batch, target, source, dtype):
        """One additive mask broadcastable to (batch, heads, target, source), or None."""
        mask = _additive(attn_mask, dtype)
        if mask is not None and mask.dim() == 3:  # (batch * heads, target, source)
            mask = mask.reshape(batch, self.num_heads, target, source)
        padding = _additive(key_padding_mask, dtype)
        if padding is not None:
            padding = padding.reshape(batch, 1, 1, source)
            mask = padding if mask is None else mask + padding
        return mask


def can_unpack_attention(attention: nn.MultiheadAttention) -> bool:
    return attention.bias_k is None and not attention.add_zero_attn


_RECURRENT_MODES = ("LSTM", "GRU")  # nn.RNN (tanh/ReLU) is left float, and named


class UnpackedRecurrent(nn.Module):
    """nn.LSTM or nn.GRU with each layer's and direction's input and hidden projections
    as nn.Linear layers (``cells.l<k>[_reverse].ih`` / ``.hh``), same weights and math."""

    def __init__(self, recurrent: nn.LSTM | nn.GRU) -> None:
        super().__init__()
        if not can_unpack_recurrent(recurrent):
            raise ConfigError("only nn.LSTM (without proj_size) and nn.GRU can be unpacked")
        self.mode = recurrent.mode
        self.hidden_size, self.num_layers = recurrent.hidden_size, recurrent.num_layers
        self.batch_first, self.dropout = recurrent.batch_first, recurrent.dropout
        self.directions = ["", "_reverse"] if recurrent.bidirectional else [""]
        self.cells = nn.ModuleDict()
        for layer in range(self.num_layers):
            for suffix in self.directions:
                tag = f"l{layer}{suffix}"
                cell = nn.Module()
                cell.ih = _linear(
                    getattr(recurrent, f"weight_ih_{tag}"),
                    getattr(recurrent, f"bias_ih_{tag}", None),
                )
                cell.hh = _linear(
                    getattr(recurrent, f"weight_hh_{tag}"),
                    getattr(recurrent, f"bias_hh_{tag}", None),
                )
                self.cells[tag] = cell
        self.train(recurrent.training)

    def forward(self, x, hx=None):
        if isinstance(x, PackedSequence):
            raise ConfigError(
                "a quantized LSTM/GRU takes padded tensors, not a PackedSequence; pad the "
                "batch (torch.nn.utils.rnn.pad_packed_sequence) before the layer"
            )
        batched = x.dim() == 3
        if not batched:
            x = x.unsqueeze(1)
            hx = None if hx is None else _map_state(hx, lambda t: t.unsqueeze(1))
        elif self.batch_first:
            x = x.transpose(0, 1)
        batch = x.shape[1]
        is_lstm = self.mode == "LSTM"
        if hx is None:
            zeros = x.new_zeros(self.num_layers * len(self.directions), batch, self.hidden_size)
            hx = (zeros, zeros) if is_lstm else zeros
        h0, c0 = hx if is_lstm else (hx, None)
        finals_h, finals_c = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(self.directions):
                index = layer * len(self.directions) + direction
                state = (h0[index], c0[index] if is_lstm else None)
                sequence, (h, c) = self._run(self.cells[f"l{layer}{suffix}"], x, state, suffix)
                outputs.append(sequence)
                finals_h.append(h)
                finals_c.append(c)
            x = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
            if layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, self.training)
        h_n = torch.stack(finals_h)
        state = (h_n, torch.stack(finals_c)) if is_lstm else h_n
        if not batched:
            return x.squeeze(1), _map_state(state, lambda t: t.squeeze(1))
        return (x.transpose(0, 1) if self.batch_first else x), state

    def _run(self, cell: nn.Module, x: torch.Tensor, state, suffix: str):
        """One layer in one direction over (steps, batch, features): its outputs in time
        order and its final (h, c) (c is None for a GRU)."""
        h, c = state
        projected = cell.ih(x)  # every step's input projection at once
        steps = range(x.shape[0] - 1, -1, -1) if suffix else range(x.shape[0])
        outputs = [None] * x.shape[0]
        quantizer = getattr(cell.hh, "input_quantizer", None)  # once quantized
        with quantizer.observe_once() if quantizer is not None else contextlib.nullcontext():
            for t in steps:
                h, c = self._step(cell, projected[t], h, c)
                outputs[t] = h
        return torch.stack(outputs), (h, c)

    def _step(self, cell: nn.Module, projected: torch.Tensor, h, c):
        """One time step: the new (h, c) (c is None for a GRU). Gates are sliced, not
        chunked: torch.onnx writes chunk() as an ONNX sequence, which qonnx cannot type."""
        size = self.hidden_size
        if self.mode == "LSTM":
            gates = projected + cell.hh(h)
            i, f, g, o = (gates[..., k * size : (k + 1) * size] for k in range(4))
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        hidden = cell.hh(h)
        x_r, x_z, x_n = (projected[..., k * size : (k + 1) * size] for k in range(3))
        h_r, h_z, h_n = (hidden[..., k * size : (k + 1) * size] for k in range(3))
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        return (1 - z) * torch.tanh(x_n + r * h_n) + z * h, None


def _map_state(state, function):
    return tuple(function(t) for t in state) if isinstance(state, tuple) else function(state)


def can_unpack_recurrent(recurrent: nn.Module) -> bool:
    return recurrent.mode in _RECURRENT_MODES and not getattr(recurrent, "proj_size", 0)


def unpack_layers(model: nn.Module) -> nn.Module:
    """Replace, in place, every nn.MultiheadAttention, nn.LSTM and nn.GRU of ``model`` that
    can be unpacked by its Linear-based equivalent; returns the model (or the replacement
    when ``model`` itself is one)."""
    for name, module in list(model.named_modules()):
        replacement = None
        if isinstance(module, nn.MultiheadAttention) and can_unpack_attention(module):
            replacement = UnpackedMultiheadAttention(module)
        elif type(module) in (nn.LSTM, nn.GRU) and can_unpack_recurrent(module):
            replacement = UnpackedRecurrent(module)
        if replacement is None:
            continue
        if not name:
            return replacement
        model.set_submodule(name, replacement)
    return model
