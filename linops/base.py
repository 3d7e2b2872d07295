"""The `LinearOperator` base class: shapes, checks, batching, autograd and the algebra's entry points.

A linear operator maps tensors of shape ``(*batch, *in_shape)`` to tensors of shape
``(*batch, *out_shape)``. A concrete operator implements two batch-aware hooks,

    _apply(x)    x of shape (N, *in_shape)  ->  A x    of shape (N, *out_shape)
    _adjoint(y)  y of shape (N, *out_shape) ->  A^H y  of shape (N, *in_shape)

and inherits everything else: argument checks, any number of leading batch dimensions,
numpy/CuPy round trips, autograd (the backward of ``A`` is ``A.H``), the algebra
(``@``, ``+``, ``*``, ``.H``, ``.T``, ``**``), a dense view, and the spectral toolkit.

Complex operators are complex-linear maps C^n -> C^m; a real operator applied to a complex
tensor acts on real and imaginary parts separately (its complex-linear extension), and a real
tensor given to a complex operator is promoted. Precisions (float32 versus float64) never mix:
that raises a TypeError naming both.

Why the algebra is registered, not imported. The methods that build expressions or call the spectral
toolkit (``@``, ``+``, ``-``, ``*``, ``/``, ``**``, ``.H``, ``.T``, ``simplify``, ``norm``, ``svd``, ``pinv``)
are implemented in linops.algebra, linops.simplify and linops.spectral, whose node classes subclass
`LinearOperator`: those modules import this one, so this one cannot import them. The methods call
`operations`, a small typed table declared here, and each of those modules registers its implementations in
it when it is imported (``operations.register(compose=compose, ...)`` at the end of linops.algebra).
``import linops`` imports all of them, and importing any linops submodule runs linops/__init__ first, so they
are registered before the first operator exists; an operation read before its module registered it raises
a RuntimeError naming that module. This module itself imports only the import-free tables (`linops.rules`,
`linops.memo`) and the array round trip (`linops.interop.arrays`), so every module of linops may import it.
"""

from __future__ import annotations

import abc
import cmath
import copy
import functools
import math
import numbers
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.autograd import forward_ad

from .interop import arrays
from .memo import MEMO_ATTRIBUTE, MemoKey, recall, store
from .rules import adjoint_rules

Shape = tuple[int, ...]


def as_shape(shape: int | Sequence[int], name: str = "shape") -> Shape:
    """Normalise an int or a sequence of positive ints to a tuple of ints.

    Sizes must be integers (Python, numpy or 0-d integer tensors): a float such as 8.5 or 8.0 is
    refused, never truncated."""
    if isinstance(shape, numbers.Integral) or (isinstance(shape, torch.Tensor) and shape.ndim == 0):
        shape = (shape,)
    try:
        out = tuple(_as_size(s) for s in shape)
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of ints, got {shape!r}") from None
    if len(out) == 0 or any(s <= 0 for s in out):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {out}")
    return out


def _as_size(s) -> int:
    if isinstance(s, bool):
        raise TypeError("a size cannot be a bool")
    return operator.index(s)


def require_finite(t: torch.Tensor, name: str) -> None:
    """Raise ValueError naming `name` when the tensor t holds NaN or infinite entries."""
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        n_nan = int(torch.isnan(t).sum())
        raise ValueError(
            f"{name} must be finite, got {n_nan} NaN and {int(bad.sum()) - n_nan} infinite entries "
            f"among {t.numel()}."
        )


def precision_of(dtype: torch.dtype) -> torch.dtype:
    """The real dtype that sets the precision of `dtype` (complex64 -> float32)."""
    return dtype.to_real() if dtype.is_complex else dtype


