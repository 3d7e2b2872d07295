"""The eigenstructure of a Gaussian covariance, read off the type of its operator.

Every covariance used by the analytic priors is written Sigma = U diag(lam) U^H with U known:

    Diagonal(w)              U = I,              lam = w                      (elementwise)
    CircularBlur (transfer)  U = real 2-D DFT,   lam = the transfer function  (stationary images)
    Matrix / anything else   U = Q from eigh,    lam = eigenvalues            (dense, small problems)

so that any spectral function f(Sigma) x = U f(lam) U^H x costs one elementwise product, two FFTs,
or two dense products. The Gaussian denoiser, score, log density, sampler and the structured
posteriors are all spectral functions of Sigma (and of sigma^2, possibly one per sample).

`covariance_eigenbasis` consults `eigenbasis_rules`, a rule table keyed by operator type (linops.rules'
RuleTable, looked up along the MRO like the operators' own rules): register a new operator type with
`@eigenbasis_rules.register(MyOperator)`, a function returning its `Eigenbasis`.
"""

from __future__ import annotations

import abc
import math

import torch

from linops import CircularBlur, Diagonal, Identity, LinearOperator, Matrix
from linops.algebra import Scaled
from linops.rules import RuleTable


def _tolerance(dtype: torch.dtype, n: int = 1) -> float:
    """Relative tolerance for symmetry / positivity checks of data given in `dtype`."""
    real = dtype.to_real() if dtype.is_complex else dtype
    return 100 * max(n, 1) ** 0.5 * torch.finfo(real).eps


class Eigenbasis(abc.ABC):
    """Sigma = U diag(lam) U^H for a covariance on tensors of shape `event_shape`.

    `lam` (float64, non-negative) has the shape of the coefficients U^H x of one sample.
    Subclasses provide `forward` (x -> U^H x), `inverse` (c -> U c), the full list of the n
    eigenvalues, a rescaled copy, the covariance as a linops operator and its device move.
    """

    event_shape: tuple[int, ...]
    lam: torch.Tensor

    @property
    def size(self) -> int:
        return math.prod(self.event_shape)

    @property
    def coef_ndim(self) -> int:
        return self.lam.ndim

    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """U^H x for x of shape (N, *event_shape)."""

    @abc.abstractmethod
    def inverse(self, c: torch.Tensor) -> torch.Tensor:
        """U c, back to shape (N, *event_shape)."""

    @abc.abstractmethod
    def eigenvalues(self) -> torch.Tensor:
        """All n = prod(event_shape) eigenvalues of Sigma (float64, flat), with multiplicity."""

    @abc.abstractmethod
    def scaled(self, c: float) -> Eigenbasis:
        """The eigenstructure of c Sigma (c >= 0)."""

    @abc.abstractmethod
    def operator(self, dtype: torch.dtype = torch.float64) -> LinearOperator:
        """Sigma as a linops operator of the same structure."""

    @abc.abstractmethod
    def to(self, device) -> Eigenbasis:
        """A copy on another device."""

    def lam_as(self, ref: torch.Tensor) -> torch.Tensor:
        """lam in the precision and on the device of `ref`."""
        return self.lam.to(device=ref.device, dtype=ref.real.dtype if ref.is_complex() else ref.dtype)

    def per_sample(self, v: torch.Tensor) -> torch.Tensor:
        """A per-sample vector (N,) shaped (N, 1, ..., 1) to broadcast against coefficients."""
        return v.reshape(-1, *([1] * self.coef_ndim))

    def apply(self, x: torch.Tensor, multiplier: torch.Tensor) -> torch.Tensor:
        """U diag(multiplier) U^H x; `multiplier` broadcasts against (N, *lam.shape)."""
        return self.inverse(multiplier * self.forward(x))

    def dense(self) -> torch.Tensor:
        """Sigma as a dense float64 (n, n) matrix (small problems only)."""
        return self.operator(torch.float64).to_dense()


