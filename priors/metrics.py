"""Image quality metrics per sample: MSE, PSNR and SSIM (Wang et al. 2004, Gaussian window).

One home for the layers above: the prior zoo's quality checks (`priors.zoo.checks`) and the solvers'
traces (`solvers.tracking`, re-exported as `solvers.metrics`) measure with these."""

from __future__ import annotations

import torch

import linops


def _per_sample(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def mse(x: torch.Tensor, x_true: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample: (1/n) ||x - x_true||^2, shape (B,)."""
    return _per_sample((x - x_true).abs() ** 2).mean(dim=1)


def data_range_of(x_true: torch.Tensor) -> torch.Tensor:
    """Per-sample dynamic range max - min of the reference images, shape (B,)."""
    flat = _per_sample(x_true)
    return flat.max(dim=1).values - flat.min(dim=1).values


def psnr(x: torch.Tensor, x_true: torch.Tensor, data_range=None) -> torch.Tensor:
    """Peak signal-to-noise ratio 10 log10(R^2 / MSE) per sample, R the data range (default: per-sample
    range of x_true)."""
    r = data_range_of(x_true) if data_range is None else torch.as_tensor(data_range, dtype=x.dtype)
    return 10 * torch.log10(r**2 / mse(x, x_true))


def ssim_window(sigma: float = 1.5) -> int:
    """The side of SSIM's Gaussian window for a given std (11 for 1.5, as torchmetrics)."""
    return int(3.5 * sigma + 0.5) * 2 + 1


def ssim(x: torch.Tensor, x_true: torch.Tensor, data_range=None, *, sigma: float = 1.5, k1=0.01, k2=0.03):
    """Structural similarity per sample for images (B, C, H, W), averaged over pixels and channels:

        SSIM = (2 mu_x mu_y + c1)(2 s_xy + c2) / ((mu_x^2 + mu_y^2 + c1)(s_x^2 + s_y^2 + c2)),

    local statistics from a Gaussian window (std `sigma`, 11 x 11 for 1.5) with reflect padding,
    c_i = (k_i R)^2 with R the data range (default: per-sample range of x_true). Averaged over the
    whole image, border included, as torchmetrics (which the DDGM paper used) does.
    """
    if x.ndim != 4:
        raise ValueError(f"ssim expects images of shape (B, C, H, W), got {tuple(x.shape)}")
    if min(x.shape[-2:]) < ssim_window(sigma):
        raise ValueError(f"ssim needs images of at least {ssim_window(sigma)} x {ssim_window(sigma)} pixels "
                         f"(its Gaussian window), got {tuple(x.shape[-2:])}")
    r = data_range_of(x_true) if data_range is None else torch.as_tensor(data_range, dtype=x.dtype)
    r = r.reshape(-1, 1, 1, 1) if r.ndim else r
    c1, c2 = (k1 * r) ** 2, (k2 * r) ** 2
    size = ssim_window(sigma)
    window = linops.gaussian_blur(x.shape[1:], sigma, "reflect", size=size, dtype=x.dtype).to(x.device)
    mu_x, mu_y = window @ x, window @ x_true
    var_x = (window @ (x * x) - mu_x**2).clamp(min=0)
    var_y = (window @ (x_true * x_true) - mu_y**2).clamp(min=0)
    cov = window @ (x * x_true) - mu_x * mu_y
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return _per_sample(index).mean(dim=1)
