"""priors: what an image looks like, as denoise / score / eps under the VE convention."""

from .analytic import (
    EmpiricalPrior,
    GaussianMixturePrior,
    GaussianPosterior,
    GaussianPrior,
    MixturePosterior,
    isotropic_power_spectrum,
    stationary_covariance,
)
from .dirac import (
    DegradationAware,
    DegradationAwarePrior,
    DegradationProcess,
    GeometricNoise,
    IncrementalReconstructionLoss,
)
from .dirac_gaussian import GaussianDegradationAwarePrior
from .network import Conditioning, NetworkPrior, Prediction, TimestepLookup, VPSchedule
from .patch import PatchDSMLoss, PatchPrior
from .protocol import (
    SYMMETRIC,
    UNIT,
    Convention,
    ConvertedPrior,
    Prior,
    SigmaRanged,
    log_uniform_sigma,
    per_sample_sigma,
    sigma_like,
    standardized,
)
from .tiled import TiledPrior, bump_window
from .zoo import load

__all__ = [
    "SYMMETRIC",
    "UNIT",
    "Convention",
    "ConvertedPrior",
    "Prior",
    "SigmaRanged",
    "log_uniform_sigma",
    "sigma_like",
    "standardized",
    "per_sample_sigma",
    "EmpiricalPrior",
    "GaussianMixturePrior",
    "GaussianPosterior",
    "GaussianPrior",
    "MixturePosterior",
    "isotropic_power_spectrum",
    "stationary_covariance",
    "Conditioning",
    "NetworkPrior",
    "Prediction",
    "TimestepLookup",
    "VPSchedule",
    "DegradationAware",
    "DegradationAwarePrior",
    "DegradationProcess",
    "GaussianDegradationAwarePrior",
    "GeometricNoise",
    "IncrementalReconstructionLoss",
    "PatchDSMLoss",
    "PatchPrior",
    "TiledPrior",
    "bump_window",
    "load",
]
