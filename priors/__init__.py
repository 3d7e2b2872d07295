"""priors: what an image looks like, as denoise / score / eps under the VE convention."""

from .protocol import SYMMETRIC, UNIT, Convention, ConvertedPrior, Prior, log_uniform_sigma, sigma_like, standardized

__all__ = [
    "SYMMETRIC",
    "UNIT",
    "Convention",
    "ConvertedPrior",
    "Prior",
    "log_uniform_sigma",
    "sigma_like",
    "standardized",
]
