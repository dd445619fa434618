"""Quality metrics: classification accuracy; PSNR/SSIM and perceptual image metrics."""

from qdistill.metrics.classification import evaluate_classifier, top1_accuracy
from qdistill.metrics.image import fidelity, psnr, rgb_to_y, ssim
from qdistill.metrics.perceptual import LPIPS, haarpsi, lpips_metric

__all__ = [
    "LPIPS",
    "evaluate_classifier",
    "fidelity",
    "haarpsi",
    "lpips_metric",
    "psnr",
    "rgb_to_y",
    "ssim",
    "top1_accuracy",
]
