"""The order runs may execute in side by side: a run that needs a float model (its
teacher, or the pretrained model it starts from) waits while another run is training that
same model, so each float model is trained once and then read from the cache."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from qdistill.experiment.context import float_model_path, float_model_recipe
from qdistill.experiment.planner import Run
from qdistill.experiment.schema import ExperimentConfig


def float_models_needed(config: ExperimentConfig, run: Run, cache_dir: Path) -> tuple[Path, ...]:
    """The cached float-model files ``run`` reads, or trains and writes when absent."""
    needed = []
    if run.needs_teacher:
        teacher = config.teacher
        recipe = float_model_recipe(config, teacher.model, teacher.train, run.seed)
        needed.append(float_model_path(cache_dir, teacher.model, recipe))
    if run.start == "pretrained" and run.pretrain is not None:
        recipe = float_model_recipe(config, run.model, run.pretrain, run.seed)
        needed.append(float_model_path(cache_dir, run.model, recipe))
    return tuple(dict.fromkeys(needed))


@dataclass(frozen=True)
class Blocked:
    run: Run
    reason: str


class RunScheduler:
    """Hands out runs in plan order as their float models allow.

    A float model is *ready* when its file exists or a run that needed it finished; it is
    *claimed* by the run that will train it; it has *failed* when that run failed, and every
    run waiting for it is then blocked with the reason rather than training it again.
    """

    def __init__(
        self,
        runs: Iterable[Run],
        needs: Callable[[Run], tuple[Path, ...]],
        ready: Callable[[Path], bool] = Path.is_file,
    ) -> None:
        self._pending = list(runs)
        self._needs = {run.run_id: needs(run) for run in self._pending}
        self._ready = {key for keys in self._needs.values() for key in keys if ready(key)}
        self._claimed: dict[Path, str] = {}  # float model -> run id training it
        self._failed: dict[Path, str] = {}  # float model -> why its run failed

    @property
    def pending(self) -> int:
        return len(self._pending)

    def next_run(self) -> Run | None:
        """The first pending run whose float models are ready or free to train, claimed."""
        for run in self._pending:
            keys = self._needs[run.run_id]
            if any(key in self._failed for key in keys):
                continue
            if all(key in self._ready or key not in self._claimed for key in keys):
                self._pending.remove(run)
                for key in keys:
                    if key not in self._ready:
                        self._claimed[key] = run.run_id
                return run
        return None

    def finished(self, run: Run, error: str | None = None) -> None:
        """Record ``run``'s final outcome (``error`` is None when it succeeded)."""
        for key in self._needs[run.run_id]:
            if self._claimed.get(key) != run.run_id:
                continue
            del self._claimed[key]
            if error is None:
                self._ready.add(key)
            else:
                self._failed[key] = (
                    f"the float model it needs failed to train in {run.name} seed {run.seed} "
                    f"({error})"
                )

    def take_blocked(self) -> list[Blocked]:
        """Pending runs that can never run because a float model they need failed."""
        blocked = []
        for run in list(self._pending):
            reasons = [self._failed[key] for key in self._needs[run.run_id] if key in self._failed]
            if reasons:
                self._pending.remove(run)
                blocked.append(Blocked(run, reasons[0]))
        return blocked
