"""The kernel table: backend implementations registered for operator types, consulted by the operators.

An operator keeps its torch reference implementation and imports no backend. A backend package at the edge
(linops/cpu: numba; linops/cuda: CuPy) registers a `Kernel` for an operator type and a device type, and the
operator's apply path asks the table for one:

    kernels.register(JosephProjector, "cpu", Kernel("numba", forward, adjoint, available=numba_problem))
    kernel = kernels.lookup(op, x)          # a Kernel, or None: use the torch reference
    y = kernel.forward(op, x_columns)

Lookup walks the MRO of type(op), most specific first, and returns the first kernel registered for that type
and x's device type whose backend is available (`available()` returns None, else why not: a missing package)
and whose predicate `accepts(op, x)` holds (a dtype, a layout, a forced choice). Registration imports
nothing; `available` and the kernels import their backend lazily, on first use.

A kernel may carry its cost model (`cost`, seconds per apply from the operator and the number of columns) for
operators that choose between a kernel and another method. What a kernel's `forward` and `adjoint` take and
return is the contract of the operator type that consults the table (its docstring says).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _always(op, x) -> bool:
    return True


def _no_problem() -> str | None:
    return None


@dataclass(frozen=True)
class Kernel:
    """One backend's implementation of an operator type: `forward(op, data)` and `adjoint(op, data)`.

    available()      None when the backend can run, else the reason in words (called on every lookup: cache it)
    accepts(op, x)   whether this kernel computes op on tensor x
    cost             an optional cost model (its type is the operator's business), e.g. ns per entry
    """

    backend: str
    forward: Callable[..., Any]
    adjoint: Callable[..., Any]
    available: Callable[[], str | None] = _no_problem
    accepts: Callable[[Any, Any], bool] = _always
    cost: Any = None


class KernelTable:
    """Kernels keyed by (operator type, device type), looked up along the operator's MRO."""

    def __init__(self):
        self._kernels: dict[tuple[type, str], list[Kernel]] = {}

    def register(self, op_type: type, device_type: str, kernel: Kernel) -> Kernel:
        """Add `kernel` for operators of `op_type` (and subclasses) on tensors of `device_type` ("cpu", "cuda")."""
        if not isinstance(op_type, type) or not isinstance(device_type, str) or not isinstance(kernel, Kernel):
            raise TypeError(
                f"register(op_type, device_type, kernel) takes a class, a device type such as 'cpu' and a Kernel, "
                f"got {op_type!r}, {device_type!r}, {type(kernel).__name__}"
            )
        self._kernels.setdefault((op_type, device_type), []).append(kernel)
        return kernel

    def registered(self, op_type: type, device_type: str) -> list[Kernel]:
        """Every kernel registered for `op_type` or a base class on `device_type`, most specific first."""
        return [k for cls in op_type.__mro__ for k in self._kernels.get((cls, device_type), [])]

    def lookup(self, op, x) -> Kernel | None:
        """The first registered kernel that is available and accepts (op, x), or None (the torch reference)."""
        for kernel in self.registered(type(op), x.device.type):
            if kernel.available() is None and kernel.accepts(op, x):
                return kernel
        return None

    def explain(self, op, device_type: str = "cpu") -> list[tuple[str, str]]:
        """(backend, status in words) of every kernel registered for op's type on `device_type`."""
        return [(k.backend, k.available() or "available") for k in self.registered(type(op), device_type)]


#: the one table of the project
kernels = KernelTable()