class DiagonalBasis(Eigenbasis):
    """Sigma = diag(w): U = I."""

    def __init__(self, variances: torch.Tensor, event_shape):
        self.event_shape = tuple(event_shape)
        self.lam = variances.to(torch.float64).expand(self.event_shape).clone()

    def forward(self, x):
        return x

    def inverse(self, c):
        return c

    def eigenvalues(self):
        return self.lam.reshape(-1)

    def scaled(self, c):
        return DiagonalBasis(c * self.lam, self.event_shape)

    def operator(self, dtype=torch.float64):
        return Diagonal(self.lam.to(dtype), self.event_shape)

    def to(self, device):
        return DiagonalBasis(self.lam.to(device), self.event_shape)


class FourierBasis(Eigenbasis):
    """Sigma = circulant (stationary) covariance on (..., H, W): U = the 2-D DFT over the last two axes.

    lam is the rfft2 transfer function (shape (..., H, W // 2 + 1)); it must be real and
    non-negative, i.e. the covariance kernel is real, symmetric (k[-i, -j] = k[i, j]) and positive
    semi-definite (its power spectrum is >= 0).
    """

    def __init__(self, transfer: torch.Tensor, event_shape, *, source_dtype: torch.dtype | None = None):
        self.event_shape = tuple(event_shape)
        if len(self.event_shape) < 2:
            raise ValueError(f"a Fourier-diagonal covariance needs event shape (..., H, W), got {self.event_shape}")
        H, W = self.event_shape[-2:]
        source_dtype = source_dtype or transfer.dtype
        t = transfer.to(torch.complex128 if transfer.is_complex() else torch.float64)
        scale = float(t.abs().max()) if t.numel() else 0.0
        tol = _tolerance(source_dtype, H * W) * max(scale, 1e-300)
        if t.is_complex():
            imag = float(t.imag.abs().max())
            if imag > tol:
                raise ValueError(
                    f"the covariance transfer function has imaginary parts up to {imag:.3g} (max |value| {scale:.3g}): "
                    "a covariance must be symmetric, so its circular kernel must satisfy k[-i, -j] = k[i, j]. "
                    "Build it from a real power spectrum with `stationary_covariance`."
                )
            t = t.real
        # The full spectrum of the real kernel; its left half must reproduce t (Hermitian symmetry).
        full = torch.fft.fft2(torch.fft.irfft2(t, s=(H, W))).real
        if float((full[..., : W // 2 + 1] - t).abs().max()) > tol:
            raise ValueError(
                "the covariance transfer function is not the spectrum of a real symmetric kernel "
                "(its columns 0 and W/2 are not symmetric in the row frequency); "
                "build it from a symmetric power spectrum with `stationary_covariance`."
            )
        if float(full.min()) < -tol:
            raise ValueError(
                f"the covariance is not positive semi-definite: its power spectrum has a minimum of "
                f"{float(full.min()):.3g} (max {scale:.3g}); every spectral value must be >= 0."
            )
        coef_shape = (*self.event_shape[:-1], W // 2 + 1)
        try:
            self.lam = t.clamp_min(0).expand(coef_shape).clone()
            self._full = full.clamp_min(0).expand(self.event_shape).clone()
        except RuntimeError:
            raise ValueError(
                f"transfer function of shape {tuple(transfer.shape)} does not broadcast to {coef_shape} "
                f"(the rfft2 shape of images {self.event_shape})"
            ) from None

    def forward(self, x):
        return torch.fft.rfft2(x)

    def inverse(self, c):
        return torch.fft.irfft2(c, s=self.event_shape[-2:])

    def eigenvalues(self):
        return self._full.reshape(-1)

    def scaled(self, c):
        new = object.__new__(FourierBasis)
        new.event_shape, new.lam, new._full = self.event_shape, c * self.lam, c * self._full
        return new

    def operator(self, dtype=torch.float64):
        return CircularBlur.from_transfer_function(self.lam.to(dtype), self.event_shape)

    def to(self, device):
        new = object.__new__(FourierBasis)
        new.event_shape, new.lam, new._full = self.event_shape, self.lam.to(device), self._full.to(device)
        return new


class DenseBasis(Eigenbasis):
    """Sigma = Q diag(lam) Q^T from a symmetric eigendecomposition (float64)."""

    def __init__(self, matrix: torch.Tensor, event_shape, *, source_dtype: torch.dtype | None = None):
        self.event_shape = tuple(event_shape)
        n = math.prod(self.event_shape)
        if matrix.is_complex():
            raise TypeError("GaussianPrior models real images: the covariance must be a real operator")
        if tuple(matrix.shape) != (n, n):
            raise ValueError(f"a dense covariance for events {self.event_shape} must be {n} x {n}, got {matrix.shape}")
        m = matrix.to(torch.float64)
        scale = float(m.abs().max()) if m.numel() else 0.0
        tol = _tolerance(source_dtype or matrix.dtype, n) * max(scale, 1e-300)
        asym = float((m - m.T).abs().max())
        if asym > tol:
            raise ValueError(
                f"the covariance matrix is not symmetric (max |S - S^T| = {asym:.3g}, max |S| = {scale:.3g}); "
                "a covariance must satisfy S = S^T."
            )
        lam, q = torch.linalg.eigh((m + m.T) / 2)
        if float(lam.min()) < -tol:
            raise ValueError(
                f"the covariance matrix is not positive semi-definite: its smallest eigenvalue is "
                f"{float(lam.min()):.3g} (largest {float(lam.max()):.3g})."
            )
        self.lam, self.q = lam.clamp_min(0), q

    @classmethod
    def _from_parts(cls, q, lam, event_shape):
        new = object.__new__(cls)
        new.event_shape, new.q, new.lam = tuple(event_shape), q, lam
        return new

    def forward(self, x):
        return x.reshape(x.shape[0], -1) @ self.q.to(x.dtype)

    def inverse(self, c):
        return (c @ self.q.to(c.dtype).T).reshape(c.shape[0], *self.event_shape)

    def eigenvalues(self):
        return self.lam

    def scaled(self, c):
        return DenseBasis._from_parts(self.q, c * self.lam, self.event_shape)

    def dense(self):
        return (self.q * self.lam) @ self.q.T

    def operator(self, dtype=torch.float64):
        return Matrix(self.dense().to(dtype), self.event_shape, self.event_shape)

    def to(self, device):
        return DenseBasis._from_parts(self.q.to(device), self.lam.to(device), self.event_shape)


# ------------------------------------------------------------------------------------------------
# the rule table: operator type -> eigenstructure


eigenbasis_rules = RuleTable("covariance eigenbasis", 1)


def covariance_eigenbasis(cov: LinearOperator) -> Eigenbasis:
    """The eigenstructure of a covariance operator, by the rule of its type (`eigenbasis_rules`); types
    without one fall back to a dense eigh."""
    if not isinstance(cov, LinearOperator):
        raise TypeError(
            f"a covariance is a linops operator (Diagonal, CircularBlur, Matrix, ...), got {type(cov).__name__}"
        )
    basis = eigenbasis_rules.rewrite(cov)
    if basis is not None:
        return basis
    _check_square(cov)
    n = cov.shape[0]
    if n > 8192:
        raise ValueError(
            f"covariance {cov!r} of size {n} has no known eigenstructure and is too large for a dense "
            "eigendecomposition; give it as linops.Diagonal, a stationary linops.CircularBlur, or register "
            "its type with `eigenbasis_rules.register`."
        )
    return DenseBasis(cov.to(torch.float64).to_dense(), cov.in_shape, source_dtype=cov.dtype)


def _check_square(cov: LinearOperator) -> None:
    if cov.in_shape != cov.out_shape:
        raise ValueError(
            f"a covariance maps images to images of the same shape; {cov!r} maps {cov.in_shape} -> {cov.out_shape}"
        )
    if cov.dtype.is_complex:
        raise TypeError(f"GaussianPrior models real images: the covariance must be real, got {cov.dtype}")


@eigenbasis_rules.register(Identity)
def _identity(cov):
    return DiagonalBasis(torch.ones((), dtype=torch.float64, device=cov.device), cov.in_shape)


@eigenbasis_rules.register(Diagonal)
def _diagonal(cov):
    _check_square(cov)
    w = cov.weights
    tol = _tolerance(w.dtype) * max(float(w.abs().max()), 1e-300)
    if float(w.min()) < -tol:
        raise ValueError(f"a diagonal covariance needs non-negative variances, got a minimum of {float(w.min()):.3g}")
    return DiagonalBasis(w.clamp_min(0), cov.in_shape)


@eigenbasis_rules.register(CircularBlur)
def _circulant(cov):
    _check_square(cov)
    return FourierBasis(cov.transfer, cov.in_shape, source_dtype=cov.dtype)


@eigenbasis_rules.register(Matrix)
def _matrix(cov):
    _check_square(cov)
    return DenseBasis(cov.matrix, cov.in_shape, source_dtype=cov.dtype)


@eigenbasis_rules.register(Scaled)
def _scaled(cov):
    c = cov.c
    if isinstance(c, complex) or c < 0:
        raise ValueError(f"a covariance c * S needs a real c >= 0, got c = {c}")
    return covariance_eigenbasis(cov.op).scaled(c)


# ------------------------------------------------------------------------------------------------
# building stationary covariances


def stationary_covariance(power_spectrum: torch.Tensor, in_shape=None) -> CircularBlur:
    """The circulant covariance of a stationary (periodic) random image with a given power spectrum.

    Sigma = F^H diag(P) F with F the orthonormal 2-D DFT, i.e. Cov[x_p, x_q] = k[p - q] with
    k = ifft2(P). `power_spectrum` P has shape (..., H, W) in unshifted order (frequency (0, 0) at
    index (0, 0)), is real, non-negative and symmetric, P[-u, -v] = P[u, v] (e.g. built by
    `isotropic_power_spectrum`). The eigenvalues of Sigma are the entries of P. Leading axes of P
    give per-channel spectra; `in_shape` (default P.shape) may add leading axes P broadcasts over.
    """
    p = torch.as_tensor(power_spectrum)
    if p.is_complex() or not p.dtype.is_floating_point:
        raise TypeError(f"a power spectrum is a real floating tensor, got {p.dtype}")
    if p.ndim < 2:
        raise ValueError(f"a power spectrum has shape (..., H, W), got {tuple(p.shape)}")
    in_shape = tuple(p.shape) if in_shape is None else tuple(in_shape)
    H, W = p.shape[-2:]
    mirrored = torch.roll(torch.flip(p, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
    tol = _tolerance(p.dtype) * max(float(p.abs().max()), 1e-300)
    if float((mirrored - p).abs().max()) > tol:
        raise ValueError(
            "the power spectrum must be symmetric, P[-u, -v] = P[u, v], for the covariance to be real; "
            "symmetrize it with (P + P[-u, -v]) / 2 or build it with `isotropic_power_spectrum`."
        )
    if float(p.min()) < -tol:
        raise ValueError(f"a power spectrum must be non-negative, got a minimum of {float(p.min()):.3g}")
    return CircularBlur.from_transfer_function(p[..., : W // 2 + 1].clamp_min(0), in_shape)


def isotropic_power_spectrum(shape, fn, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """P[u, v] = fn(|f|) on the (H, W) DFT grid, |f| = sqrt(fu^2 + fv^2) in cycles per pixel (fftfreq).

    Symmetric by construction. Example: a 1/f^alpha image model,
    `isotropic_power_spectrum((64, 64), lambda f: 1 / (f**2 + 0.01) ** alpha)`.
    """
    H, W = shape[-2:]
    fu = torch.fft.fftfreq(H, dtype=dtype)[:, None]
    fv = torch.fft.fftfreq(W, dtype=dtype)[None, :]
    return torch.as_tensor(fn(torch.sqrt(fu**2 + fv**2)), dtype=dtype)
