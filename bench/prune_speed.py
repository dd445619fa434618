"""Channel pruning: does removing half the channels make a model faster on the CPU, by as
much as its MACs say, and how long does pruning take?

For torchvision's ResNet-18 (224x224, the size the studies prune), qdistill's SRResNet
(x2, 128x128 LR input) and the small digits CNN (batch 64), each pruned to 50% of the
channels per layer (LAMP importance, output and pixel-shuffle layers whole): PyTorch
eager latency of the unpruned and pruned model, measured side by side in interleaved
rounds (median), and the MAC ratio. ``speedup / mac_speedup`` near 1 means the
latency follows the MACs. Pruning time is the wall time of qdistill.prune_channels
(dependency graph, importance, surgery, MAC counts).

Usage: python bench/prune_speed.py [--rounds 7] [--iters 5]
Last line: RESULT key=value ...
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torchvision

from qdistill.models import build_model
from qdistill.prune.structured import ChannelPruning, prune_channels


def latency_ms(runners: dict, rounds: int, iters: int) -> dict[str, float]:
    """Median milliseconds per call of each runner over interleaved rounds."""
    with torch.no_grad():
        for run in runners.values():
            run()
        samples = {name: [] for name in runners}
        for _ in range(rounds):
            for name, run in runners.items():
                start = time.perf_counter()
                for _ in range(iters):
                    run()
                samples[name].append(1000 * (time.perf_counter() - start) / iters)
    return {name: statistics.median(v) for name, v in samples.items()}


def measure(name: str, model: torch.nn.Module, x: torch.Tensor, args) -> dict[str, float]:
    model.eval()
    pruned = copy.deepcopy(model)
    report = prune_channels(pruned, x, ChannelPruning(importance="lamp", ratio=0.5))
    times = latency_ms(
        {"full": lambda: model(x), "pruned": lambda: pruned(x)}, args.rounds, args.iters
    )
    speedup = times["full"] / times["pruned"]
    mac_speedup = 1 / report.mac_ratio
    print(
        f"{name:10s} input {list(x.shape)}  latency {times['full']:8.2f} -> "
        f"{times['pruned']:8.2f} ms"
        f"  speed-up x{speedup:.2f}  MACs {report.macs_before / 1e6:.1f}M -> "
        f"{report.macs_after / 1e6:.1f}M (x{mac_speedup:.2f})  prune {report.seconds:.2f}s"
    )
    return {"speedup": speedup, "mac_speedup": mac_speedup, "prune_s": report.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    resnet = measure("resnet18", torchvision.models.resnet18(), torch.randn(1, 3, 224, 224), args)
    sr = measure(
        "srresnet",
        build_model("srresnet", (3, 128, 128), 3, features=64, blocks=8),
        torch.randn(1, 3, 128, 128),
        args,
    )
    cnn = measure(
        "small_cnn", build_model("small_cnn", (1, 8, 8), 10), torch.randn(64, 1, 8, 8), args
    )
    fields = {
        "resnet18_speedup": resnet["speedup"],
        "resnet18_mac_speedup": resnet["mac_speedup"],
        "resnet18_speedup_per_mac_speedup": resnet["speedup"] / resnet["mac_speedup"],
        "resnet18_prune_s": resnet["prune_s"],
        "srresnet_speedup": sr["speedup"],
        "srresnet_mac_speedup": sr["mac_speedup"],
        "small_cnn_speedup": cnn["speedup"],
        "small_cnn_mac_speedup": cnn["mac_speedup"],
    }
    print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in fields.items()))


if __name__ == "__main__":
    main()
