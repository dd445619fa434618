"""``torchvision:<name>``: any torchvision classification model, built without weights
(nothing is downloaded) for the data's classes. Its options are torchvision's own
keyword arguments of that model (e.g. ``width_per_group`` for wide ResNets). Most
torchvision models expect RGB images (3, H, W) of at least 32x32."""

from __future__ import annotations

from typing import Any

from torch import nn

from qdistill.errors import ConfigError
from qdistill.models.registry import MODELS
from qdistill.registry import unknown_name


def _classification_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def torchvision_factory(name: str):
    """The factory of torchvision classification model ``name``."""
    known = _classification_names()
    if name not in known:
        raise unknown_name("torchvision model", name, known)

    def build(input_shape: tuple[int, ...], num_outputs: int, **options: Any) -> nn.Module:
        import torchvision

        if len(input_shape) != 3 or input_shape[0] != 3:
            raise ConfigError(
                f"torchvision:{name} takes RGB images (3, H, W); the data gives "
                f"{list(input_shape)} (use cifar10, image_folder or photos-style RGB data)"
            )
        try:
            return torchvision.models.get_model(
                name, weights=None, num_classes=num_outputs, **options
            )
        except TypeError as err:
            raise ConfigError(
                f"torchvision:{name} does not take {sorted(options)}: {err}"
            ) from None

    build.__doc__ = f"torchvision's {name}, randomly initialised"
    return build


MODELS.register_family("torchvision", torchvision_factory)