def as_scalar(c) -> float | complex:
    """A Python float or complex from a number, numpy scalar or 0-d tensor."""
    if isinstance(c, torch.Tensor):
        if c.numel() != 1:
            raise TypeError(f"operators are scaled by scalars, got a tensor of shape {tuple(c.shape)}")
        c = c.item()
    elif hasattr(c, "item") and getattr(c, "shape", None) == ():
        c = c.item()
    if isinstance(c, bool) or not isinstance(c, numbers.Number):
        raise TypeError(f"operators are scaled by numbers, got {type(c).__name__}")
    if isinstance(c, numbers.Real):
        return float(c)
    c = complex(c)
    return c.real if c.imag == 0 else c


def same_device(a: torch.device, b: torch.device) -> bool:
    """Device equality where 'cuda' and 'cuda:<current>' are the same device."""
    a, b = torch.device(a), torch.device(b)
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        current = torch.cuda.current_device() if a.type == "cuda" and torch.cuda.is_available() else 0
        return (a.index if a.index is not None else current) == (b.index if b.index is not None else current)
    return a.index == b.index


def result_dtype(ops, scalars=()) -> torch.dtype:
    """The common dtype of an expression: the shared precision, complex if any part is complex."""
    dtype = ops[0].dtype
    for op in ops[1:]:
        if precision_of(op.dtype) != precision_of(dtype):
            raise TypeError(
                f"Cannot combine {ops[0]!r} ({ops[0].dtype}) with {op!r} ({op.dtype}): "
                "precisions differ; convert one with .to(dtype)."
            )
        dtype = torch.promote_types(dtype, op.dtype)
    if any(isinstance(c, complex) for c in scalars):
        dtype = torch.promote_types(dtype, torch.complex64)
    return dtype


def check_devices(ops) -> torch.device:
    """The device shared by `ops`; a ValueError naming two operators on different devices otherwise."""
    for op in ops[1:]:
        if not same_device(op.device, ops[0].device):
            raise ValueError(
                f"Cannot combine {ops[0]!r} on {ops[0].device} with {op!r} on {op.device}; move one with .to(device)."
            )
    return ops[0].device


# --------------------------------------------------------------------------------------------
# the operations LinearOperator delegates to, registered by the modules that implement them


class _Unregistered:
    """An operation of `Operations` that no module has registered yet: reading it raises, naming the module
    that registers it. `Operations.register` shadows it with an instance attribute."""

    def __init__(self, module: str):
        self.module = module

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        raise RuntimeError(
            f"LinearOperator needs the operation `{self.name}`, which {self.module} registers when it is imported, "
            f"and it has not been registered: import linops (it imports {self.module}) before using operators."
        )


