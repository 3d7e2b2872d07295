"""Tikhonov regularisation in the SVD of A: the classical one-shot regularised inverse."""

from __future__ import annotations

from dataclasses import dataclass

from linops.spectral import structured_svd

from ..start import start
from ..tracking import Result


@dataclass(frozen=True)
class TikhonovSVD:
    """x = argmin_x ||A x - y||^2 + mu ||x||^2 = V diag(s / (s^2 + mu)) U^H y   (Tikhonov 1963),

    in A's SVD A = U diag(s) V^H (`linops.svd`): structured when the operator's type knows it, so for a
    circulant operator (a blur, `linops.TransportOfIntensity`) it is the regularised Fourier inverse that
    US-TIE plays for the TIE (Zhang et al. 2020, the CVDM seed's classical baseline). Directions with s = 0
    (the TIE's constant phase) are set to zero. One step in the trace; no prior, no randomness.

    Attributes:
        regularization: mu > 0 (the filter s / (s^2 + mu) halves the gain at s = sqrt(mu)).
    """

    regularization: float

    def __post_init__(self):
        if not self.regularization > 0:
            raise ValueError(f"TikhonovSVD: regularization must be positive, got {self.regularization!r}")

    def __call__(self, y, A, prior=None, *, generator=None, callback=None, progress=True, x_true=None) -> Result:
        run = start("Tikhonov", y, A, steps=1, callback=callback, progress=progress, x_true=x_true)
        y, track = run.y, run.track
        svd = structured_svd(A) or A.svd()
        s = svd.s.to(y.dtype)
        x = svd.V @ (s / (s**2 + self.regularization) * (svd.U.H @ y))
        track.step(0, 0.0, x)
        return track.result(x)
