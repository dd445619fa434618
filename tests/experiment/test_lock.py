import json
import os
import socket
import subprocess
import sys

import pytest

from qdistill.errors import OutputError
from qdistill.experiment import parse_experiment, run_experiment
from qdistill.experiment.lock import LOCK_FILE, output_lock


def _holder(pid, host=None):
    return json.dumps({"pid": pid, "host": host or socket.gethostname(), "since": "earlier"})


def test_the_lock_is_exclusive_and_released(tmp_path):
    with output_lock(tmp_path) as path:
        holder = json.loads(path.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        refused = pytest.raises(OutputError, match=rf"another sweep \(pid {os.getpid()} on")
        with refused, output_lock(tmp_path):
            pass
    assert not (tmp_path / LOCK_FILE).exists()
    with pytest.raises(RuntimeError), output_lock(tmp_path):
        raise RuntimeError("a failing sweep")
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    (tmp_path / LOCK_FILE).write_text(_holder(int(dead.stdout)))
    with output_lock(tmp_path):
        assert "has exited" in capsys.readouterr().out
    (tmp_path / LOCK_FILE).write_text("{torn")  # an unreadable lock is stale too
    with output_lock(tmp_path):
        pass


def test_a_lock_from_another_host_is_refused_naming_the_file(tmp_path):
    (tmp_path / LOCK_FILE).write_text(_holder(1, host="elsewhere"))
    refused = pytest.raises(OutputError, match=rf"on elsewhere.*delete {tmp_path / LOCK_FILE}")
    with refused, output_lock(tmp_path):
        pass


def test_a_second_sweep_on_a_held_folder_does_nothing(tmp_path, tiny_config):
    (tmp_path / LOCK_FILE).write_text(_holder(os.getpid()))
    with pytest.raises(OutputError, match="another sweep"):
        run_experiment(parse_experiment(tiny_config), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]
