"""Full-reference image quality: PSNR and SSIM, on RGB or on the Y channel of YCbCr,
with the border of ``scale`` pixels cropped as super-resolution papers do."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# ITU-R BT.601 luma for RGB in [0, 1], as MATLAB's rgb2ycbcr: Y in [16/255, 235/255].
_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
_Y_OFFSET = 16.0 / 255.0


def rgb_to_y(images: torch.Tensor) -> torch.Tensor:
    """Y channel (N, 1, H, W) of float RGB images (N, 3, H, W) in [0, 1]."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected RGB images (N, 3, H, W), got {tuple(images.shape)}")
    r, g, b = images.unbind(dim=1)
    return (_Y_OFFSET + _Y_WEIGHTS[0] * r + _Y_WEIGHTS[1] * g + _Y_WEIGHTS[2] * b)[:, None]


def quantize_8bit(images: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to 8-bit levels, as a saved output image would be."""
    return (images.clamp(0.0, 1.0) * 255.0).round() / 255.0


def shave(images: torch.Tensor, border: int) -> torch.Tensor:
    if border <= 0:
        return images
    if min(images.shape[-2:]) <= 2 * border:
        raise ValueError(f"image {tuple(images.shape[-2:])} too small to crop {border} pixels")
    return images[..., border:-border, border:-border]


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR (dB) of each image in the batch; identical images give +inf."""
    _same_shape(prediction, target)
    mse = (prediction.double() - target.double()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def _gaussian_kernel(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """SSIM of each image (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01,
    K2 0.03, valid region only), averaged over channels. The Gaussian is applied as two
    1-D passes (it is separable), in float64."""
    _same_shape(prediction, target)
    if min(prediction.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11, got {tuple(prediction.shape)}")
    channels = prediction.shape[1]
    g = _gaussian_kernel()
    rows, cols = (
        g.view(1, 1, 11, 1).expand(channels, 1, 11, 1),
        g.view(1, 1, 1, 11).expand(channels, 1, 1, 11),
    )
    x, y = prediction.double(), target.double()

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, rows, groups=channels), cols, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    structure = (2 * cov + c2) / (var_x + var_y + c2)
    return (luminance * structure).flatten(1).mean(dim=1)


def fidelity(
    prediction: torch.Tensor, target: torch.Tensor, border: int, rgb: bool
) -> dict[str, float]:
    """PSNR and SSIM of one image pair (1, C, H, W), 8-bit rounded, border cropped;
    ``_y`` metrics on the Y channel and, for RGB images, plain ones over all channels."""
    prediction = quantize_8bit(prediction)
    target = quantize_8bit(target)
    y_pred = rgb_to_y(prediction) if rgb else prediction
    y_true = rgb_to_y(target) if rgb else target
    y_pred, y_true = shave(y_pred, border), shave(y_true, border)
    result = {"psnr_y": float(psnr(y_pred, y_true)[0]), "ssim_y": float(ssim(y_pred, y_true)[0])}
    if rgb:
        p, t = shave(prediction, border), shave(target, border)
        result.update(psnr_rgb=float(psnr(p, t)[0]), ssim_rgb=float(ssim(p, t)[0]))
    return result


def _same_shape(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
