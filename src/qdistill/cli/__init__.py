"""The ``qdistill`` command line: parses arguments, calls the library; errors the user can
fix (and Ctrl-C) end in one line, see :class:`qdistill.cli.app.Commands`."""

from __future__ import annotations

from qdistill.cli import deploy, experiments, models  # noqa: F401  (register the commands)
from qdistill.cli.app import app


def main() -> None:
    """Console entry point: user errors print one line and exit with status 2."""
    app()
