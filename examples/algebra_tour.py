"""A short tour of the operator algebra: compose, adjoint, simplify, autograd, dense view."""

import torch

import linops
from linops.testing import dottest


def main() -> None:
    g = torch.Generator().manual_seed(0)
    shape = (1, 64, 64)
    x = torch.rand(4, *shape, generator=g)  # a batch of 4 single-channel images

    blur = linops.gaussian_blur(shape, sigma=2.0, boundary="reflect")
    mask = linops.Mask(torch.rand(shape, generator=g) > 0.3)
    A = mask @ blur  # lazy composition; shapes are checked here
    print("A         =", A)
    print("A.H       =", A.H, "| A.H.H is A:", A.H.H is A)
    print("A @ x     :", tuple((A @ x).shape))
    print(f"dot test  : relative error {dottest(A.to(torch.float64)):.1e}")

    # structure-aware rewriting: products of masks are masks, scalars fold
    B = (2 * mask) @ (3 * mask)
    print("B         =", B, "->", B.simplify())

    # the normal operator A^H A is recognised as self-adjoint
    N = A.H @ A
    print("A^H A self-adjoint:", N.is_self_adjoint)

    # autograd: the backward of A is A^H, so gradients of data terms come for free
    xr = x.clone().requires_grad_()
    y = A @ x
    loss = 0.5 * ((A @ xr - y) ** 2).sum()
    loss.backward()
    print("grad at the solution:", float(xr.grad.abs().max()))

    # blocks, Kronecker products and dense views for small operators
    D = linops.Diagonal(torch.arange(1.0, 4.0))
    K = linops.kron(D, linops.Matrix(torch.tensor([[1.0, 2.0], [3.0, 4.0]])))
    print("kron dense:\n", K.to_dense())
    print("vstack    :", linops.vstack([D, 2 * D]).shape)


if __name__ == "__main__":
    main()
