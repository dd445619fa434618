"""Sweep scaling: the same 12-run sweep executed one run at a time and with runs side by
side, on this machine, in one process after the other.

The sweep: two seeds of a small-CNN teacher on the bundled digits, QAT students at
W8A8/W4A4/W3A3/W2A2 and a QKD student at W2A2 (6 runs per seed, the students waiting for
their seed's teacher). Executions, each into a fresh output folder:

- ``serial``: ``--workers 1`` with the default threads (every CPU for the one run);
- ``serial_1t``: ``--workers 1 --threads 1`` (what each parallel worker gets);
- ``local_2``: ``--workers 2`` (one thread each);
- ``ray_2``: ``--executor ray --workers 2`` on a local Ray instance (when Ray is
  installed: ``pip install 'qdistill[ray]'``; ``--no-ray`` skips it).

``speedup_2_workers`` is ``serial_1t``'s wall time over ``local_2``'s: the same arithmetic
(same seeds and threads per run), so ``metrics_equal`` must be 1 (every run's metrics in
``local_2``, and ``ray_2``, equal ``serial_1t``'s exactly). ``speedup_vs_all_threads``
compares with ``serial``, the default, whose one run at a time uses every thread: what a
user gains by adding ``--workers 2``. ``ray_vs_local`` is ``ray_2``'s wall time over
``local_2``'s, and ``ray_extra_s`` the difference (Ray's start, its workers' imports and
its shutdown). Wall time is the whole ``run_experiment`` call: planning, data, workers'
start, runs.

Usage: python bench/sweep_scaling.py [--workers 2] [--no-ray] [--epochs 24]
Last line: RESULT key=value ...
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import yaml

from qdistill.console import console
from qdistill.experiment import parse_experiment, run_experiment
from qdistill.experiment.executors import Execution, available_cpus

SWEEP = """
name: sweep-scaling
seeds: [0, 1]
data: {{name: digits}}
teacher:
  model: small_cnn
  train: {{epochs: {teacher_epochs}, batch_size: 64, optimizer: {{name: adam, lr: 0.003}}}}
students:
  - name: qat
    method: qat
    bits: [w8a8, w4a4, w3a3, w2a2]
    train: {{epochs: {epochs}, batch_size: 64, optimizer: {{name: adam, lr: 0.001}}}}
  - name: qkd
    method: qkd
    bits: w2a2
    distill: {{alpha: 0.7, temperature: 8}}
    phases:
      self_study: &phase {{epochs: {phase_epochs}, optimizer: {{name: adam, lr: 0.001}}}}
      co_study: *phase
      tutoring: *phase
"""


def execute(config, execution: Execution, folder: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    outcome = run_experiment(config, folder, execution=execution)
    wall = time.perf_counter() - started
    assert len(outcome.records) == 12 and not outcome.failures, outcome.failures
    return wall, {r.run_id: r.metrics for r in outcome.records}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    args = parser.parse_args()
    args.ray = not args.no_ray and importlib.util.find_spec("ray") is not None
    text = SWEEP.format(
        teacher_epochs=2 * args.epochs, epochs=args.epochs, phase_epochs=args.epochs // 3 + 1
    )
    config = parse_experiment(yaml.safe_load(text), "sweep_scaling.py")
    executions = {
        "serial": Execution(),
        "serial_1t": Execution(threads=1),
        f"local_{args.workers}": Execution(workers=args.workers),
    }
    if args.ray:
        executions[f"ray_{args.workers}"] = Execution("ray", workers=args.workers)
    walls, metrics = {}, {}
    with tempfile.TemporaryDirectory() as root:
        for name, execution in executions.items():
            with console.capture():  # the runs' own lines would bury the table
                walls[name], metrics[name] = execute(config, execution, Path(root) / name)
            print(f"{name:10s} {walls[name]:7.1f} s")
    parallel = [name for name in executions if not name.startswith("serial")]
    equal = all(metrics[name] == metrics["serial_1t"] for name in parallel)
    print(f"{available_cpus()} CPUs; metrics of the parallel executions equal serial_1t's: {equal}")
    local = walls[f"local_{args.workers}"]
    result = {
        f"speedup_{args.workers}_workers": walls["serial_1t"] / local,
        "speedup_vs_all_threads": walls["serial"] / local,
        "metrics_equal": int(equal),
    }
    if args.ray:
        result["ray_vs_local"] = walls[f"ray_{args.workers}"] / local
        result["ray_extra_s"] = walls[f"ray_{args.workers}"] - local
    print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in result.items()))


if __name__ == "__main__":
    main()
