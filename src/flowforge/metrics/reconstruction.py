"""Reconstruction quality of an autoencoder: PSNR and SSIM of images in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(x: Tensor, y: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB per image (B,) of images (B, C, H, W) in [0, 1].

    >>> round(float(psnr(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.1))[0]), 6)
    20.0
    """
    return -10 * torch.log10((x - y).square().flatten(1).mean(1).clamp_min(1e-10))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    """The normalised 2-D Gaussian window (1, 1, size, size) of SSIM."""
    g = torch.exp(-((torch.arange(size) - size // 2) ** 2).float() / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Structural similarity per image (B,) of images (B, C, H, W) in [0, 1] (Wang et al., 2004, "Image Quality
    Assessment: From Error Visibility to Structural Similarity": 11 x 11 Gaussian window, sigma 1.5, C1 = 0.01^2,
    C2 = 0.03^2, valid positions only, channels averaged; a smaller odd window on images under 11 px).

    >>> float(ssim(torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)).max()) < 1.0
    True
    """
    c, size = x.shape[1], min(11, *x.shape[-2:])
    size -= 1 - size % 2  # images smaller than the window (8 x 8 digits): the largest odd window that fits
    w = gaussian_window(size).to(x).expand(c, 1, -1, -1)  # (C, 1, size, size): one window per channel
    mu_x, mu_y = F.conv2d(x, w, groups=c), F.conv2d(y, w, groups=c)
    sxx = F.conv2d(x * x, w, groups=c) - mu_x**2
    syy = F.conv2d(y * y, w, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, w, groups=c) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


__all__ = ["gaussian_window", "psnr", "ssim"]
