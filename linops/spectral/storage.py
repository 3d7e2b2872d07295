"""Computed SVDs as plain tensors, and back: what the disk cache (cache.py) writes and reads.

Two layouts, told apart by their keys:

    flat   {"U": (m, k), "s": (k,), "V": (n, k)}           dense factors (DenseSVD, GramEigh, RandomizedSVD)
    block  {"characters": (b,), "s": (k,), "V.<chi>": (n_chi, k_chi), "U.<chi>": (m_chi, k_chi)}
           the reduced factors of `SymmetricGramEigh`, one pair per isotypic block; the symmetry-adapted
           bases are rebuilt from the operator's declared symmetries on load

Every value is a tensor, so files load with torch.load(weights_only=True).
"""

from __future__ import annotations

import torch

from ..base import LinearOperator
from ..operators import Matrix
from .computed import flat_svd
from .decomposition import SVD
from .symmetric import BlockBasis, block_svd_from_tensors, block_svd_to_tensors


def svd_to_tensors(svd: SVD) -> dict[str, torch.Tensor]:
    """The factors of a computed SVD as a dict of CPU tensors (layouts in the module docstring)."""
    if isinstance(svd.V, BlockBasis):
        return block_svd_to_tensors(svd)
    if isinstance(svd.U, Matrix) and isinstance(svd.V, Matrix):
        return {"U": svd.U.matrix.cpu(), "s": svd.s.cpu(), "V": svd.V.matrix.cpu()}
    raise TypeError(f"svd_to_tensors stores computed SVDs (dense or block factors), got {svd!r}")


def svd_from_tensors(A: LinearOperator, data: dict) -> SVD:
    """The SVD of A from `svd_to_tensors`' dict (KeyError or ValueError when it does not fit A)."""
    if "characters" in data:
        return block_svd_from_tensors(A, data)
    return flat_svd(A, data["U"], data["s"], data["V"])
