"""solvers: diffusion-based and classical reconstruction as short loops over operator and prior calls.

Every solver is a dataclass of hyperparameters (checked when it is built) called as
`solver(y, A, prior, *, generator=None, callback=None, progress=True, x_true=None)`, plus `convention=`
(the data's units) for those with a prior. y has shape (B, *A.out_shape); a numpy y is converted to A's
dtype; the result is a `Result` holding a torch tensor. See `solvers.problem` for the checks and units.

The call is written down as `solvers.Solver` (`solvers.protocol`). A solver file holds its algorithm box only:
its preamble is `solvers.start.start(...)` (checks, schedule, range check, tracker, counted prior) and the
steps it shares with others (Eq. 2, the guidance gradient, a Langevin step, gradient descent) are in
`solvers.steps`.
"""

from . import schedules
from .classical import (
    AlgebraicReconstruction,
    CGLSReconstruction,
    FilteredBackprojection,
    LSQRReconstruction,
    TikhonovSVD,
    TVReconstruction,
)
from .cvdm import CVDM, CVDMResult
from .ddgm import DDGM, DDGMUnconditional
from .ddrm import DDRM
from .dirac import Dirac, ErrorScaledGuidance, StdScaledGuidance
from .dirac_schedule import GreedyDegradationScheduler, SeverityTimes, UniformSeverities
from .dps import DPS
from .padis import PaDIS
from .protocol import Solver
from .tracking import Result, StepRecord

__all__ = [
    "schedules",
    "Solver",
    "Result",
    "StepRecord",
    "AlgebraicReconstruction",
    "CGLSReconstruction",
    "LSQRReconstruction",
    "FilteredBackprojection",
    "TikhonovSVD",
    "TVReconstruction",
    "CVDM",
    "CVDMResult",
    "DDGM",
    "DDGMUnconditional",
    "DDRM",
    "DPS",
    "PaDIS",
    "Dirac",
    "StdScaledGuidance",
    "ErrorScaledGuidance",
    "UniformSeverities",
    "SeverityTimes",
    "GreedyDegradationScheduler",
]
