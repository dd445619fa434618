import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from qdistill.metrics import fidelity, haarpsi, lpips_metric, psnr, rgb_to_y, ssim
from qdistill.metrics.perceptual import LPIPS_ENV


def test_psnr_known_values():
    target = torch.full((1, 1, 16, 16), 0.5, dtype=torch.float64)
    assert math.isinf(float(psnr(target, target)[0]))
    noisy = target + 0.1  # MSE 0.01 -> 20 dB
    assert float(psnr(noisy, target)[0]) == pytest.approx(20.0, abs=1e-9)
    half = target.clone()
    half[..., :8, :] += 0.2  # MSE 0.02 -> 10 log10(50)
    assert float(psnr(half, target)[0]) == pytest.approx(10 * math.log10(50), abs=1e-9)


def test_ssim_identical_and_against_scikit_image():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 40, 50, generator=generator)
    assert float(ssim(image, image)[0]) == pytest.approx(1.0, abs=1e-12)
    noisy = (image + 0.1 * torch.randn(image.shape, generator=generator)).clamp(0, 1)
    reference = structural_similarity(
        image[0].numpy(),
        noisy[0].numpy(),
        channel_axis=0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
    )
    assert float(ssim(noisy, image)[0]) == pytest.approx(reference, abs=1e-5)
    assert float(ssim(noisy, image)[0]) < 0.99


def test_y_channel_matches_the_bt601_formula():
    rgb = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    images = rgb.T.reshape(1, 3, 1, 4)
    expected = [(16 + 65.481) / 255, (16 + 128.553) / 255, (16 + 24.966) / 255, 235 / 255]
    assert rgb_to_y(images).flatten().tolist() == pytest.approx(expected, abs=1e-6)
    black = torch.zeros(1, 3, 1, 1)
    assert float(rgb_to_y(black)) == pytest.approx(16 / 255)
    with pytest.raises(ValueError, match="RGB"):
        rgb_to_y(torch.zeros(1, 1, 4, 4))


def test_fidelity_crops_the_border_and_reports_y_and_rgb():
    target = torch.rand(1, 3, 30, 30, generator=torch.Generator().manual_seed(1))
    broken_border = target.clone()
    broken_border[..., :2, :] = 0  # only the cropped border differs
    scores = fidelity(broken_border, target, border=2, rgb=True)
    assert math.isinf(scores["psnr_y"]) and math.isinf(scores["psnr_rgb"])
    assert scores["ssim_y"] == pytest.approx(1.0)
    assert fidelity(broken_border, target, border=1, rgb=True)["psnr_rgb"] < 30
    grey = fidelity(target[:, :1], target[:, :1], border=2, rgb=False)
    assert set(grey) == {"psnr_y", "ssim_y"}


def test_haarpsi_ranks_degradations():
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    blurred = torch.nn.functional.avg_pool2d(image, 3, 1, 1)
    assert haarpsi(image, image) == pytest.approx(1.0, abs=1e-4)
    assert haarpsi(blurred, image) < 0.95


def test_lpips_unavailable_without_weights(monkeypatch, tmp_path):
    monkeypatch.delenv(LPIPS_ENV, raising=False)
    metric = lpips_metric(None)
    assert not metric.available and "no AlexNet weights" in metric.reason
    assert "do not exist" in lpips_metric(tmp_path / "missing.pth").reason
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    assert "cannot read" in lpips_metric(garbage).reason
    with pytest.raises(RuntimeError, match="unavailable"):
        metric(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_lpips_with_a_local_alexnet_state_dict(monkeypatch, tmp_path):
    from torchvision.models import alexnet

    torch.manual_seed(0)
    path = tmp_path / "alexnet.pth"
    torch.save(alexnet().state_dict(), path)  # torchvision's format, random weights
    monkeypatch.setenv(LPIPS_ENV, str(path))
    metric = lpips_metric()
    assert metric.available, metric.reason
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    assert metric(image, image) == pytest.approx(0.0, abs=1e-6)
    assert metric(image, 1 - image) > metric(image, (image + 0.02).clamp(0, 1)) > 0
    grey = image[:, :1]
    assert metric(grey, grey) == pytest.approx(0.0, abs=1e-6)
    wrong = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(3)}, wrong)
    assert "not an AlexNet state dict" in lpips_metric(wrong).reason
    pickled = tmp_path / "pickled.pth"
    torch.save({"features.0.weight": np.zeros(3)}, pickled)  # needs unpickling: refused
    assert not lpips_metric(pickled).available
