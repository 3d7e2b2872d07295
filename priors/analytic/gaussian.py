"""The Gaussian prior x0 ~ N(mu, Sigma): exact denoiser, score, log density and linear posterior.

Under the VE convention x = x0 + sigma eps the noisy marginal is N(mu, Sigma + sigma^2 I) and

    denoise(x, sigma) = E[x0 | x] = mu + Sigma (Sigma + sigma^2 I)^{-1} (x - mu)
    score(x, sigma)   = -(Sigma + sigma^2 I)^{-1} (x - mu)
    eps(x, sigma)     = sigma (Sigma + sigma^2 I)^{-1} (x - mu)

all spectral functions of Sigma, computed in the eigenbasis its operator type provides
(elementwise for Diagonal, in Fourier for a stationary CircularBlur, by eigh for a dense Matrix).

For a linear measurement y = A x0 + sigma_y n, n ~ N(0, I), the posterior is Gaussian:

    S    = A Sigma A^H + sigma_y^2 I
    mean = mu + Sigma A^H S^{-1} (y - A mu)
    Cov  = Sigma - Sigma A^H S^{-1} A Sigma            (independent of y)
    log p(y) = log N(y; A mu, S)                       (the evidence, used by mixtures)

computed in float64 by one of three methods: closed form when A and Sigma share an eigenbasis
(A diagonal with a diagonal Sigma, A a circular blur with a stationary Sigma), dense linear
algebra for small problems, or matrix-free conjugate gradient (samples by Matheron's rule:
x + Sigma A^H S^{-1} (y - A x - e) with x ~ N(mu, Sigma), e ~ N(0, sigma_y^2 I)). For a complex
operator (e.g. Fourier sampling) y is complex, x real, and the noise has standard deviation
sigma_y on the real and on the imaginary part of each measurement.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from linops import CG, CircularBlur, Diagonal, FunctionOperator, Identity, LinearOperator, Matrix, solve
from linops.base import precision_of

from ..protocol import UNIT, Convention, Prior, per_sample_sigma
from .eigenbasis import DiagonalBasis, Eigenbasis, FourierBasis, covariance_eigenbasis

LOG_2PI = math.log(2 * math.pi)


# ------------------------------------------------------------------------------------------------
# posterior methods (typed values, not strings)


@dataclass(frozen=True)
class Structured:
    """Closed form in the shared eigenbasis of A and Sigma (A diagonal with a diagonal Sigma, or A a
    circular blur / identity with a stationary Sigma). Raises when the pair has no shared basis."""


@dataclass(frozen=True)
class Dense:
    """Dense float64 linear algebra on A.to_dense() and Sigma as matrices (eigh, pseudo-inverse for
    a singular S). Gives the covariance and the evidence. Refuses problems larger than `max_size`."""

    max_size: int = 8192


@dataclass(frozen=True)
class ConjugateGradient:
    """Matrix-free: solves S u = y - A mu by CG (float64) with A, A^H and Sigma applied structurally.
    Gives the mean and samples (Matheron's rule), not the covariance nor the evidence."""

    rtol: float = 1e-10
    max_iter: int = 5000


PosteriorMethod = Structured | Dense | ConjugateGradient

#: Auto selection: closed form when possible, else dense up to these sizes, else CG.
AUTO_DENSE_MAX_IN = 2048
AUTO_DENSE_MAX_OUT = 8192


@dataclass(frozen=True, eq=False)
class GaussianPosterior:
    """p(x0 | y) = N(mean, covariance) for one or a batch of measurements y.

    Attributes:
        mean: (*batch, *event) posterior means, in y's precision.
        covariance: the posterior covariance as a linops operator (shared by every y: it does not
            depend on y), or None when the method (CG) does not form it.
        log_evidence: (*batch,) log p(y), or None (CG).
    """

    mean: torch.Tensor
    covariance: LinearOperator | None
    log_evidence: torch.Tensor | None
    event_shape: tuple[int, ...]
    _sampler: Callable = field(repr=False)

    def sample(self, n: int = 1, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact posterior samples per measurement, shape (n, *batch, *event)."""
        return self._sampler(int(n), generator)

    def covariance_matrix(self) -> torch.Tensor:
        """The (n, n) posterior covariance as a dense matrix (small problems)."""
        if self.covariance is None:
            raise ValueError(
                "this posterior was computed matrix-free (ConjugateGradient) and has no covariance; "
                "use method=Dense() for a small problem, or estimate it from posterior samples."
            )
        return self.covariance.to_dense()

    def as_prior(self, convention: Convention = UNIT) -> GaussianPrior:
        """The posterior as a GaussianPrior (for a single measurement y)."""
        if self.covariance is None:
            raise ValueError("a posterior without covariance (ConjugateGradient) cannot be turned into a prior")
        batch = self.mean.shape[: self.mean.ndim - len(self.event_shape)]
        if math.prod(batch) != 1:
            raise ValueError(f"as_prior needs a single measurement; this posterior holds a batch of shape {batch}")
        return GaussianPrior(self.mean.reshape(self.event_shape), self.covariance, convention=convention)


# ------------------------------------------------------------------------------------------------
# the prior


class GaussianPrior(Prior):
    """x0 ~ N(mean, covariance) with the covariance a linops operator on images of its in_shape.

    Args:
        mean: a tensor broadcastable to the covariance's in_shape (or a float).
        covariance: `linops.Diagonal` (independent pixels), a stationary `linops.CircularBlur`
            (see `stationary_covariance`), a `linops.Matrix`, `c * S` of those, or any small
            symmetric operator (densified). Checked for symmetry and positive semi-definiteness.
        convention: the units of x (default UNIT, [0, 1]); the prior is exact for every sigma.

    Parameters are held in float64; every method computes in the precision of its input.
    """

    sigma_range = None

    def __init__(self, mean, covariance: LinearOperator, *, convention: Convention = UNIT):
        basis = covariance_eigenbasis(covariance)
        self._init(mean, basis, convention, covariance)

    @classmethod
    def from_eigenbasis(cls, mean, basis: Eigenbasis, *, convention: Convention = UNIT) -> GaussianPrior:
        """A Gaussian prior from an already validated eigenstructure (see `covariance_eigenbasis`)."""
        prior = object.__new__(cls)
        prior._init(mean, basis, convention, None)
        return prior

    def _init(self, mean, basis, convention, covariance):
        self.basis = basis
        self.event_shape = basis.event_shape
        self.convention = convention
        self._covariance = covariance
        m = torch.as_tensor(mean, device=basis.lam.device)
        if m.is_complex():
            raise TypeError("GaussianPrior models real images: the mean must be real")
        try:
            self.mean = m.to(torch.float64).expand(self.event_shape).clone()
        except RuntimeError:
            raise ValueError(
                f"mean of shape {tuple(m.shape)} does not broadcast to the covariance's shape {self.event_shape}"
            ) from None

    @property
    def covariance(self) -> LinearOperator:
        """Sigma as a linops operator (the one given, or rebuilt from the eigenstructure)."""
        if self._covariance is None:
            self._covariance = self.basis.operator(torch.float64)
        return self._covariance

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def __repr__(self):
        return f"GaussianPrior(event_shape={self.event_shape}, basis={type(self.basis).__name__})"

    def to(self, device) -> GaussianPrior:
        """The same prior with its parameters on another device."""
        return GaussianPrior.from_eigenbasis(self.mean.to(device), self.basis.to(device), convention=self.convention)

    # -------------------------------------------------------------------------------------------
    # helpers

    def _flat(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        k = len(self.event_shape)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{self!r} takes tensors, got {type(x).__name__}")
        if x.ndim < k or tuple(x.shape[x.ndim - k :]) != self.event_shape:
            raise ValueError(f"{self!r} expects x of shape (*batch, {self.event_shape}), got {tuple(x.shape)}")
        if x.is_complex() or not x.dtype.is_floating_point:
            raise TypeError(f"{self!r} expects a real floating tensor, got {x.dtype}")
        return x.reshape(-1, *self.event_shape), tuple(x.shape[: x.ndim - k])

    def _s2(self, sigma, x, *, allow_zero=False) -> torch.Tensor:
        """sigma^2, one per flattened sample, shaped to broadcast against eigen-coefficients."""
        s = per_sample_sigma(sigma, x, len(self.event_shape), allow_zero=allow_zero).reshape(-1)
        return s**2

    def _mean_as(self, x):
        return self.mean.to(device=x.device, dtype=x.dtype)

    def _resolvent(self, x, sigma):
        """(Sigma + sigma^2 I)^{-1} (x - mu), shape like x."""
        xf, _ = self._flat(x)
        s2 = self.basis.per_sample(self._s2(sigma, x))
        lam = self.basis.lam_as(x)
        return self.basis.apply(xf - self._mean_as(x), 1 / (lam + s2)).reshape(x.shape)

    # -------------------------------------------------------------------------------------------
    # the protocol

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """mu + Sigma (Sigma + sigma^2 I)^{-1} (x - mu)."""
        xf, _ = self._flat(x)
        s2 = self.basis.per_sample(self._s2(sigma, x))
        lam = self.basis.lam_as(x)
        mu = self._mean_as(x)
        return (mu + self.basis.apply(xf - mu, lam / (lam + s2))).reshape(x.shape)

    def score(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """-(Sigma + sigma^2 I)^{-1} (x - mu)."""
        return -self._resolvent(x, sigma)

    def eps(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """sigma (Sigma + sigma^2 I)^{-1} (x - mu)."""
        s = per_sample_sigma(sigma, x, len(self.event_shape))
        s = s.reshape(*s.shape, *([1] * len(self.event_shape)))
        return s * self._resolvent(x, sigma)

    def log_prob(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        """log N(x; mu, Sigma + sigma^2 I), shape (*batch); sigma = 0 is the prior itself.

        = -1/2 [(x - mu)^T (Sigma + sigma^2 I)^{-1} (x - mu) + log det(Sigma + sigma^2 I) + n log 2 pi].
        """
        xf, batch = self._flat(x)
        s2 = self._s2(sigma, x, allow_zero=True)
        eig = self.basis.eigenvalues().to(device=x.device, dtype=x.dtype)
        if float(eig.min()) + float(s2.min()) <= 0:
            raise ValueError(
                "this Gaussian is degenerate (a zero-variance direction) and has no density at sigma = 0; "
                "evaluate the noisy marginal with sigma > 0."
            )
        d = xf - self._mean_as(x)
        lam = self.basis.lam_as(x)
        w = self.basis.apply(d, 1 / (lam + self.basis.per_sample(s2)))
        quad = (d * w).reshape(d.shape[0], -1).sum(dim=1)
        logdet = torch.log(eig[None, :] + s2[:, None]).sum(dim=1)
        n = self.basis.size
        return (-0.5 * (quad + logdet + n * LOG_2PI)).reshape(batch)

    def sample(
        self, n: int = 1, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """n samples mu + Sigma^{1/2} z, shape (n, *event)."""
        z = torch.randn((int(n), *self.event_shape), generator=generator, dtype=torch.float64, device=self.device)
        x = self.mean + self.basis.apply(z, self.basis.lam.sqrt())
        return x.to(dtype)

    def to_convention(self, convention: Convention) -> Prior:
        """Exact: with x' = a x + b, x0' ~ N(a mu + b, a^2 Sigma)."""
        if convention == self.convention:
            return self
        a, b = self.convention.map_to(convention)
        return GaussianPrior.from_eigenbasis(a * self.mean + b, self.basis.scaled(a * a), convention=convention)

    # -------------------------------------------------------------------------------------------
    # the posterior for a linear measurement

    def posterior(
        self, A: LinearOperator, y: torch.Tensor, sigma_y: float, *, method: PosteriorMethod | None = None
    ) -> GaussianPosterior:
        """p(x0 | y) for y = A x0 + sigma_y n, n ~ N(0, I), computed in float64.

        Args:
            A: a linops operator with in_shape equal to the prior's event shape.
            y: measurements of shape (*batch, *A.out_shape).
            sigma_y: noise standard deviation (>= 0; 0 uses pseudo-inverses).
            method: `Structured()`, `Dense()`, `ConjugateGradient()`, or None (auto: closed form
                when A and Sigma share a basis, dense up to 2048 unknowns and 8192 measurements, CG beyond).

        Returns a `GaussianPosterior` (mean, covariance operator, evidence, exact sampler) in the
        precision of y.
        """
        if not isinstance(A, LinearOperator):
            raise TypeError(f"posterior takes a linops operator A, got {type(A).__name__}")
        if A.in_shape != self.event_shape:
            raise ValueError(
                f"A maps {A.in_shape} -> {A.out_shape}, but the prior's images have shape {self.event_shape}"
            )
        k = len(A.out_shape)
        if not isinstance(y, torch.Tensor) or y.ndim < k or tuple(y.shape[y.ndim - k :]) != A.out_shape:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"y must have shape (*batch, {A.out_shape}) to match A's out_shape, got {got}")
        sigma_y = float(sigma_y)
        if not math.isfinite(sigma_y) or sigma_y < 0:
            raise ValueError(f"sigma_y must be a finite number >= 0, got {sigma_y}")
        problem = _Problem(self, A, y, sigma_y)
        if method is None:
            post = _structured(problem)
            if post is not None:
                return post
            n, m = problem.n, problem.m_real
            method = Dense() if n <= AUTO_DENSE_MAX_IN and m <= AUTO_DENSE_MAX_OUT else ConjugateGradient()
        if isinstance(method, Structured):
            post = _structured(problem)
            if post is None:
                raise ValueError(
                    f"A = {A!r} and a {type(self.basis).__name__} covariance share no eigenbasis; "
                    "use method=Dense() or ConjugateGradient()."
                )
            return post
        if isinstance(method, Dense):
            return _dense(problem, method)
        if isinstance(method, ConjugateGradient):
            return _cg(problem, method)
        raise TypeError(f"method must be Structured(), Dense(), ConjugateGradient() or None, got {method!r}")


# ------------------------------------------------------------------------------------------------
# posterior computations (float64 inside)


class _Problem:
    """The float64 pieces shared by every posterior method."""

    def __init__(self, prior: GaussianPrior, A: LinearOperator, y: torch.Tensor, sigma_y: float):
        self.prior, self.basis = prior, prior.basis
        self.event = prior.event_shape
        self.A = A.to(torch.float64) if precision_of(A.dtype) != torch.float64 else A
        self.complex = A.dtype.is_complex or y.is_complex()
        self.out_dtype = precision_of(y.dtype)
        self.batch = tuple(y.shape[: y.ndim - len(A.out_shape)])
        self.y = y.to(torch.complex128 if y.is_complex() else torch.float64).reshape(-1, *A.out_shape)
        self.N = self.y.shape[0]
        self.s2 = sigma_y**2
        self.sigma_y = sigma_y
        self.mu = prior.mean
        self.n = prior.basis.size
        self.m_real = math.prod(A.out_shape) * (2 if self.complex else 1)

    def out(self, x: torch.Tensor) -> torch.Tensor:
        """(N, *event) float64 -> (*batch, *event) in y's precision."""
        return x.reshape(*self.batch, *self.event).to(self.out_dtype)

    def randn(self, shape, generator):
        return torch.randn(shape, generator=generator, dtype=torch.float64, device=self.mu.device)

    def residual(self) -> torch.Tensor:
        """y - A mu, shape (N, *out)."""
        return self.y - self.A @ self.mu.unsqueeze(0)


def _where_pos(den: torch.Tensor, num: torch.Tensor, fallback) -> torch.Tensor:
    pos = den > 0
    return torch.where(pos, num / torch.where(pos, den, 1), fallback)


def _structured(p: _Problem) -> GaussianPosterior | None:
    A, basis = p.A, p.basis
    if A.dtype.is_complex or p.y.is_complex() or A.in_shape != A.out_shape:
        return None
    if isinstance(basis, DiagonalBasis) and isinstance(A, (Diagonal, Identity)):
        return _diagonal_posterior(p)
    if isinstance(A, (CircularBlur, Identity)):
        if isinstance(basis, FourierBasis):
            return _fourier_posterior(p, basis.lam, basis.eigenvalues().reshape(p.event))
        if isinstance(basis, DiagonalBasis) and len(p.event) >= 2:
            lam = basis.lam
            if bool((lam == lam[..., :1, :1]).all()):  # white within each channel: also Fourier-diagonal
                W = p.event[-1]
                return _fourier_posterior(p, lam[..., : W // 2 + 1].clone(), lam)
    return None


def _diagonal_posterior(p: _Problem) -> GaussianPosterior:
    """A = diag(a), Sigma = diag(lam): every pixel is a scalar Gaussian problem."""
    a = (p.A.weights if isinstance(p.A, Diagonal) else torch.ones((), dtype=torch.float64)).to(p.mu.device)
    a = a.to(torch.float64).expand(p.event)
    lam = p.basis.lam
    den = a * a * lam + p.s2
    gain = _where_pos(den, lam * a, 0.0)
    r = p.y - a * p.mu
    mean = p.mu + gain * r
    var = _where_pos(den, lam * p.s2, lam)
    pos = den > 0
    quad = _where_pos(den, r * r, 0.0).reshape(p.N, -1).sum(1)
    logdet = torch.log(torch.where(pos, den, 1)).sum()
    log_ev = -0.5 * (quad + logdet + int(pos.sum()) * LOG_2PI)
    std = var.sqrt()

    def sampler(n, generator):
        z = p.randn((n, p.N, *p.event), generator)
        return (mean + std * z).reshape(n, *p.batch, *p.event).to(p.out_dtype)

    return GaussianPosterior(
        p.out(mean), Diagonal(var.to(p.out_dtype), p.event), log_ev.reshape(p.batch).to(p.out_dtype), p.event, sampler
    )


def _fourier_posterior(p: _Problem, T: torch.Tensor, T_full: torch.Tensor) -> GaussianPosterior:
    """A circular (transfer h), Sigma stationary (spectrum T): every frequency is a scalar problem."""
    H, W = p.event[-2:]
    coef = (*p.event[:-1], W // 2 + 1)
    if isinstance(p.A, CircularBlur):
        h = p.A.transfer.to(torch.complex128).expand(coef)
        h_full = torch.fft.fft2(torch.fft.irfft2(h, s=(H, W))).expand(p.event)
    else:
        h = torch.ones(coef, dtype=torch.complex128, device=p.mu.device)
        h_full = torch.ones(p.event, dtype=torch.complex128, device=p.mu.device)
    T = T.expand(coef)
    den = (h.abs() ** 2) * T + p.s2
    gain = _where_pos(den, T * h.conj(), 0.0)
    post_T = _where_pos(den, T * p.s2, T)

    def filt(x, mult):
        return torch.fft.irfft2(mult * torch.fft.rfft2(x), s=(H, W))

    r = p.residual()
    mean = p.mu + filt(r, gain)
    den_full = (h_full.abs() ** 2) * T_full.expand(p.event) + p.s2
    pos = den_full > 0
    quad = (r * filt(r, _where_pos(den, torch.ones_like(den), 0.0))).reshape(p.N, -1).sum(1)
    logdet = torch.log(torch.where(pos, den_full, 1)).sum()
    log_ev = -0.5 * (quad + logdet + int(pos.sum()) * LOG_2PI)
    root = post_T.sqrt()

    def sampler(n, generator):
        z = p.randn((n * p.N, *p.event), generator)
        x = mean.repeat(n, *([1] * len(p.event))) + filt(z, root)
        return x.reshape(n, *p.batch, *p.event).to(p.out_dtype)

    cov = CircularBlur.from_transfer_function(post_T.to(p.out_dtype), p.event)
    return GaussianPosterior(p.out(mean), cov, log_ev.reshape(p.batch).to(p.out_dtype), p.event, sampler)


def _dense(p: _Problem, method: Dense) -> GaussianPosterior:
    """Dense float64 algebra with the real-stacked A (complex A -> [Re A; Im A]).

    Works in the smaller of the two spaces: for m <= n (or sigma_y = 0) with the m x m matrix
    S = A Sigma A^T + sigma_y^2 I (eigh, pseudo-inverse when singular); for m > n with the n x n matrix
    M = I + B^T B / sigma_y^2, B = A Sigma^{1/2}, by Woodbury and Sylvester:
        mean = mu + Sigma^{1/2} M^{-1} B^T r / sigma_y^2,  Cov = Sigma^{1/2} M^{-1} Sigma^{1/2},
        log det S = m log sigma_y^2 + log det M,
        r^T S^{-1} r = (|r|^2 - (B^T r)^T M^{-1} (B^T r) / sigma_y^2) / sigma_y^2.
    """
    if p.n > method.max_size or p.m_real > method.max_size:
        raise ValueError(
            f"the dense posterior would form {p.m_real} x {p.n} matrices (limit Dense(max_size={method.max_size})); "
            "raise max_size or use ConjugateGradient()."
        )
    a = p.A.to_dense(max_entries=max(2**26, p.n * p.m_real // (2 if p.complex else 1) + 1))
    r = p.residual().reshape(p.N, -1)
    if p.complex:
        a = torch.cat([a.real, a.imag]) if a.is_complex() else torch.cat([a, torch.zeros_like(a)])
        r = torch.cat([r.real, r.imag], dim=1)
    m = a.shape[0]
    eye_n = torch.eye(p.n, dtype=torch.float64, device=a.device)
    if m > p.n and p.s2 > 0:
        root_sigma = p.basis.apply(eye_n.reshape(p.n, *p.event), p.basis.lam.sqrt()).reshape(p.n, p.n)
        root_sigma = (root_sigma + root_sigma.T) / 2
        b = a @ root_sigma
        e, w = torch.linalg.eigh(eye_n + b.T @ b / p.s2)
        m_inv = (w / e) @ w.T
        rb = r @ b
        mean = p.mu.reshape(1, -1) + (rb @ m_inv @ root_sigma) / p.s2
        cov = root_sigma @ m_inv @ root_sigma
        quad = ((r * r).sum(1) - ((rb @ m_inv) * rb).sum(1) / p.s2) / p.s2
        log_ev = -0.5 * (quad + m * math.log(p.s2) + torch.log(e).sum() + m * LOG_2PI)
    else:
        sigma = p.basis.dense()
        s = a @ sigma @ a.T + p.s2 * torch.eye(m, dtype=torch.float64, device=a.device)
        d, v = torch.linalg.eigh((s + s.T) / 2)
        keep = d > m * torch.finfo(torch.float64).eps * float(d.abs().max().clamp_min(1e-300))
        d_inv = torch.where(keep, 1 / torch.where(keep, d, 1), 0)
        gain = (sigma @ a.T @ v) * d_inv @ v.T
        mean = p.mu.reshape(1, -1) + r @ gain.T
        ika = eye_n - gain @ a
        cov = ika @ sigma @ ika.T + p.s2 * gain @ gain.T  # Joseph form: symmetric PSD by construction
        rv = r @ v
        quad = (rv * rv * d_inv).sum(1)
        log_ev = -0.5 * (quad + torch.log(d[keep]).sum() + int(keep.sum()) * LOG_2PI)
    cov = (cov + cov.T) / 2
    lc, qc = torch.linalg.eigh(cov)
    root = qc * lc.clamp_min(0).sqrt()

    def sampler(n, generator):
        z = p.randn((n, p.N, p.n), generator)
        return (mean + z @ root.T).reshape(n, *p.batch, *p.event).to(p.out_dtype)

    cov_op = Matrix(cov.to(p.out_dtype), p.event, p.event)
    return GaussianPosterior(p.out(mean), cov_op, log_ev.reshape(p.batch).to(p.out_dtype), p.event, sampler)


def _cg(p: _Problem, method: ConjugateGradient) -> GaussianPosterior:
    """Matrix-free: u = S^{-1} (y - A mu) by linops' CG on S as a `FunctionOperator`, mean = mu + Sigma Re(A^H u)."""
    A, basis = p.A, p.basis
    lam = basis.lam

    def sigma_apply(v):
        return basis.apply(v, lam)

    def adjoint(u):
        g = A.H @ u
        return g.real if g.is_complex() else g

    def s_apply(u):
        return A @ sigma_apply(adjoint(u)) + p.s2 * u

    # S on the measurements, self-adjoint for the real inner product Re <u, v> (the one CG uses; for complex
    # data S is real-linear only, as x is real), applied to complex tensors when the data are complex
    S = FunctionOperator(s_apply, None, A.out_shape, dtype=torch.complex128 if p.complex else torch.float64,
                         device=p.mu.device, self_adjoint=True, name="A Sigma A^H + sigma_y^2 I")  # fmt: skip

    def solve_s(b):
        result = solve(S, b, CG(tol=method.rtol, max_iter=method.max_iter))
        if not bool(result.converged.all()):
            norm_b = torch.linalg.vector_norm(b.reshape(b.shape[0], -1), dim=1)
            worst = float((result.residuals[-1] / torch.where(norm_b > 0, norm_b, 1)).max())
            raise RuntimeError(
                f"conjugate gradient did not reach rtol={method.rtol:g} in {method.max_iter} iterations (relative "
                f"residual {worst:.3g}); raise max_iter, loosen rtol, or use the dense method for a small problem."
            )
        return result.x

    mean = p.mu + sigma_apply(adjoint(solve_s(p.residual())))
    root = lam.sqrt()

    def sampler(n, generator):
        x = p.mu + basis.apply(p.randn((n * p.N, *p.event), generator), root)
        e = p.sigma_y * p.randn((n * p.N, *A.out_shape), generator)
        if p.y.is_complex() or A.dtype.is_complex:
            e = torch.complex(e, p.sigma_y * p.randn((n * p.N, *A.out_shape), generator))
        y = p.y.repeat(n, *([1] * len(A.out_shape)))
        x = x + sigma_apply(adjoint(solve_s(y - A @ x - e)))
        return x.reshape(n, *p.batch, *p.event).to(p.out_dtype)

    return GaussianPosterior(p.out(mean), None, None, p.event, sampler)
