"""Which implementation an operator runs: the torch reference or a CuPy kernel.

The CuPy kernels are registered in the kernel table (linops/backends.py) for device type "cuda"; an operator
with a registered kernel asks the table in its `_apply` / `_adjoint`, and the kernel runs when

    the tensor is on a CUDA device,  its dtype is float32 or float64,  and CuPy imports,

unless a backend is forced for the current context (thread or task):

    with linops.cuda.backend(Backend.TORCH):    # the torch reference everywhere, e.g. for parity checks
        y = A @ x
    with linops.cuda.backend(Backend.CUPY):     # the CuPy kernels, or an error saying why they cannot run
        y = A @ x

Forcing is the table's (`kernels.force("cupy", ...)`), so it covers every registered CuPy kernel.
`choose_backend(x)` says which backend would be chosen for x and why ("tensor on cpu", "forced torch",
"cupy not importable: ...", "CUDA tensor and cupy 14.2.0 importable"). CuPy is imported lazily, only here and
only for CUDA tensors; linops works without it.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import importlib
from dataclasses import dataclass

import torch

from ..backends import Kernel, kernels

#: the backend name of the CuPy kernels in the kernel table
CUPY = "cupy"

#: dtypes the CuPy kernels are compiled for (a complex input reaches a real operator as real and imaginary parts)
KERNEL_DTYPES = (torch.float32, torch.float64)


class Backend(enum.Enum):
    """AUTO: CuPy for CUDA tensors when CuPy imports, else torch. TORCH / CUPY: forced."""

    AUTO = "auto"
    TORCH = "torch"
    CUPY = "cupy"


@dataclass(frozen=True)
class BackendChoice:
    """The backend an operator would use for a tensor (TORCH or CUPY) and the reason, in words."""

    backend: Backend
    reason: str


#: what each choice sets in the kernel table for the CuPy kernels
_FORCE = {Backend.AUTO: None, Backend.TORCH: False, Backend.CUPY: True}


@contextlib.contextmanager
def backend(choice: Backend | str):
    """Force `choice` (a `Backend` or its value) for the operators applied inside the block."""
    try:
        choice = Backend(choice)
    except ValueError:
        names = ", ".join(b.value for b in Backend)
        raise ValueError(f"unknown backend {choice!r}; choose one of {names}") from None
    with kernels.force(CUPY, _FORCE[choice]):
        yield choice


def forced_backend() -> Backend:
    """The backend forced in the current context (AUTO when none is)."""
    return {use: choice for choice, use in _FORCE.items()}[kernels.forced(CUPY)]


@functools.cache
def _cupy_import():
    """(cupy module, None) or (None, why it does not import); attempted once per process."""
    try:
        return importlib.import_module("cupy"), None
    except Exception as error:  # ImportError, or a CUDA library failing to load
        return None, f"cupy not importable: {type(error).__name__}: {error}"


def cupy_module():
    """The cupy module; RuntimeError naming the import failure when it does not import."""
    module, problem = _cupy_import()
    if module is None:
        raise RuntimeError(problem)
    return module


def _cupy_problem(x: torch.Tensor) -> str | None:
    """Why the CuPy kernels cannot run on x, or None when they can (CuPy is imported only for CUDA tensors)."""
    problems = []
    if x.device.type != "cuda":
        problems.append(f"tensor on {x.device}")
    if x.dtype not in KERNEL_DTYPES:
        problems.append(f"no CuPy kernel for dtype {x.dtype} (only float32 and float64)")
    if not problems and _cupy_import()[1] is not None:
        problems.append(_cupy_import()[1])
    return "; ".join(problems) or None


def cupy_status() -> str:
    """CuPy's state in words, "cupy <version> importable" or "cupy not importable: <error>" (imports it)."""
    module, problem = _cupy_import()
    return problem if module is None else f"cupy {module.__version__} importable"


def choose_backend(x: torch.Tensor) -> BackendChoice:
    """The backend an operator with a CuPy kernel uses for x, and why.

    Raises RuntimeError when CuPy is forced but cannot run on x (the message names the reason).
    """
    forced = forced_backend()
    if forced is Backend.TORCH:
        return BackendChoice(Backend.TORCH, "forced torch")
    problem = _cupy_problem(x)
    if problem is None:
        if forced is Backend.CUPY:
            return BackendChoice(Backend.CUPY, "forced cupy")
        return BackendChoice(Backend.CUPY, f"CUDA tensor and {cupy_status()}")
    if forced is Backend.CUPY:
        raise RuntimeError(f"Backend.CUPY is forced but the CuPy kernels cannot run: {problem}")
    return BackendChoice(Backend.TORCH, problem)


def use_cupy(x: torch.Tensor) -> bool:
    """True when a CuPy kernel would compute an operator on x (the operators ask the kernel table instead).

    Raises RuntimeError when CuPy is forced but cannot run on x."""
    forced = forced_backend()
    if forced is Backend.TORCH:
        return False
    if forced is Backend.AUTO:
        return x.device.type == "cuda" and _cupy_problem(x) is None
    return choose_backend(x).backend is Backend.CUPY


# ----------------------------------------------------------------------------------------------
# the kernel table's view of the CuPy kernels


def kernel_problem() -> str | None:
    """None when the CuPy kernels can run in this process (CuPy imports and torch sees a CUDA device), else why
    not. Asked only for CUDA tensors, so CuPy is never imported for CPU work."""
    problem = _cupy_import()[1]
    if problem is None and not torch.cuda.is_available():
        problem = "no CUDA device (torch.cuda.is_available() is False)"
    return problem


def kernel_accepts(op, x: torch.Tensor) -> bool:
    """The kernels are compiled for float32 and float64 data."""
    return x.dtype in KERNEL_DTYPES


def cupy_kernel(forward=None, adjoint=None, normal_residual=None) -> Kernel:
    """A `Kernel` of the CuPy backend (layout BATCH: tensors of shape (N, *in_shape) and (N, *out_shape))."""
    return Kernel(CUPY, forward, adjoint, available=kernel_problem, accepts=kernel_accepts,
                  normal_residual=normal_residual)  # fmt: skip