class Operations:
    """The operations `LinearOperator`'s methods delegate to, each registered by the module that implements it.

        operation                                        registered by     used by
        compose, add, scale, power, Adjoint, Transpose   linops.algebra    @ + - * / ** .H .T
        simplify                                         linops.simplify   A.simplify()
        norm, svd, pinv                                  linops.spectral   A.norm(), A.svd(), A.pinv()

    Those modules subclass `LinearOperator`, so `linops.base` cannot import them (see the module docstring).
    A module registers with ``operations.register(name=function, ...)`` when it is imported; reading an
    operation before that raises a RuntimeError naming the module.
    """

    compose: Callable[..., LinearOperator] = _Unregistered("linops.algebra")
    add: Callable[..., LinearOperator] = _Unregistered("linops.algebra")
    scale: Callable[[complex, LinearOperator], LinearOperator] = _Unregistered("linops.algebra")
    power: Callable[[LinearOperator, int], LinearOperator] = _Unregistered("linops.algebra")
    #: the node built by A.H when no adjoint rule rewrites A, and by A.T for a complex A
    Adjoint: Callable[[LinearOperator], LinearOperator] = _Unregistered("linops.algebra")
    Transpose: Callable[[LinearOperator], LinearOperator] = _Unregistered("linops.algebra")
    simplify: Callable[[LinearOperator], LinearOperator] = _Unregistered("linops.simplify")
    norm: Callable[..., float] = _Unregistered("linops.spectral")
    #: returns a `linops.operators.decomposition.SVD`
    svd: Callable[..., Any] = _Unregistered("linops.spectral")
    pinv: Callable[..., LinearOperator] = _Unregistered("linops.spectral")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The declared operations."""
        return tuple(name for name, v in vars(cls).items() if isinstance(v, _Unregistered))

    def register(self, **implementations: Callable) -> None:
        """Register implementations by operation name (a later registration replaces an earlier one)."""
        for name, implementation in implementations.items():
            if name not in self.names():
                raise TypeError(
                    f"Operations.register: no operation named {name!r}; the operations are {', '.join(self.names())}."
                )
            if not callable(implementation):
                raise TypeError(f"Operations.register: {name} must be callable, got {implementation!r}.")
            setattr(self, name, implementation)

    def missing(self) -> tuple[str, ...]:
        """The operations no module has registered (empty once linops is imported)."""
        return tuple(name for name in self.names() if name not in vars(self))


#: the one table `LinearOperator` reads its late-bound operations from
operations = Operations()


class LinearOperator(abc.ABC):
    """A linear map ``A: (*in_shape) -> (*out_shape)`` acting on batches of torch tensors.

    Subclasses call ``super().__init__(in_shape, out_shape, dtype=..., device=...)`` and
    implement ``_apply`` and ``_adjoint``. Operators are values: applying one never mutates it.
    Derived results are remembered on the instance: what a class derives from its own fields as
    `functools.cached_property` values, what is computed about it elsewhere (adjoint node, spectral
    norm, SVD, pseudo-inverse) in `linops.memo` under typed keys; copies drop both.
    """

    #: True when A^H = A. Instances may shadow this with a property.
    is_self_adjoint: bool = False

    def __init__(
        self,
        in_shape: int | Sequence[int],
        out_shape: int | Sequence[int],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        if not (dtype.is_floating_point or dtype.is_complex):
            raise TypeError(f"{type(self).__name__}: dtype must be floating or complex, got {dtype}")
        self.in_shape = as_shape(in_shape, "in_shape")
        self.out_shape = as_shape(out_shape, "out_shape")
        self._dtype = dtype
        self._device = torch.device(device)

    # ----------------------------------------------------------------------------------------
    # the two hooks a concrete operator supplies
    @abc.abstractmethod
    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        """A x for x of shape (N, *in_shape)."""

    @abc.abstractmethod
    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """A^H y for y of shape (N, *out_shape)."""

    #: attributes that choose how the map is computed, not which map it is (a projector's method): they leave
    #: the SVD cache's key unchanged
    execution_attributes: tuple[str, ...] = ()

    # ----------------------------------------------------------------------------------------
    # descriptors
    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def shape(self) -> tuple[int, int]:
        """The matrix shape (prod(out_shape), prod(in_shape))."""
        return (math.prod(self.out_shape), math.prod(self.in_shape))

    @property
    def operands(self) -> tuple[LinearOperator, ...]:
        """Child operators of an expression node (empty for a leaf)."""
        return ()

    def rebuild(self, operands: tuple[LinearOperator, ...]) -> LinearOperator:
        """The same node over new child operators (`linops.simplify` rewrites children bottom-up with it).

        `operands` has the length and shapes of `self.operands`. A leaf has no children and returns
        itself; a node class (one that overrides `operands`) overrides this too."""
        if not self.operands and not operands:
            return self
        raise NotImplementedError(
            f"{type(self).__name__} has operands {tuple(type(o).__name__ for o in self.operands)} but does not "
            "define rebuild(operands); a node class overrides both."
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(in_shape={self.in_shape}, out_shape={self.out_shape})"

    # ----------------------------------------------------------------------------------------
    # copies and pickles
    def __getstate__(self) -> dict:
        """The state that `copy.copy`, `copy.deepcopy` and `pickle` carry: the operator's defining
        fields without its derived data (its `functools.cached_property` values such as sparse
        matrices and FFT transfer functions, and what `linops.memo` remembers: adjoint node, norm, SVD).
        A copy rebuilds them on first use, so copying works at any time, also after use (a sparse CSR
        matrix cannot be deep-copied), and a copy never shares derived data with its original (whose
        remembered adjoint points back to it)."""
        return {k: v for k, v in self.__dict__.items() if k not in derived_names(type(self))}

    # ----------------------------------------------------------------------------------------
    # application
    def apply(self, x):
        """A x for x of shape (*batch, *in_shape): a torch tensor, numpy array or CuPy array."""
        return arrays.call_on_tensor(self._apply_checked, x)

    def __call__(self, x):
        return self.apply(x)

    def _apply_checked(self, x: torch.Tensor) -> torch.Tensor:
        batch = self._check_input(x)
        x = x.reshape(math.prod(batch), *self.in_shape)
        return apply_batched(self, x).reshape(*batch, *self.out_shape)

    def _apply_any(self, x: torch.Tensor) -> torch.Tensor:
        """_apply on (N, *in_shape) for any input kind: promote real input of a complex operator,
        and apply a real operator to real and imaginary parts of complex input. An empty batch
        (N = 0) gives an empty result without calling the kernel (FFT and conv kernels reject it)."""
        if x.shape[0] == 0:
            return x.new_zeros((0, *self.out_shape), dtype=torch.promote_types(x.dtype, self._dtype))
        if self._dtype.is_complex:
            return self._apply(x.to(self._dtype) if not x.is_complex() else x)
        if x.is_complex():
            n = x.shape[0]
            out = self._apply(torch.cat([x.real, x.imag]))
            return torch.complex(out[:n], out[n:])
        return self._apply(x)

    def _check_input(self, x: torch.Tensor) -> Shape:
        """Validate x against in_shape, precision and device; return its batch shape."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{self!r} applies to torch tensors, got {type(x).__name__}")
        k = len(self.in_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k :]) != self.in_shape:
            raise ValueError(
                f"{self!r} expects input of shape (*batch, {', '.join(map(str, self.in_shape))}), got {tuple(x.shape)}."
            )
        if not (x.dtype.is_floating_point or x.dtype.is_complex):
            raise TypeError(f"{self!r} expects a floating or complex tensor, got {x.dtype}.")
        if precision_of(x.dtype) != precision_of(self._dtype):
            raise TypeError(
                f"{self!r} has dtype {self._dtype} but got a {x.dtype} tensor; "
                f"convert the input or call A.to({precision_of(x.dtype)})."
            )
        if not same_device(x.device, self._device):
            raise ValueError(
                f"{self!r} lives on {self._device} but got a tensor on {x.device}; "
                f"move the input or call A.to('{x.device}')."
            )
        return tuple(x.shape[: x.ndim - k])

    # ----------------------------------------------------------------------------------------
    # the algebra (constructors and nodes live in linops.algebra, registered in `operations`)
    def __matmul__(self, other):
        if isinstance(other, LinearOperator):
            return operations.compose(self, other)
        return self.apply(other)

    def __add__(self, other):
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return operations.add(self, other)

    def __sub__(self, other):
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return operations.add(self, operations.scale(-1, other))

    def __neg__(self):
        return operations.scale(-1, self)

    def __mul__(self, c):
        if isinstance(c, LinearOperator):
            raise TypeError("`*` multiplies an operator by a scalar; compose operators with `@`.")
        return operations.scale(c, self)

    __rmul__ = __mul__

    def __truediv__(self, c):
        c = as_scalar(c)
        if c == 0:
            raise ZeroDivisionError(f"Cannot divide {self!r} by zero: the divisor must be a nonzero finite number.")
        if not cmath.isfinite(c):
            raise ValueError(f"Cannot divide {self!r} by {c}: the divisor must be a nonzero finite number.")
        return operations.scale(1 / c, self)

    def __pow__(self, k: int):
        return operations.power(self, k)

    @property
    def H(self) -> LinearOperator:
        """The adjoint operator A^H (conjugate transpose); ``A.H.H is A``."""
        adj = recall(self, ADJOINT)
        if adj is None:
            if self.is_self_adjoint:
                adj = self
            else:
                adj = adjoint_rules.rewrite(self)
                if adj is None:
                    adj = operations.Adjoint(self)
                store(adj, ADJOINT, self)
            store(self, ADJOINT, adj)
        return adj

    @property
    def T(self) -> LinearOperator:
        """The transpose A^T = conj(A^H conj(.)); equal to A.H for a real operator."""
        if not self._dtype.is_complex:
            return self.H
        t = recall(self, TRANSPOSE)
        if t is None:
            t = operations.Transpose(self)
            store(t, TRANSPOSE, self)
            store(self, TRANSPOSE, t)
        return t

    def simplify(self) -> LinearOperator:
        """Rewrite with the registered structural rules (see `linops.simplify`)."""
        return operations.simplify(self)

    # ----------------------------------------------------------------------------------------
    # conversions
    def to(self, *args, **kwargs) -> LinearOperator:
        """A copy on another device and/or with another precision, like ``Tensor.to``.

        ``A.to(torch.float64)`` keeps a complex operator complex (complex64 -> complex128).
        """
        device, dtype = _parse_to_args(*args, **kwargs)
        return _convert(self, device, dtype, {})

    def to_dense(self, max_entries: int = 2**26) -> torch.Tensor:
        """The matrix of A, shape (prod(out_shape), prod(in_shape)), with row-major flattening."""
        m, n = self.shape
        if m * n > max_entries:
            raise ValueError(
                f"{self!r} is {m} x {n}; to_dense refuses more than {max_entries} entries "
                "(pass max_entries to override)."
            )
        eye = torch.eye(n, dtype=self._dtype, device=self._device).reshape(n, *self.in_shape)
        with torch.no_grad():
            columns = self.apply(eye).reshape(n, m)
        return columns.T.contiguous()

    # ----------------------------------------------------------------------------------------
    # spectral toolkit entry points (implemented in linops.spectral, registered in `operations`)
    def norm(self, algorithm=None) -> float:
        """Spectral norm ||A||_2 (exact for structured types, else Lanczos; cached). See `linops.norm`."""
        return operations.norm(self, algorithm)

    def svd(self, algorithm=None, **kwargs):
        """A = U diag(s) V^H with U and V as operators (structured where known, else computed).
        See `linops.svd`."""
        return operations.svd(self, algorithm, **kwargs)

    def pinv(self, method=None) -> LinearOperator:
        """The Moore-Penrose pseudo-inverse A^+ as an operator. See `linops.pinv`."""
        return operations.pinv(self, method)


