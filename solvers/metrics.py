"""Image quality metrics per sample (MSE, PSNR, SSIM): they live in `priors.metrics`, the lowest layer that
measures images (the prior zoo's quality checks use them too); re-exported here for the solvers' traces."""

from priors.metrics import data_range_of, mse, psnr, ssim, ssim_window

__all__ = ["data_range_of", "mse", "psnr", "ssim", "ssim_window"]
