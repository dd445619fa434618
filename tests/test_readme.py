"""The README's Python blocks run as copied: one after another in one namespace, as a
reader pasting them into one session would."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_python_block_of_the_readme_runs_as_copied(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)  # files the blocks write land here
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"README.md python block {number}", "exec"), namespace)
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "cnn-w4a4.safetensors").is_file()
    assert namespace["report"].passed
    reloaded, mine, qmodel = namespace["reloaded"], namespace["mine"], namespace["qmodel"]
    x = namespace["data"].test.x[:16]
    assert (reloaded(x) - qmodel.eval()(x)).abs().max() < 1e-5
    assert (mine.eval()(x) - qmodel(x)).abs().max() < 1e-5