@dataclass(frozen=True)
class AdjointNode(MemoKey):
    """Memo key of the adjoint node built by `A.H` (remembered on A, and A on A^H, so A.H.H is A)."""


@dataclass(frozen=True)
class TransposeNode(MemoKey):
    """Memo key of the transpose node built by `A.T` of a complex A (and A on A^T)."""


ADJOINT, TRANSPOSE = AdjointNode(), TransposeNode()


@functools.cache
def derived_names(cls: type) -> frozenset[str]:
    """Attributes of an instance of cls (an operator, or any class) that hold derived data, not defining
    fields (copies, `.to()` and the SVD disk cache's key skip them): its
    `functools.cached_property` values and the `linops.memo` store."""
    cached = (
        name for klass in cls.__mro__ for name, v in vars(klass).items() if isinstance(v, functools.cached_property)
    )
    return frozenset((*cached, MEMO_ATTRIBUTE))


# --------------------------------------------------------------------------------------------
# autograd: one Function for every operator, whose backward is the adjoint


class _LinearFunction(torch.autograd.Function):
    """y = A x as one autograd node, usable by torch.autograd and by torch.func transforms.

    reverse mode   dL/dx = A^H dL/dy (the real part for a real x given to a complex A)
    forward mode   the tangent of A x along dx is A dx (a linear map is its own derivative)
    vmap           A applied to a vmapped batch is A applied with the vmapped axis folded into the
                   leading batch axis, which every operator accepts

    Nothing but the operator is saved, so no activations are kept, and kernels that torch cannot
    differentiate (sparse matrices, CuPy) still compose with networks and with torch.func.
    """

    @staticmethod
    def forward(x, op):
        return op._apply_any(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, op = inputs
        ctx.op = op
        ctx.real_input = not x.is_complex()

    @staticmethod
    def backward(ctx, grad):
        g = apply_batched(ctx.op.H, grad)
        if ctx.real_input and g.is_complex():
            # for real x, the gradient of a real loss is the real part of A^H g
            g = g.real
        return g, None

    @staticmethod
    def jvp(ctx, x_dot, op_dot):
        return apply_batched(ctx.op, x_dot)

    @staticmethod
    def vmap(info, in_dims, x, op):
        x = x.movedim(in_dims[0], 0)
        b, n = x.shape[:2]
        out = apply_batched(op, x.reshape(b * n, *x.shape[2:]))
        return out.reshape(b, n, *out.shape[1:]), 0


# private torch API (0.1 us a call); without it (another torch version) every call takes the autograd path
_functorch_wrapped = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)


