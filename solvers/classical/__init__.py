"""Classical reconstructions: the baselines the diffusion solvers are measured against."""

from .algebraic import AlgebraicReconstruction, gradient_descent, stable_step_size
from .cgls import CGLSReconstruction
from .fbp import FilteredBackprojection
from .lsqr import LSQRReconstruction
from .tikhonov import TikhonovSVD
from .tv import PDHG, CondatVu, TVReconstruction, total_variation

__all__ = [
    "AlgebraicReconstruction",
    "gradient_descent",
    "stable_step_size",
    "CGLSReconstruction",
    "CondatVu",
    "FilteredBackprojection",
    "LSQRReconstruction",
    "PDHG",
    "TikhonovSVD",
    "TVReconstruction",
    "total_variation",
]
