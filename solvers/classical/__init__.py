"""Classical reconstructions: the baselines the diffusion solvers are measured against."""

from ..steps import gradient_descent, stable_step_size
from .algebraic import AlgebraicReconstruction
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
