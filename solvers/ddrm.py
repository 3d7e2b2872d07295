"""DDRM: Denoising Diffusion Restoration Models (Kawar et al. 2022), in VE form, in the SVD of A."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch

from linops.spectral import DenseSVD, GramEigh, RandomizedSVD, SymmetricGramEigh, cached_svd, structured_svd

from .checks import check_instance, check_real, check_sigmas
from .schedules import Geometric, Schedule, append_zero
from .start import start
from .steps import gaussian_like
from .tracking import Result


class ComputedSVDWarning(UserWarning):
    """DDRM had to compute an SVD because the operator has no structured one."""


@dataclass(frozen=True)
class DDRM:
    """DDRM in the SVD A = U diag(s) V^H, with spectral coordinates x_bar = V^H x and
    y_bar = diag(1/s) U^H y (s > 0). From x_T, for each noise level sigma -> sigma_next, with
    x0_bar = V^H denoise(x, sigma) and eps_bar = (x_bar - x0_bar) / sigma, coordinate by coordinate:

        s_i = 0:                     x0_bar + sqrt(1 - eta^2) sigma_next eps_bar + eta sigma_next z
        s_i sigma_next < sigma_y:    x0_bar + sqrt(1 - eta^2) sigma_next (y_bar - x0_bar) s_i / sigma_y
                                            + eta sigma_next z
        otherwise:                   (1 - eta_b) x0_bar + eta_b y_bar
                                            + sqrt(sigma_next^2 - eta_b^2 sigma_y^2 / s_i^2) z

    Directions outside the range of V (a truncated SVD) follow the s_i = 0 rule through the
    projector I - V V^H, so no basis of the null space is needed. Singular values below
    `singular_value_cutoff` count as zero (the DDGM paper zeroes those below 1/30 and starts at
    sigma = 30, inside the denoiser's training range). Initialisation at sigma_T: y_bar plus noise
    of variance sigma_T^2 - sigma_y^2 / s_i^2 where s_i sigma_T >= sigma_y, else sigma_T z
    ([inferred] for 0 < s_i sigma_T < sigma_y, where the paper assumes that cannot happen).

    `sigma_y` is the standard deviation of the measurement noise, in the units of y. The schedule is in
    the prior's units; `convention=` on the call states y's units when they differ (see `solvers.problem`).
    """

    schedule: Schedule = field(default_factory=lambda: Geometric(30.0, 0.03, 20))
    sigma_y: float = 0.0
    eta: float = 0.85
    eta_b: float = 1.0
    singular_value_cutoff: float = 0.0
    svd_algorithm: DenseSVD | GramEigh | SymmetricGramEigh | RandomizedSVD | None = None

    def __post_init__(self):
        check_instance("DDRM", "schedule", self.schedule, Schedule, "a solvers.schedules.Schedule")
        check_sigmas("DDRM", self.schedule)
        check_real("DDRM", "sigma_y", self.sigma_y, 0)
        check_real("DDRM", "eta", self.eta, 0, 1)
        check_real("DDRM", "eta_b", self.eta_b, 0, 1)
        check_real("DDRM", "singular_value_cutoff", self.singular_value_cutoff, 0)
        if self.svd_algorithm is not None:
            check_instance("DDRM", "svd_algorithm", self.svd_algorithm,
                           (DenseSVD, GramEigh, SymmetricGramEigh, RandomizedSVD),
                           "None, DenseSVD(), GramEigh(), SymmetricGramEigh() or RandomizedSVD(...)")

    @classmethod
    def ddgm_paper(cls, sigma_y: float, steps: int = 10, svd_algorithm=None) -> DDRM:
        """The DDGM paper's setting: eta = eta_b = 1, sigma 30 -> 0.03 in 10 steps, s < 1/30 zeroed."""
        return cls(Geometric(30.0, 0.03, steps), sigma_y=sigma_y, eta=1.0, eta_b=1.0, singular_value_cutoff=1 / 30,
                   svd_algorithm=svd_algorithm)

    def decomposition(self, A):
        """A's SVD: structured when the operator's type knows it, else computed (with a warning)."""
        svd = structured_svd(A) or cached_svd(A, self.svd_algorithm)
        if svd is None:
            m, n = A.shape
            how = self.svd_algorithm or "a dense SVD"
            warnings.warn(
                f"DDRM needs the SVD of {A!r}, which has no structured SVD; computing {how} of a {m} x {n} "
                f"operator (dense: {m * n * 4 / 2**30:.2f} GiB in float32). Pass svd_algorithm="
                "RandomizedSVD(threshold=...) to truncate; computed SVDs are cached on the operator.",
                ComputedSVDWarning,
                stacklevel=3,
            )
            svd = A.svd(self.svd_algorithm)
        if svd.V.dtype.is_complex and not A.dtype.is_complex:
            raise ValueError(f"DDRM needs a real singular basis for the real operator {A!r}")
        return svd

    def __call__(
        self, y, A, prior, *, generator=None, callback=None, progress=True, x_true=None, convention=None
    ) -> Result:
        run = start("DDRM", y, A, prior, needs=("denoise",), schedule=self.schedule, callback=callback,
                    progress=progress, x_true=x_true, convention=convention)
        y, denoise, track, sigmas = run.y, run.prior.denoise, run.track, run.sigmas
        svd = self.decomposition(A)
        U, V, P = svd.U, svd.V, svd.complement
        s = torch.where(svd.s > self.singular_value_cutoff, svd.s, 0).to(y.real.dtype)
        observed = s > 0
        s_safe = torch.where(observed, s, 1)
        y_bar = torch.where(observed, (U.H @ y) / s_safe, 0)
        sigma_y, eta, eta_b = self.sigma_y * run.problem.noise_scale, self.eta, self.eta_b
        noise_of_y_bar = sigma_y / s_safe  # the std of y_bar's noise, where observed

        sigma_T = sigmas[0]
        z = gaussian_like(y_bar, generator)
        confident = observed & (s * sigma_T >= sigma_y)
        x_bar = torch.where(confident, y_bar + (sigma_T**2 - noise_of_y_bar**2).clamp(min=0).sqrt() * z, sigma_T * z)
        x = V @ x_bar
        if not svd.complete:  # directions V does not reach follow the s_i = 0 rule through P = I - V V^H
            x = x + P @ (sigma_T * gaussian_like(x, generator))

        for n, (sigma, sigma_next) in enumerate(zip(sigmas, append_zero(torch.tensor(sigmas))[1:].tolist())):
            with torch.no_grad():
                x0 = denoise(x, sigma)
            x0_bar, eps_bar = V.H @ x0, (V.H @ x - V.H @ x0) / sigma
            z = gaussian_like(x0_bar, generator)
            keep = math.sqrt(1 - eta**2) * sigma_next
            unobserved = x0_bar + keep * eps_bar + eta * sigma_next * z
            weak = x0_bar + keep * (y_bar - x0_bar) / noise_of_y_bar.clamp(min=1e-30) + eta * sigma_next * z
            strong = (
                (1 - eta_b) * x0_bar
                + eta_b * y_bar
                + (sigma_next**2 - eta_b**2 * noise_of_y_bar**2).clamp(min=0).sqrt() * z
            )
            x_bar = torch.where(~observed, unobserved, torch.where(s * sigma_next < sigma_y, weak, strong))
            if svd.complete:
                x = V @ x_bar
            else:  # the s_i = 0 rule through P, from this step's x (not from V x_bar, which has no P part)
                x = V @ x_bar + P @ (x0 + keep * (x - x0) / sigma + eta * sigma_next * gaussian_like(x0, generator))
            track.step(n, sigma, x, estimate=x0)
        return track.result(x)
