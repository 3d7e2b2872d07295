"""The spectral toolkit: SVD, spectral norm, Krylov solvers and the pseudo-inverse.

Free functions dispatching on operator structure (per-type rules, a computed fallback), with
algorithms as typed values:

    svd(A, algorithm=None | DenseSVD() | GramEigh() | SymmetricGramEigh() | RandomizedSVD(rank=k | threshold=t))
    norm(A, algorithm=None | Lanczos(tol, max_iter, seed) | PowerIteration(tol, max_iter, seed))
    solve(A, b, CG(...) | CGLS(...) | LSQR(...), damping=lambda, x0=None)
    pinv(A, SVDPinv(rtol, atol) | CGLS(...) | LSQR(...))

`A.svd()`, `A.norm()` and `A.pinv()` call these: they are registered in `linops.base.operations` below.
Results are cached per operator instance.
"""

from ..base import operations
from ..operators.decomposition import SVD
from . import cache
from .bases import ComplementProjector, Hartley2, PairRotation, is_coisometry, is_isometry, is_unitary
from .computed import DENSE_LIMIT, DenseSVD, GramEigh, RandomizedSVD
from .krylov import CG, CGLS, LSQR, SolveResult, solve
from .pseudoinverse import IterativePinv, SVDPinv, pinv
from .spectral_norm import Lanczos, PowerIteration, lanczos, norm, norm_rules, power_iteration
from .svd_dispatch import cached_svd, structured_svd, svd, svd_rules
from .symmetric import AdaptedBasis, BlockBasis, SymmetricGramEigh

__all__ = [
    "CG",
    "CGLS",
    "DENSE_LIMIT",
    "LSQR",
    "Lanczos",
    "SVD",
    "ComplementProjector",
    "DenseSVD",
    "GramEigh",
    "Hartley2",
    "IterativePinv",
    "PairRotation",
    "PowerIteration",
    "RandomizedSVD",
    "SVDPinv",
    "SolveResult",
    "SymmetricGramEigh",
    "AdaptedBasis",
    "BlockBasis",
    "cache",
    "is_coisometry",
    "is_isometry",
    "is_unitary",
    "lanczos",
    "norm",
    "norm_rules",
    "pinv",
    "power_iteration",
    "solve",
    "cached_svd",
    "structured_svd",
    "svd",
    "svd_rules",
]

operations.register(norm=norm, svd=svd, pinv=pinv)
