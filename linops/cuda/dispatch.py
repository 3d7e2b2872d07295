"""Which implementation an operator runs: the torch reference or a CuPy kernel.

An operator with a CuPy kernel asks `use_cupy(x)` in its `_apply` / `_adjoint`. The answer is CuPy when

    the tensor is on a CUDA device,  its dtype is float32 or float64,  and CuPy imports,

unless a backend is forced for the current context (thread or task):

    with linops.cuda.backend(Backend.TORCH):    # the torch reference everywhere, e.g. for parity checks
        y = A @ x
    with linops.cuda.backend(Backend.CUPY):     # the CuPy kernels, or an error saying why they cannot run
        y = A @ x

`choose_backend(x)` says which backend would be chosen for x and why ("tensor on cpu", "forced torch",
"cupy not importable: ...", "CUDA tensor and cupy 14.2.0 importable"). CuPy is imported lazily, only here and
only for CUDA tensors; linops works without it.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import importlib
from dataclasses import dataclass

import torch

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


_forced: contextvars.ContextVar[Backend] = contextvars.ContextVar("linops_cuda_backend", default=Backend.AUTO)


@contextlib.contextmanager
def backend(choice: Backend | str):
    """Force `choice` (a `Backend` or its value) for the operators applied inside the block."""
    try:
        choice = Backend(choice)
    except ValueError:
        names = ", ".join(b.value for b in Backend)
        raise ValueError(f"unknown backend {choice!r}; choose one of {names}") from None
    token = _forced.set(choice)
    try:
        yield choice
    finally:
        _forced.reset(token)


def forced_backend() -> Backend:
    """The backend forced in the current context (AUTO when none is)."""
    return _forced.get()


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
    forced = _forced.get()
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
    """True when the CuPy kernel should compute the operator on x (the hook operators call).

    Raises RuntimeError when CuPy is forced but cannot run on x."""
    forced = _forced.get()
    if forced is Backend.TORCH:
        return False
    if forced is Backend.AUTO:
        return x.device.type == "cuda" and _cupy_problem(x) is None
    return choose_backend(x).backend is Backend.CUPY
