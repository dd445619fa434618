"""Distillation cost per epoch: plain student vs KD with a live teacher vs KD with cache.

On the bundled digits (1169 training images, batch 64), for two teacher/student pairs.
Every variant runs qdistill's real training path (``fit`` / ``distill``) for a few
epochs; rounds interleave the variants and the median epoch time is reported.

Usage: python bench/kd_overhead.py [--rounds 7] [--epochs 10]
Last line: RESULT key=value ...
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch

from qdistill.data import build_dataset
from qdistill.distill import DistillConfig, TeacherOutputCache, distill
from qdistill.models import build_model
from qdistill.tasks.classification import training_batches
from qdistill.train import TrainConfig, fit

PAIRS = {
    "mlp_from_cnn": (("small_cnn", {}), ("kl_mlp_student", {})),
    "cnn_from_cnn": (("small_cnn", {}), ("small_cnn", {"widths": [8, 16, 32]})),
}


def measure_pair(data, teacher, student, config, kd, rounds: int) -> tuple[dict, float]:
    """Median epoch seconds of each variant, and the cache's one-off build time."""
    started = time.perf_counter()
    cache = TeacherOutputCache.build(teacher, data.train)
    cache_build = time.perf_counter() - started

    def batches():
        return training_batches(data, 64, seed=0)

    variants = {
        "plain": lambda s: fit(s, batches(), config, quiet=True),
        "kd_live": lambda s: distill(s, teacher, batches(), config, kd, quiet=True),
        "kd_cache": lambda s: distill(s, teacher, batches(), config, kd, cache=cache, quiet=True),
    }
    for run in variants.values():  # warm-up
        run(copy.deepcopy(student))
    samples = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            model = copy.deepcopy(student)
            start = time.perf_counter()
            run(model)
            samples[name].append((time.perf_counter() - start) / config.epochs)
    return {name: statistics.median(v) for name, v in samples.items()}, cache_build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    data = build_dataset("digits")
    config = TrainConfig(epochs=args.epochs, restore_best=False)
    kd = DistillConfig(alpha=0.7, temperature=8.0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"digits train {len(data.train)}, batch 64, {args.rounds} rounds x {args.epochs} epochs"
    )
    results = {}
    for pair, ((t_name, t_opts), (s_name, s_opts)) in PAIRS.items():
        torch.manual_seed(0)
        teacher = build_model(t_name, data.input_shape, 10, **t_opts).eval()
        student = build_model(s_name, data.input_shape, 10, **s_opts)
        times, cache_build = measure_pair(data, teacher, student, config, kd, args.rounds)
        line = "  ".join(f"{k} {v * 1e3:7.1f} ms" for k, v in times.items())
        print(
            f"{pair} ({s_name} <- {t_name}): epoch {line}  (cache built once: "
            f"{cache_build * 1e3:.0f} ms)"
        )
        results[f"{pair}_live_vs_plain"] = times["kd_live"] / times["plain"]
        results[f"{pair}_cache_vs_plain"] = times["kd_cache"] / times["plain"]
    print("target: kd with cache <= 1.10x plain")
    print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in results.items()))


if __name__ == "__main__":
    main()
