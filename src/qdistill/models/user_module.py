"""``module:<package.module>:<callable>``: a model built by the user's own code, e.g.
``model: {module: my_package.my_model:build, options: {width: 64}}`` in YAML.

The callable is called as ``build(input_shape=..., num_outputs=..., **options)`` and must
return an ``nn.Module``. Naming code in a YAML file runs it (any importable callable would
do, with any options), so a module must be trusted first, by the person running
qdistill: ``--trust-module my_package`` or ``QDISTILL_TRUSTED_MODULES=my_package`` (a
comma-separated list of packages or modules; a package trusts its submodules).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from torch import nn

from qdistill.errors import ConfigError
from qdistill.models.registry import MODELS

TRUST_VARIABLE = "QDISTILL_TRUSTED_MODULES"


def trusted_modules() -> list[str]:
    return [name.strip() for name in os.environ.get(TRUST_VARIABLE, "").split(",") if name.strip()]


def trust_modules(names: list[str]) -> None:
    """Trust ``names`` for this process and the workers it starts."""
    os.environ[TRUST_VARIABLE] = ",".join(dict.fromkeys([*trusted_modules(), *names]))


def _is_trusted(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in trusted_modules())


def _callable(member: str):
    module_name, sep, attribute = member.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(
            f"model 'module:{member}' must name a module and a callable, as "
            "module:my_package.my_model:build"
        )
    if not _is_trusted(module_name):
        raise ConfigError(
            f"model module {module_name!r} would run code named in a config file; if it is "
            f"yours, trust it with --trust-module {module_name.split('.')[0]} (or "
            f"{TRUST_VARIABLE}={module_name.split('.')[0]})"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(
            f"model module {module_name!r} does not import ({err}); install it or add its "
            "folder to PYTHONPATH"
        ) from None
    build = getattr(module, attribute, None)
    if not callable(build):
        raise ConfigError(f"module {module_name!r} has no callable {attribute!r}")
    return build


def user_factory(member: str):
    """The factory of ``module:<member>``."""
    build = _callable(member)

    def factory(input_shape: tuple[int, ...], num_outputs: int, **options: Any) -> nn.Module:
        try:
            model = build(input_shape=input_shape, num_outputs=num_outputs, **options)
        except TypeError as err:
            raise ConfigError(
                f"module:{member} must accept input_shape=, num_outputs= and its options "
                f"{sorted(options)}: {err}"
            ) from None
        if not isinstance(model, nn.Module):
            raise ConfigError(
                f"module:{member} returned {type(model).__name__}, not a torch nn.Module"
            )
        return model

    factory.__doc__ = f"the user's model built by {member}"
    return factory


MODELS.register_family("module", user_factory)
