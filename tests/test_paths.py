import errno

import pytest
import torch

from qdistill.errors import ConfigError, OutputError
from qdistill.paths import inside, writable_file, writable_folder, write_atomically
from qdistill.train import load_checkpoint, save_checkpoint


def test_output_locations_are_checked_before_work(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="a file stands where a folder is needed"):
        writable_folder(a_file)
    with pytest.raises(OutputError, match="a file stands where a folder is needed"):
        writable_folder(a_file / "below")
    with pytest.raises(OutputError, match="is a folder"):
        writable_file(tmp_path)
    assert writable_folder(tmp_path / "new" / "deep").is_dir()
    assert sorted(p.name for p in (tmp_path / "new" / "deep").iterdir()) == []  # probe gone


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.safetensors"
    save_checkpoint(target, {"w": torch.ones(3)}, {"version": 1})

    def disk_full(tmp):
        tmp.write_bytes(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    with pytest.raises(OutputError, match="the disk is full"):
        write_atomically(target, disk_full)
    state, meta = load_checkpoint(target)
    assert meta == {"version": 1} and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_inside_refuses_names_that_leave_the_folder(tmp_path):
    assert inside(tmp_path, "run-s0.safetensors") == tmp_path / "run-s0.safetensors"
    for name in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(ConfigError, match="would write outside"):
            inside(tmp_path, name)
