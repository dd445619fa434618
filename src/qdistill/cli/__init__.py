"""The ``qdistill`` command line: parses arguments, calls the library, maps errors to exit 2."""

from __future__ import annotations

import sys

from qdistill.cli import deploy, experiments, models  # noqa: F401  (register the commands)
from qdistill.cli.app import app, state
from qdistill.console import console, error_console
from qdistill.errors import QdistillError


def main() -> None:
    """Console entry point: user errors print one line and exit with status 2."""
    try:
        app()
    except QdistillError as err:
        if state["debug"]:
            raise
        error_console.print(f"[bold red]error:[/] {err}", soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted; finished runs are kept in results.jsonl")
        sys.exit(130)
