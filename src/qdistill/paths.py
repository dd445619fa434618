"""Output locations: checked writable before any work, written atomically, and kept inside
the folder they belong to.

Every write of a result (checkpoint, export, cache, report) goes through
:func:`write_atomically`: the data lands in a hidden temporary file beside the target that
replaces it only once complete, and is removed when the write fails, so a full disk never
leaves a torn file or a stray ``.tmp`` behind. File-system failures become one-line
:class:`~qdistill.errors.OutputError` messages.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from qdistill.errors import ConfigError, OutputError


def explain_os_error(err: OSError) -> str:
    """One line for a file-system failure: what failed, on which path, what to do."""
    where = f" ({err.filename})" if err.filename else ""
    if err.errno == errno.ENOSPC:
        return f"the disk is full{where}; free some space and run again"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"no permission to write{where}; choose a location you can write (--out)"
    if err.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"a file stands where a folder is needed{where}; choose another location"
    reason = err.strerror or str(err)
    return f"{reason}{where}; check that the location exists and you can write it"


@contextmanager
def output_errors() -> Iterator[None]:
    """Turn an OSError inside the block into a one-line OutputError."""
    try:
        yield
    except OSError as err:
        raise OutputError(explain_os_error(err)) from None


def writable_folder(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove a file can be created in it."""
    folder = Path(folder)
    with output_errors():
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder))
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".qdistill-write-check-{os.getpid()}"
        try:
            probe.write_bytes(b"")
        finally:
            probe.unlink(missing_ok=True)
    return folder


def writable_file(path: str | Path) -> Path:
    """Check, before any work, that ``path`` can be written: its folder is writable and
    the path itself is not a folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name to write")
    writable_folder(path.parent)
    return path


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # writers in parallel never share one
    with output_errors():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            write(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (UTF-8)."""
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def inside(folder: Path, *parts: str) -> Path:
    """``folder / parts``, refused when it resolves outside ``folder`` (a crafted name)."""
    path = folder.joinpath(*parts)
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ConfigError(
            f"{'/'.join(parts)!r} would write outside {folder}; use a plain name without "
            "path separators or '..'"
        )
    return path
