"""Multi-layer perceptrons of the studies: one-hidden-layer DNNs and the KL_MLP pair."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from qdistill.models.registry import MODELS

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "hardtanh": nn.Hardtanh,
}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"activation {name!r} unknown; use one of {sorted(ACTIVATIONS)}") from None


class MLP(nn.Module):
    """Flatten -> [Linear -> (BatchNorm) -> activation -> (Dropout)] x N -> Linear."""

    def __init__(
        self,
        in_features: int,
        num_outputs: int,
        hidden: Sequence[int],
        act: str = "relu",
        dropout: float = 0.0,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden sizes must be positive integers, got {list(hidden)}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers.append(nn.Linear(width, size))
            if batchnorm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(activation(act))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_outputs)

    def forward(self, x):
        return self.classifier(self.features(x))


@MODELS.register("mlp")
def mlp(
    input_shape: tuple[int, ...],
    num_outputs: int,
    hidden: Sequence[int] = (300,),
    act: str = "relu",
    dropout: float = 0.0,
    batchnorm: bool = False,
) -> MLP:
    """An MLP of any depth and width (``hidden`` lists the hidden layer sizes)."""
    return MLP(math.prod(input_shape), num_outputs, hidden, act, dropout, batchnorm)


def _register_fixed(name: str, hidden: tuple[int, ...], doc: str) -> None:
    def factory(
        input_shape: tuple[int, ...], num_outputs: int, act: str = "relu", dropout: float = 0.0
    ) -> MLP:
        return MLP(math.prod(input_shape), num_outputs, hidden, act, dropout)

    factory.__doc__ = doc
    MODELS.register(name)(factory)


for _width in (1200, 800, 300, 30):
    _register_fixed(f"dnn_{_width}", (_width,), f"MLP with one hidden layer of {_width} neurons.")
_register_fixed("kl_mlp_teacher", (1200, 1200, 1200), "KL_MLP teacher: 3 hidden layers x 1200.")
_register_fixed("kl_mlp_student", (300, 300, 300), "KL_MLP student: 3 hidden layers x 300.")
