"""The one rich console qdistill prints through, and its progress-bar factory."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Logs and CI capture output without a terminal; rich would wrap them at 80 columns.
console = Console(highlight=False, width=None if Console().is_terminal else 140)


def progress_bar(transient: bool = True) -> Progress:
    """A progress bar that renders only on an interactive terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=not console.is_terminal,
    )


# Errors go to stderr so they never mix with results piped from stdout.
error_console = Console(stderr=True, highlight=False)
