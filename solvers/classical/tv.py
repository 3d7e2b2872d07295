"""Total-variation regularized reconstruction by primal-dual splitting:

    min_x  1/2 ||A x - y||^2 + lambda TV(x),     TV(x) = sum_i ||(D x)_i||_2   (isotropic),

with D the forward-difference gradient (`linops.Gradient`, Neumann boundary) and i running over pixels.
Two algorithms, as typed values: `PDHG` (Chambolle & Pock 2011) on K = [A; D], and `CondatVu`
(Condat 2013, Vu 2013), which takes explicit gradient steps on the data term and dualises only the TV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

import linops
from linops.base import precision_of

from ..checks import check_int, check_optional_real, check_real
from ..start import start
from ..steps import batch_shape
from ..tracking import Result, Tracker


def _check_settings(owner: str, iterations, tau, sigma, step_fraction) -> None:
    check_int(owner, "iterations", iterations, 0)
    check_optional_real(owner, "tau", tau, 0, low_open=True)
    check_optional_real(owner, "sigma", sigma, 0, low_open=True)
    check_real(owner, "step_fraction", step_fraction, 0, 1, low_open=True, high_open=True)


@dataclass(frozen=True)
class PDHG:
    """Chambolle & Pock (2011), Algorithm 1 with theta = 1, for min_x F(K x), K = [A; D], G = 0 and
    F(u, v) = 1/2 ||u - y||^2 + lambda ||v||_{2,1}. From x = x_bar = 0, p = 0, q = 0:

        p     <- (p + sigma (A x_bar - y)) / (1 + sigma)            prox of sigma F_1^*
        q     <- proj_{||q_i||_2 <= lambda} (q + sigma D x_bar)      prox of sigma F_2^* (pixelwise)
        x_new <- x - tau (A^H p + D^H q)                             prox of tau G = identity
        x_bar <- 2 x_new - x;   x <- x_new

    It converges to a minimiser for tau sigma ||K||^2 < 1, with ||K||^2 = ||[A; D]||_2^2 computed by
    `linops.norm` (cached on the operator). Steps: both None gives tau = sigma = sqrt(step_fraction) / ||K||;
    one given fixes the other by tau sigma ||K||^2 = step_fraction; both given must satisfy the bound.
    """

    iterations: int = 500
    tau: float | None = None
    sigma: float | None = None
    step_fraction: float = 0.99

    def __post_init__(self):
        _check_settings("PDHG", self.iterations, self.tau, self.sigma, self.step_fraction)

    def steps(self, K_norm_squared: float) -> tuple[float, float]:
        """(tau, sigma) with tau sigma ||K||^2 < 1."""
        tau, sigma, f = self.tau, self.sigma, self.step_fraction
        if tau is None and sigma is None:
            tau = sigma = math.sqrt(f / K_norm_squared)
        elif tau is None:
            tau = f / (sigma * K_norm_squared)
        elif sigma is None:
            sigma = f / (tau * K_norm_squared)
        elif not tau * sigma * K_norm_squared < 1:
            raise ValueError(
                f"PDHG: tau sigma ||K||^2 = {tau * sigma * K_norm_squared:.4g} must be < 1 "
                f"(tau={tau}, sigma={sigma}, ||K||^2={K_norm_squared:.4g}); lower tau or sigma."
            )
        return tau, sigma


@dataclass(frozen=True)
class CondatVu:
    """Condat (2013) Algorithm 3.1 with rho = 1 (Vu 2013): the data term f(x) = 1/2 ||A x - y||^2 is
    handled by its gradient A^H (A x - y) (Lipschitz constant beta = ||A||^2), only h = lambda ||.||_{2,1}
    is dualised. From x = 0, q = 0:

        x_new <- x - tau (A^H (A x - y) + D^H q)
        q     <- proj_{||q_i||_2 <= lambda} (q + sigma D (2 x_new - x));   x <- x_new

    It converges for 1 / tau - sigma ||D||^2 > beta / 2 (Condat's Theorem 3.1), with ||A|| from `linops.norm`
    and ||D|| exact (`Gradient.norm_squared`). The step on the data term no longer shares a bound with the
    dual step, which helps when ||A|| and ||D|| differ by orders of magnitude (tomography). Steps: both None
    gives sigma = 1 / ||D|| and tau (beta / 2 + sigma ||D||^2) = step_fraction; one given fixes the other by
    that equation; both given must satisfy the bound.
    """

    iterations: int = 500
    tau: float | None = None
    sigma: float | None = None
    step_fraction: float = 0.99

    def __post_init__(self):
        _check_settings("CondatVu", self.iterations, self.tau, self.sigma, self.step_fraction)

    def steps(self, beta: float, D_norm_squared: float) -> tuple[float, float]:
        """(tau, sigma) with tau (beta / 2 + sigma ||D||^2) < 1."""
        tau, sigma, f = self.tau, self.sigma, self.step_fraction
        if tau is None and sigma is None:
            sigma = 1 / math.sqrt(D_norm_squared)
        if tau is None:
            tau = f / (beta / 2 + sigma * D_norm_squared)
        elif sigma is None:
            sigma = (f / tau - beta / 2) / D_norm_squared
            if not sigma > 0:
                raise ValueError(
                    f"CondatVu: tau = {tau} leaves no room for a dual step; it must be < 2 / ||A||^2 = {2 / beta:.4g}"
                )
        elif not tau * (beta / 2 + sigma * D_norm_squared) < 1:
            raise ValueError(
                f"CondatVu: tau (||A||^2 / 2 + sigma ||D||^2) = {tau * (beta / 2 + sigma * D_norm_squared):.4g} "
                f"must be < 1 (tau={tau}, sigma={sigma}, ||A||^2={beta:.4g}, ||D||^2={D_norm_squared:.4g})."
            )
        return tau, sigma


Algorithm = PDHG | CondatVu


def pixel_norms(g: torch.Tensor, D: linops.Gradient) -> torch.Tensor:
    """||g_i||_2 over the component axis of g = D x (shape (*batch, k, *s)), kept as a size-1 axis."""
    return torch.linalg.vector_norm(g, dim=g.ndim - len(D.in_shape) - 1, keepdim=True)


def total_variation(x: torch.Tensor, D: linops.Gradient) -> torch.Tensor:
    """TV(x) = sum_i ||(D x)_i||_2 for each sample of x (*batch, *D.in_shape) -> (*batch,)."""
    norms = pixel_norms(D @ x, D)
    return norms.reshape(*batch_shape(x, D.in_shape), -1).sum(-1)


def project_onto_balls(q: torch.Tensor, radius: float, D: linops.Gradient) -> torch.Tensor:
    """q_i <- q_i / max(1, ||q_i||_2 / radius): the projection onto {||q_i||_2 <= radius} for every pixel i."""
    norms = pixel_norms(q, D)
    return q * torch.where(norms > radius, radius / norms.clamp(min=torch.finfo(norms.dtype).tiny), 1)


def _real(v: torch.Tensor) -> torch.Tensor:
    """Re(v): the adjoint of a complex operator seen as a real-linear map on real images."""
    return v.real if v.is_complex() else v


@dataclass(frozen=True)
class TVReconstruction:
    """min_x 1/2 ||A x - y||^2 + weight TV(x), TV(x) = sum_i ||(D x)_i||_2 (isotropic total variation,
    forward differences with Neumann boundary over `axes` of the image), by `PDHG` or `CondatVu`.

    Images are real; a complex operator (Fourier sampling) is treated as a real-linear map, whose adjoint
    on real images is Re(A^H .). With weight = 0 the minimiser is a least-squares solution (from x = 0, the
    minimum-norm one). Every iteration is a step of the trace (sigma = 0); the result is the last iterate.
    `objective(x, y, A)` evaluates the cost per sample.
    """

    weight: float
    algorithm: Algorithm = field(default_factory=PDHG)
    axes: tuple[int, ...] = (-2, -1)

    def __post_init__(self):
        check_real("TVReconstruction", "weight (lambda)", self.weight, 0)
        axes = self.axes
        if not (isinstance(axes, tuple) and axes and all(type(a) is int for a in axes)):
            raise TypeError(f"TVReconstruction: axes must be a non-empty tuple of ints, got {axes!r}")
        if not isinstance(self.algorithm, (PDHG, CondatVu)):
            raise TypeError(f"TVReconstruction: algorithm must be PDHG(...) or CondatVu(...), got {self.algorithm!r}")

    def gradient(self, A) -> linops.Gradient:
        """D for A's image shape."""
        return linops.Gradient(A.in_shape, self.axes, dtype=precision_of(A.dtype), device=A.device)

    def objective(self, x: torch.Tensor, y: torch.Tensor, A) -> torch.Tensor:
        """1/2 ||A x - y||^2 + weight TV(x) for each sample, shape (*batch,)."""
        data = (A @ x - y).abs().pow(2).reshape(*batch_shape(x, A.in_shape), -1).sum(-1) / 2
        return data + self.weight * total_variation(x, self.gradient(A))

    def __call__(self, y, A, prior=None, *, generator=None, callback=None, progress=True, x_true=None) -> Result:
        alg = self.algorithm
        run = start(f"TV-{type(alg).__name__}", y, A, steps=alg.iterations, callback=callback, progress=progress,
                    x_true=x_true)
        y, track = run.y, run.track
        D = self.gradient(A)
        x = run.zeros()
        run = {PDHG: pdhg, CondatVu: condat_vu}[type(alg)]
        x, _ = run(alg, x, y, A, D, self.weight, track)
        return track.result(x)


def pdhg(alg: PDHG, x, y, A, D: linops.Gradient, lam: float, track: Tracker) -> tuple[torch.Tensor, torch.Tensor]:
    """The `PDHG` iteration from x (see its docstring): the last x and the TV dual variable q (||q_i|| <= lam)."""
    tau, sigma = alg.steps(linops.vstack([A, D]).norm() ** 2)
    x_bar, p, q = x, torch.zeros_like(y), x.new_zeros((*batch_shape(x, D.in_shape), *D.out_shape))
    for n in range(alg.iterations):
        p = (p + sigma * (A @ x_bar - y)) / (1 + sigma)
        q = project_onto_balls(q + sigma * (D @ x_bar), lam, D)
        x_new = x - tau * (_real(A.H @ p) + D.H @ q)
        x_bar, x = 2 * x_new - x, x_new
        track.gradients()
        track.step(n, 0.0, x)
    return x, q


def condat_vu(
    alg: CondatVu, x, y, A, D: linops.Gradient, lam: float, track: Tracker
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `CondatVu` iteration from x (see its docstring): the last x and the TV dual variable q (||q_i|| <= lam)."""
    tau, sigma = alg.steps(A.norm() ** 2, D.norm_squared)
    q = x.new_zeros((*batch_shape(x, D.in_shape), *D.out_shape))
    for n in range(alg.iterations):
        x_new = x - tau * (_real(A.H @ (A @ x - y)) + D.H @ q)
        q = project_onto_balls(q + sigma * (D @ (2 * x_new - x)), lam, D)
        x = x_new
        track.gradients()
        track.step(n, 0.0, x)
    return x, q
