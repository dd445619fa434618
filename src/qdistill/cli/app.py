"""The typer application, its global options and the small parsers commands share."""

from __future__ import annotations

import errno
from typing import Annotated, Any

import typer
import yaml
from typer.core import TyperGroup

from qdistill.console import console, error_console
from qdistill.errors import ConfigError, QdistillError
from qdistill.paths import explain_os_error

state = {"debug": False}


def _fail(message: str, code: int) -> typer.Exit:
    error_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code)


class Commands(TyperGroup):
    """Runs a command; user errors, file-system errors and Ctrl-C end in one line."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            error_console.print("interrupted; finished runs are kept in results.jsonl")
            raise typer.Exit(130) from None
        except (QdistillError, OSError, EOFError) as err:
            if state["debug"]:
                raise
            if isinstance(err, QdistillError):
                raise _fail(str(err), 2) from None
            if isinstance(err, EOFError):
                raise _fail(f"a file ended early ({err or 'truncated'}); replace it", 2) from None
            if err.errno == errno.EPIPE:
                raise
            raise _fail(explain_os_error(err), 2) from None


app = typer.Typer(
    cls=Commands,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Quantize, distil and measure neural networks for real hardware.",
)


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
    trust_module: Annotated[
        list[str] | None,
        typer.Option(
            "--trust-module",
            help="Allow configs to build models from this package's code "
            "(model: {module: pkg.mod:build}); repeatable.",
        ),
    ] = None,
) -> None:
    state["debug"] = debug
    if trust_module:
        from qdistill.models.user_module import trust_modules

        trust_modules(trust_module)


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
