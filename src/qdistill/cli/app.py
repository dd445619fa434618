"""The typer application, its global options and the small parsers commands share."""

from __future__ import annotations

from typing import Annotated, Any

import typer
import yaml

from qdistill.console import console
from qdistill.errors import ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Quantize, distil and measure neural networks for real hardware.",
)
state = {"debug": False}


def _print_version(value: bool) -> None:
    if value:
        from qdistill import __version__

        console.print(f"qdistill {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    state["debug"] = debug


def key_values(pairs: list[str] | None, what: str) -> dict[str, Any]:
    """Parse ``key=value`` options; values are read as YAML scalars/lists."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} {pair!r} must look like key=value")
        try:
            options[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            options[key] = value
    return options


def int_list(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(
            f"{what} {text!r} must be comma-separated integers, e.g. 1,8,64"
        ) from None
