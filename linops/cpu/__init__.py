"""CPU kernels (numba) for operators whose torch reference is slow or memory-hungry, registered in the
kernel table (linops/backends.py) at import; numba itself is imported only when a kernel first runs.

    Radon, FanBeamRadon   radon.py   matrix-free Joseph projection (ray-driven) and its exact transpose
                                     (row- and column-owned gathers, no atomics), multithreaded, batched

`status()` says whether the kernels can run ("numba 0.60.0 importable" or the import error). Without numba the
operators fall back to their torch reference (for the projectors: the chunked torch matrix-free path, or the
stored sparse matrix), with the same results.
"""

from __future__ import annotations

import functools
import importlib

from ..backends import Kernel, Layout, kernels
from ..operators.tomography.projector import ApplyCost, JosephProjector


@functools.cache
def _numba_problem() -> str | None:
    """None when numba imports, else why not (attempted once per process)."""
    try:
        importlib.import_module("numba")
    except Exception as error:  # ImportError, or an llvmlite that fails to load
        return f"numba not importable: {type(error).__name__}: {error}"
    return None


def status() -> str:
    """numba's state in words."""
    problem = _numba_problem()
    if problem is not None:
        return problem
    return f"numba {importlib.import_module('numba').__version__} importable"


def _radon_forward(op, columns):
    from . import radon

    return radon.forward(op, columns)


def _radon_adjoint(op, columns):
    from . import radon

    return radon.adjoint(op, columns)


#: ns per entry (a + b B) of the numba kernels on B columns, fitted with the projector's other constants
#: (linops/operators/tomography/projector.py; benchmarks/results/radon_method_calibration_1t_cpu.json)
NUMBA_RADON_COST = ApplyCost(forward_ns=(1.16, 0.112), adjoint_ns=(1.55, 0.336))

RADON = kernels.register(
    JosephProjector,
    "cpu",
    Kernel(
        "numba", _radon_forward, _radon_adjoint, available=_numba_problem, cost=NUMBA_RADON_COST, layout=Layout.COLUMNS
    ),
)

__all__ = ["RADON", "status"]