def _needs_autograd(x: torch.Tensor) -> bool:
    """True when x is tracked by reverse-mode autograd, is wrapped by a torch.func transform (grad, vjp,
    jvp, jacrev, jacfwd, vmap), or carries a forward-mode tangent (torch.autograd.forward_ad)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return True
    if _functorch_wrapped is None or _functorch_wrapped(x):
        return True
    # outside `with forward_ad.dual_level()` the level is -1 and no tensor has a tangent; the check
    # spares unpack_dual (2 us a call)
    if getattr(forward_ad, "_current_level", 0) < 0:
        return False
    return forward_ad.unpack_dual(x).tangent is not None


def apply_batched(op: LinearOperator, x: torch.Tensor) -> torch.Tensor:
    """A x on an already validated (N, *in_shape) tensor, through autograd when needed."""
    if _needs_autograd(x):
        return _LinearFunction.apply(x, op)
    return op._apply_any(x)


# --------------------------------------------------------------------------------------------
# .to(): generic conversion of an operator's tensors, dtypes and child operators


def _parse_to_args(*args, **kwargs):
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    if kwargs:
        raise TypeError(f"to() got unexpected arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, torch.dtype):
            dtype = a
        else:
            device = torch.device(a)
    if dtype is not None and not (dtype.is_floating_point or dtype.is_complex):
        raise TypeError(f"to() takes a floating or complex dtype, got {dtype}")
    return device, dtype


def _convert_dtype(current: torch.dtype, target: torch.dtype | None) -> torch.dtype:
    if target is None or not (current.is_floating_point or current.is_complex):
        return current
    real = precision_of(target)
    return torch.promote_types(real, torch.complex64) if current.is_complex else real


def _convert(value, device, dtype, memo):
    if isinstance(value, LinearOperator):
        key = id(value)
        if key not in memo:
            new = copy.copy(value)
            memo[key] = new
            derived = derived_names(type(value))
            new.__dict__ = {k: _convert(v, device, dtype, memo) for k, v in value.__dict__.items() if k not in derived}
        return memo[key]
    if isinstance(value, torch.Tensor):
        return value.to(device=device if device is not None else value.device, dtype=_convert_dtype(value.dtype, dtype))
    if isinstance(value, torch.dtype):
        return _convert_dtype(value, dtype)
    if isinstance(value, torch.device):
        return device if device is not None else value
    if isinstance(value, (tuple, list)):
        return type(value)(_convert(v, device, dtype, memo) for v in value)
    if isinstance(value, dict):
        return {k: _convert(v, device, dtype, memo) for k, v in value.items()}
    return value
