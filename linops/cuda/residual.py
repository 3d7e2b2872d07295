"""The CuPy kernels' fused data-fidelity gradients A^H (A x - y), registered as the kernels' `normal_residual`
(linops.normal_residual asks the kernel table for them, linops/residual.py):

    Mask            m (x - y)                          1 kernel (diagonal.py)
    Diagonal        w (w x - y) for real w             1 kernel (diagonal.py)
    Radon, fan      A^T (A x - y): the subtraction fused into the forward kernel (radon.py)
    Blur family     the same (blur.py)

Each returns None where it does not apply (complex data, a dtype other than the operator's), and the torch
rules or the generic expression take over.
"""

from __future__ import annotations


def real_inputs(A, x, y) -> bool:
    """x and y real with A's dtype: what the fused kernels handle (anything else takes the generic path)."""
    return not A.dtype.is_complex and x.dtype == A.dtype and y.dtype == A.dtype


def subtracting_forward(forward, adjoint):
    """The `normal_residual` of a kernel whose forward(op, x, subtract=y) returns A x - y in the same pass."""

    def normal_residual(A, x, y):
        """A^T (A x - y) with the subtraction done by A's forward kernel."""
        if not real_inputs(A, x, y):
            return None
        return adjoint(A, forward(A, x, subtract=y))

    return normal_residual
