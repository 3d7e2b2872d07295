"""The kernel table: backend implementations registered for operator types, consulted by the operators.

An operator keeps its torch reference implementation and imports no backend. A backend package at the edge
(linops/cpu: numba; linops/cuda: CuPy) registers a `Kernel` for an operator type and a device type, and the
operator asks the table for one where it computes:

    kernels.register(JosephProjector, "cuda", Kernel("cupy", forward, adjoint, available=cupy_problem))
    kernel = kernels.lookup(op, x)          # a Kernel, or None: use the torch reference
    y = kernel.forward(op, x)

Lookup walks the MRO of type(op), most specific first, and returns the first kernel registered for that type
and x's device type that provides the operation asked for ("forward", "adjoint", "normal_residual"), whose
backend is available (`available()` returns None, else why not: a missing package) and whose predicate
`accepts(op, x)` holds (a dtype, a layout, a forced choice). Registration imports nothing; `available` and the
kernels import their backend lazily, on first use.

What a kernel's functions take is its `layout`:

    Layout.BATCH    forward(op, x) with x of shape (N, *in_shape) -> (N, *out_shape), adjoint(op, y) the same way
                    back: what `_apply` / `_adjoint` receive, so an operator consults the table there (inside
                    expressions too, whose nodes call their children's `_apply`); normal_residual(op, x, y)
                    -> A^H (A x - y) in one pass, or None where it does not apply (linops.normal_residual)
    Layout.COLUMNS  an operator type's own column layout, documented by the type (JosephProjector: X of shape
                    (H W, B) -> A X of shape (n_rays, B), behind its choice between matrix-free and sparse)

A kernel may carry its cost model (`cost`, seconds per apply from the operator and the number of columns) for
operators that choose between a kernel and another method.

Forcing, for parity checks and benchmarks: inside `with kernels.force("cupy", True)` an operator whose type
has a kernel of that backend (for the layout and operation asked) must use it, and lookup raises RuntimeError
naming why it cannot run (the tensor's device, the backend's problem, a declined input); inside
`kernels.force("cupy", False)` that backend is never used (the torch reference runs); `force("cupy", None)`
restores the usual choice. linops.cuda.backend(Backend...) is this for CuPy.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: the operations a kernel may provide (the names of its fields)
OPERATIONS = ("forward", "adjoint", "normal_residual")


class Layout(enum.Enum):
    """What a kernel's functions take: BATCH, the `_apply` / `_adjoint` contract; COLUMNS, the type's own."""

    BATCH = "batch"
    COLUMNS = "columns"


def _always(op, x) -> bool:
    return True


def _no_problem() -> str | None:
    return None


@dataclass(frozen=True)
class Kernel:
    """One backend's implementation of an operator type: `forward(op, data)`, `adjoint(op, data)` and, optionally,
    `normal_residual(op, x, y)` (any of them None when the backend does not provide it).

    available()      None when the backend can run, else the reason in words (called on every lookup: cache it)
    accepts(op, x)   whether this kernel computes op on tensor x
    cost             an optional cost model (its type is the operator's business), e.g. ns per entry
    layout           what the functions take (`Layout`)
    """

    backend: str
    forward: Callable[..., Any] | None = None
    adjoint: Callable[..., Any] | None = None
    available: Callable[[], str | None] = _no_problem
    accepts: Callable[[Any, Any], bool] = _always
    cost: Any = None
    layout: Layout = Layout.BATCH
    normal_residual: Callable[..., Any] | None = None


class KernelTable:
    """Kernels keyed by (operator type, device type), looked up along the operator's MRO."""

    def __init__(self):
        self._kernels: dict[tuple[type, str], list[Kernel]] = {}
        self._forced: contextvars.ContextVar[tuple[tuple[str, bool], ...]] = contextvars.ContextVar(
            f"linops_forced_kernels_{id(self)}", default=()
        )

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
        return [k for cls in op_type.__mro__ for k in self._kernels.get((cls, device_type), ())]

    def lookup(self, op, x, layout: Layout | None = None, operation: str = "forward") -> Kernel | None:
        """The first registered kernel for (type(op), x's device type) that provides `operation` in `layout`
        (None: any layout), is available and accepts (op, x); or None (the torch reference).

        Raises RuntimeError when a backend is forced (`force`) for op's type and its kernel cannot run on x."""
        if operation not in OPERATIONS:
            raise ValueError(f"lookup: operation must be one of {OPERATIONS}, got {operation!r}")

        def fits(kernel):
            return getattr(kernel, operation) is not None and (layout is None or kernel.layout is layout)

        forced = self._forced.get()
        if forced:
            return self._forced_lookup(op, x, dict(forced), fits)
        for kernel in self.registered(type(op), x.device.type):
            if fits(kernel) and kernel.available() is None and kernel.accepts(op, x):
                return kernel
        return None

    def _forced_lookup(self, op, x, forced: dict[str, bool], fits) -> Kernel | None:
        must = [b for b, use in forced.items() if use and self._has(type(op), b, fits)]
        candidates = [k for k in self.registered(type(op), x.device.type) if fits(k) and forced.get(k.backend, True)]
        if must:
            candidates = [k for k in candidates if k.backend in must]
        problems = []
        for kernel in candidates:
            problem = kernel.available()
            if problem is None and kernel.accepts(op, x):
                return kernel
            problems.append(problem or f"its kernel declines a {x.dtype} tensor on {x.device}")
        if must:
            why = "; ".join(problems) or f"tensor on {x.device}"
            raise RuntimeError(f"backend {must[0]!r} is forced but cannot compute {op!r} here: {why}")
        return None

    def _has(self, op_type: type, backend: str, fits) -> bool:
        """Whether op_type has a fitting kernel of `backend` on any device type."""
        devices = {device for _, device in self._kernels}
        return any(k.backend == backend and fits(k) for d in devices for k in self.registered(op_type, d))

    def explain(self, op, device_type: str = "cpu") -> list[tuple[str, str]]:
        """(backend, status in words) of every kernel registered for op's type on `device_type`."""
        return [(k.backend, k.available() or "available") for k in self.registered(type(op), device_type)]

    @contextlib.contextmanager
    def force(self, backend: str, use: bool | None):
        """Within the block, `backend`'s kernels are always used where op's type has one (True; RuntimeError when
        it cannot run), never used (False), or chosen as usual (None). Per thread and task (a context variable)."""
        if use not in (True, False, None):
            raise TypeError(f"force(backend, use) takes True, False or None for use, got {use!r}")
        others = tuple((b, u) for b, u in self._forced.get() if b != backend)
        token = self._forced.set(others if use is None else (*others, (backend, use)))
        try:
            yield
        finally:
            self._forced.reset(token)

    def forced(self, backend: str) -> bool | None:
        """What `force` set for `backend` in the current context (None: the usual choice)."""
        return dict(self._forced.get()).get(backend)


#: the one table of the project
kernels = KernelTable()
