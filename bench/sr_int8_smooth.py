"""Why INT8 loses several dB on smooth super-resolution images, measured side by side.

An ESPCN x2 (Y channel) is trained briefly on the bundled photos, then quantized by PTQ
at W8A8, W8 (weights only), A8 (activations only), W8A8 with a 16-bit first input, and
W16A16. Every model is evaluated per image on two test sets: the bundled test photos
(textured, about 32-36 dB) and the same photos Gaussian-blurred (sigma 2 and 4: smooth,
about 52-56 dB), the blurred ones read from a folder through ``sr_folder`` (test images
only, at their own size).

Uniform 8-bit quantization of a signal spanning [0, 1] adds noise of step^2 / 12, a
PSNR of 20 log10(255 sqrt(12)) = 58.9 dB per quantizer when its range is exactly [0, 1];
calibrated ranges are wider (an ESPCN's hidden activations reach 1.3-1.9), and the
network stacks several quantizers and quantized weights, so an INT8 ESPCN cannot be
more accurate than about 50 dB. A textured image's float error (30-36 dB) dwarfs that
floor; a smooth image's (50+ dB) does not.

Usage: python bench/sr_int8_smooth.py [--epochs 30] [--out /tmp/sr-int8-smooth]
       [--checkpoint espcn.safetensors]  (a trained x2 Y-channel model instead)
Last line: RESULT key=value ...
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from qdistill.data import build_dataset
from qdistill.data.images import BUNDLED_TEST, bundled_photo
from qdistill.experiment.stages.quantize import quantize_calibrated
from qdistill.experiment.stages.training import train_with_validation
from qdistill.models import build_model, load_model
from qdistill.quant import QuantPlan
from qdistill.tasks import make_task
from qdistill.train import TrainConfig

CPU = torch.device("cpu")
PLANS = {
    "w8a8": "w8a8",
    "w8": "w8",
    "a8": "a8",
    "w8a8_first_a16": {"*": "w8a8", "feature_extraction.0": "w8a16"},
    "w16a16": "w16a16",
}


def blurred(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """A uint8 (3, H, W) photo blurred by a separable Gaussian (reflect padding)."""
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).repeat(3, 1, 1, 1)
    padded = F.pad(image[None].float(), (radius,) * 4, mode="reflect")
    rows = F.conv2d(padded, kernel.view(3, 1, 1, -1), groups=3)
    smooth = F.conv2d(rows, kernel.view(3, 1, -1, 1), groups=3)
    return smooth[0].round().clamp(0, 255).byte()


def write_smooth_photos(folder: Path) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name in BUNDLED_TEST:
        for sigma in (2, 4):
            image = blurred(bundled_photo(name), sigma).permute(1, 2, 0).numpy()
            Image.fromarray(image).save(folder / f"{name.split(':')[-1]}-blur{sigma}.png")


def per_image(task, model) -> dict[str, float]:
    metrics = task.evaluate(model)
    return {k.split("@", 1)[1]: v for k, v in metrics.items() if k.startswith("test_psnr_y@")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--checkpoint", type=Path, help="a trained x2 Y model to use")
    parser.add_argument("--out", type=Path, default=Path("/tmp/sr-int8-smooth"))
    args = parser.parse_args()
    write_smooth_photos(args.out / "smooth")
    textured = make_task(build_dataset("photos", scale=2, channels="y"), CPU)
    smooth_data = build_dataset("sr_folder", test=str(args.out / "smooth"), channels="y")
    smooth = make_task(smooth_data, CPU)
    if args.checkpoint:
        model, _ = load_model(args.checkpoint)
    else:
        torch.manual_seed(0)
        model = build_model("espcn", textured.data.input_shape, textured.data.num_outputs)
        train_with_validation(model, textured, TrainConfig(epochs=args.epochs), 0, "espcn")
    calibration = list(itertools.islice(textured.calibration_batches(), 8))
    models = {"float": model.eval()}
    for label, plan in PLANS.items():
        quantized, _ = quantize_calibrated(model, QuantPlan.from_config(plan), calibration, 8, CPU)
        models[label] = quantized.eval()
    result = {}
    for set_name, task in (("textured", textured), ("smooth", smooth)):
        scores = {label: per_image(task, m) for label, m in models.items()}
        bicubic = {k.split("@", 1)[1]: v for k, v in task.bicubic.items() if "psnr_y@" in k}
        print(f"\n{set_name}: PSNR-Y (dB) per image, quantized as the difference to float")
        print(f"{'image':>18} {'bicubic':>8} {'float':>7} " + " ".join(f"{p:>14}" for p in PLANS))
        for image, value in scores["float"].items():
            deltas = " ".join(f"{scores[p][image] - value:>+14.2f}" for p in PLANS)
            print(f"{image:>18} {bicubic[image]:>8.2f} {value:>7.2f} {deltas}")
        float_mean = statistics.fmean(scores["float"].values())
        result[f"{set_name}_float_db"] = float_mean
        for label in PLANS:
            loss = float_mean - statistics.fmean(scores[label].values())
            result[f"{set_name}_{label}_loss_db"] = loss
    print("\nRESULT " + " ".join(f"{k}={v:.2f}" for k, v in result.items()))


if __name__ == "__main__":
    main()
