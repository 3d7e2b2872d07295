"""The dot test and random test vectors."""

from __future__ import annotations

import torch

from ..base import LinearOperator, precision_of


def _randn(shape, op: LinearOperator, generator, complex_: bool):
    real = precision_of(op.dtype)
    if complex_:
        re = torch.randn(shape, dtype=real, generator=generator)
        im = torch.randn(shape, dtype=real, generator=generator)
        return torch.complex(re, im).to(op.device)
    return torch.randn(shape, dtype=real, generator=generator).to(op.device)


def random_like_input(op: LinearOperator, batch=(), generator=None) -> torch.Tensor:
    """Standard normal x of shape (*batch, *in_shape), complex if the operator is."""
    return _randn((*batch, *op.in_shape), op, generator, op.dtype.is_complex)


def random_like_output(op: LinearOperator, batch=(), generator=None) -> torch.Tensor:
    """Standard normal y of shape (*batch, *out_shape), complex if the operator is."""
    return _randn((*batch, *op.out_shape), op, generator, op.dtype.is_complex)


def inner(a: torch.Tensor, b: torch.Tensor) -> complex:
    """<a, b> = sum conj(a) b, accumulated in float64/complex128."""
    a = a.to(torch.complex128) if a.is_complex() else a.double()
    b = b.to(torch.complex128) if b.is_complex() else b.double()
    return complex(torch.sum(a.conj() * b).item())


def dottest(
    op: LinearOperator,
    *,
    batch: int = 2,
    generator: torch.Generator | None = None,
    tol: float | None = None,
    raise_error: bool = True,
) -> float:
    """The dot test: relative error |<A x, y> - <x, A^H y>| / max(|<A x, y>|, |<x, A^H y>|).

    x and y are standard normal (complex for a complex operator), with `batch` samples. The inner
    products are accumulated in float64. Raises AssertionError above `tol` (default 1e-10 for
    float64 operators, 1e-5 for float32) unless `raise_error` is False. Returns the error.
    """
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    x = random_like_input(op, (batch,), generator)
    y = random_like_output(op, (batch,), generator)
    with torch.no_grad():
        lhs = inner(op.apply(x), y)
        rhs = inner(x, op.H.apply(y))
    err = abs(lhs - rhs) / max(abs(lhs), abs(rhs), torch.finfo(torch.float64).tiny)
    if tol is None:
        tol = 1e-10 if precision_of(op.dtype) == torch.float64 else 1e-5
    if raise_error and not err < tol:
        raise AssertionError(
            f"dot test failed for {op!r}: <Ax, y> = {lhs}, <x, A^H y> = {rhs}, relative error {err:.3e} >= {tol:.1e}"
        )
    return err
