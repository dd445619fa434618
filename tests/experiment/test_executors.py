"""Runs side by side: the scheduler's float-model dependencies, what a failure means, the
local process pool (same records as one run at a time, logs per run, survives kill -9)
and the store under concurrent writers."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from qdistill.errors import DivergenceError
from qdistill.experiment import ResultsStore, parse_experiment, plan_runs, run_experiment
from qdistill.experiment.dispatch import Dispatch, record_failures
from qdistill.experiment.executors import Execution, threads_per_worker
from qdistill.experiment.progress import SweepProgress
from qdistill.experiment.schedule import RunScheduler, float_models_needed

TASK = SimpleNamespace(headline=SimpleNamespace(key="test_acc"), unit="%")


def _scheduler(tiny_config, cache, ready=lambda path: False):
    config = parse_experiment(tiny_config)
    runs = plan_runs(config)
    return runs, RunScheduler(runs, lambda run: float_models_needed(config, run, cache), ready)


def test_each_float_model_is_trained_once_while_its_students_wait(tmp_path, tiny_config):
    runs, scheduler = _scheduler(tiny_config, tmp_path)
    names = [run.name for run in runs]
    assert names == ["teacher", "ptq-w8a8", "ptq-w2a2", "qat", "small"]
    teacher = scheduler.next_run()
    # "small" starts from its own pretrained float model, so it need not wait
    small = scheduler.next_run()
    assert (teacher.name, small.name) == ("teacher", "small")
    assert scheduler.next_run() is None  # the PTQ/QAT students wait for the teacher
    scheduler.finished(small)
    assert scheduler.next_run() is None
    scheduler.finished(teacher)
    assert [scheduler.next_run().name for _ in range(3)] == ["ptq-w8a8", "ptq-w2a2", "qat"]
    assert scheduler.pending == 0 and scheduler.next_run() is None


def test_float_models_already_cached_hold_nothing_back(tmp_path, tiny_config):
    runs, scheduler = _scheduler(tiny_config, tmp_path, ready=lambda path: True)
    assert [scheduler.next_run() for _ in runs] == runs


def test_a_float_model_that_failed_blocks_only_the_runs_that_need_it(tmp_path, tiny_config):
    _, scheduler = _scheduler(tiny_config, tmp_path)
    teacher, small = scheduler.next_run(), scheduler.next_run()
    scheduler.finished(teacher, "RuntimeError: boom")
    blocked = scheduler.take_blocked()
    assert [b.run.name for b in blocked] == ["ptq-w8a8", "ptq-w2a2", "qat"]
    assert "failed to train in teacher seed 0 (RuntimeError: boom)" in blocked[0].reason
    assert scheduler.pending == 0
    scheduler.finished(small)  # unaffected


class ScriptedExecutor:
    """Completes each submitted run at once with the next scripted outcome for its name
    (a record by default, or an exception)."""

    def __init__(self, record_of, workers=2, **script):
        self.workers, self.record_of, self.script = workers, record_of, script
        self.submitted = []

    def submit(self, run):
        self.submitted.append(run.name)
        future = Future()
        outcomes = self.script.get(run.name.replace("-", "_"), [])
        outcome = outcomes.pop(0) if outcomes else None
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            record = self.record_of(name=run.name, run_id=run.run_id, metrics={"test_acc": 90.0})
            future.set_result(record)
        return future

    def close(self, cancel=False):
        pass


def _dispatch(tiny_config, tmp_path, executor):
    runs, scheduler = _scheduler(tiny_config, tmp_path / "cache")
    recorded = []
    progress = SweepProgress(len(runs), TASK, live=False)
    return Dispatch(executor, scheduler, progress, recorded.append), recorded


def test_a_crash_is_retried_once_then_recorded_and_the_sweep_goes_on(
    tmp_path, tiny_config, record_of
):
    crash = [RuntimeError("worker lost"), RuntimeError("worker lost again")]
    executor = ScriptedExecutor(record_of, teacher=crash, small=[MemoryError()])
    dispatch, recorded = _dispatch(tiny_config, tmp_path, executor)
    failures = dispatch.run_all()
    assert executor.submitted == ["teacher", "small", "teacher", "small"]
    assert [r.name for r in recorded] == ["small"]  # its second attempt succeeded
    assert [(f.name, f.attempts) for f in failures] == [
        ("teacher", 2),
        ("ptq-w8a8", 0),
        ("ptq-w2a2", 0),
        ("qat", 0),
    ]
    assert failures[0].error == "RuntimeError: worker lost again"
    assert "worker lost again" in failures[0].traceback
    record_failures(tmp_path / "failures.jsonl", failures)
    lines = (tmp_path / "failures.jsonl").read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == [f.name for f in failures]


def test_a_qdistill_error_stops_the_sweep_after_the_runs_in_flight(
    tmp_path, tiny_config, record_of
):
    diverged = DivergenceError("training diverged, the loss exploded")
    executor = ScriptedExecutor(record_of, small=[diverged])
    dispatch, recorded = _dispatch(tiny_config, tmp_path, executor)
    with pytest.raises(DivergenceError, match="exploded"):
        dispatch.run_all()
    # teacher and small were in flight together: the teacher's record is kept, nothing
    # else starts, and the input error is not retried
    assert executor.submitted == ["teacher", "small"]
    assert [r.name for r in recorded] == ["teacher"]


def test_threads_are_shared_among_workers():
    assert threads_per_worker(2, cpus=16) == 8
    assert threads_per_worker(3, cpus=2) == 1


def _metrics(outcome):
    return {r.run_id: r.metrics for r in outcome.records}


def test_two_workers_record_what_one_run_at_a_time_records(tmp_path, tiny_config):
    config = parse_experiment(tiny_config)
    serial = run_experiment(config, tmp_path / "serial", execution=Execution(threads=1))
    pooled = run_experiment(config, tmp_path / "pool", execution=Execution(workers=2))
    assert pooled.executed == 5 and not pooled.failures
    assert [r.name for r in pooled.records] == [r.name for r in serial.records]  # plan order
    assert _metrics(pooled) == _metrics(serial)  # same seeds, same threads per run
    assert {r.versions["torch_threads"] for r in pooled.records} == {1}
    logs = sorted(path.name for path in (tmp_path / "pool" / "logs").iterdir())
    assert len(logs) == 5 and all(name.endswith(".log") for name in logs)
    teacher_log = next((tmp_path / "pool" / "logs").glob("teacher-s0-*.log")).read_text()
    assert "epoch" in teacher_log  # the run's own progress lines went to its log
    again = run_experiment(config, tmp_path / "pool", execution=Execution(workers=2))
    assert again.executed == 0 and again.skipped == 5


def _append_records(path, worker, count, queue):
    from conftest import make_record

    store = ResultsStore(path)
    for index in range(count):
        store.append(make_record(name=f"w{worker}-{index}", run_id=f"{worker}-{index}"))
    queue.put(worker)


def test_the_store_keeps_every_line_whole_under_concurrent_writers(tmp_path):
    path = tmp_path / "results.jsonl"
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    writers = [
        context.Process(target=_append_records, args=(path, worker, 40, queue))
        for worker in range(4)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    assert sorted(queue.get(timeout=5) for _ in writers) == [0, 1, 2, 3]
    records = ResultsStore(path).load()
    assert len(records) == 160 and len({r.run_id for r in records}) == 160


def _descendants(pid: int) -> set[int]:
    """Processes below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_parallel_sweep_killed_with_sigkill_resumes_where_it_stopped(tmp_path, tiny_config):
    tiny_config["teacher"]["train"]["epochs"] = 10
    tiny_config["students"][1]["train"]["epochs"] = 20  # qat: still running at the kill
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(tiny_config))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "qdistill.cli", "run", str(config), "--out", str(out)]
    driver = subprocess.Popen([*command, "--workers", "2"], stdout=subprocess.DEVNULL)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (
        not results.exists() or len(results.read_text().splitlines()) < 2
    ):
        time.sleep(0.05)
    workers = _descendants(driver.pid)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    kept = [json.loads(line)["run_id"] for line in results.read_text().splitlines()]
    assert 2 <= len(kept) < 5, "the sweep should have been killed part-way"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    assert workers and not any(_alive(pid) for pid in workers), "workers outlived the sweep"

    again = subprocess.run(
        [*command, "--workers", "2"], capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert "taking over" in again.stdout  # the dead sweep's lock
    assert again.stdout.count("done earlier, skipped") == len(kept)
    lines = results.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is whole
    assert len(records) == 5 and len({r["run_id"] for r in records}) == 5
    assert [r["run_id"] for r in records[: len(kept)]] == kept
    checkpoints = {Path(r["checkpoint"]).name for r in records}
    assert checkpoints <= {path.name for path in (out / "checkpoints").iterdir()}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_killed_mid_run_is_replaced_and_its_runs_retried(tmp_path, tiny_config, capsys):
    # long enough that the teacher is still training when the workers are killed (with 10
    # epochs it could finish first on a quiet machine, and nothing would be in flight)
    tiny_config["teacher"]["train"]["epochs"] = 60
    config = parse_experiment(tiny_config)
    outcome = {}
    sweep = threading.Thread(
        target=lambda: outcome.update(
            done=run_experiment(config, tmp_path, execution=Execution(workers=2))
        )
    )
    sweep.start()
    log = tmp_path / "logs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(log.glob("teacher-*.log")):
        time.sleep(0.05)
    victims = [pid for pid in _descendants(os.getpid()) if b"forkserver" in _cmdline(pid)]
    workers = [pid for pid in victims if _parent(pid) in victims]
    assert workers, "no pool worker found"
    for pid in workers:  # the busy one among them, whichever it is
        os.kill(pid, signal.SIGKILL)
    sweep.join(240)
    done = outcome["done"]
    assert not done.failures and len(done.records) == 5
    printed = capsys.readouterr().out
    assert "failed: its worker process died (killed, or out of memory); trying it once more" in (
        printed
    )
    assert "[try 2] " in printed  # the runs in flight went to the new pool


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


@pytest.mark.slow
def test_the_ray_executor_records_what_the_local_pool_records(tmp_path, tiny_config):
    pytest.importorskip("ray")
    config = parse_experiment(tiny_config)
    pooled = run_experiment(config, tmp_path / "pool", execution=Execution(workers=2))
    on_ray = run_experiment(
        config, tmp_path / "ray", execution=Execution("ray", workers=2, threads=1)
    )
    assert not on_ray.failures and [r.name for r in on_ray.records] == [
        r.name for r in pooled.records
    ]
    assert _metrics(on_ray) == _metrics(pooled)
    assert len(list((tmp_path / "ray" / "logs").glob("*.log"))) == 5
    assert all((tmp_path / "ray" / r.checkpoint).is_file() for r in on_ray.records)
