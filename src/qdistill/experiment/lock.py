"""One sweep per output folder: a lock file holding the owner's pid, host and start time.

A second ``qdistill run`` on the same folder is refused with the owner's details. A lock
left by a process that no longer exists on this host (a killed sweep) is taken over with
a warning; a lock from another host cannot be checked and is refused, naming the file to
delete once that sweep is known to be gone.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from qdistill.console import console
from qdistill.errors import OutputError
from qdistill.paths import output_errors

LOCK_FILE = ".qdistill.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_holder(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _stale(holder: dict) -> bool:
    """True when the holder ran on this host and has exited (or the file is unreadable)."""
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return True
    return holder.get("host") == socket.gethostname() and not _alive(pid)


def _try_create(path: Path, holder: dict) -> bool:
    with output_errors():
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(holder, handle)
    return True


@contextmanager
def output_lock(out_dir: Path) -> Iterator[Path]:
    """Hold ``out_dir``'s lock for the duration of the block."""
    path = out_dir / LOCK_FILE
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if not _try_create(path, me):
        holder = _read_holder(path)
        if not _stale(holder):
            raise OutputError(
                f"another sweep (pid {holder['pid']} on {holder.get('host')}, since "
                f"{holder.get('since')}) is writing {out_dir}; wait for it or choose another "
                f"--out (delete {path} if that sweep is gone)"
            )
        console.print(
            f"[yellow]warning:[/] taking over {path} from pid {holder.get('pid')}, which has exited"
        )
        path.unlink(missing_ok=True)
        if not _try_create(path, me):
            raise OutputError(f"another sweep took {path} at the same moment; run again")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
