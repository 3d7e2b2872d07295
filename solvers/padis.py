"""PaDIS: Patch Diffusion Inverse Solver (Hu et al. 2024; seed 001), the DPS-style Langevin sampler
with a patch prior whose grid shift is drawn afresh at every step."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from .checks import check_instance, check_optional_real, check_real, check_sigmas
from .schedules import Geometric, Schedule
from .start import start
from .steps import gaussian_like, guidance_gradient, langevin_step, per_sample
from .tracking import Result


@runtime_checkable
class ShiftedDenoiser(Protocol):
    """A prior whose denoiser depends on a patch-grid shift m (`priors.PatchPrior`): it builds the grid
    of an image shape and denoises at a given shift."""

    def grid(self, image_shape, shift=(0, 0), *, dtype=torch.float32, device="cpu"): ...

    def denoise(self, x: torch.Tensor, sigma, shift=None, generator=None) -> torch.Tensor: ...


def random_grid_shift(prior, x: torch.Tensor, generator: torch.Generator | None) -> tuple[int, int] | None:
    """m drawn uniformly among the valid grid shifts of a patch prior, through `generator`; None for a
    whole-image prior. A grid with a single shift (P = N) draws nothing, so a patch prior with P = N
    consumes the generator exactly as the whole-image prior does."""
    if not isinstance(prior, ShiftedDenoiser):
        return None
    grid = prior.grid(x.shape[1:], dtype=x.dtype, device=x.device)
    return (0, 0) if grid.num_shifts == 1 else grid.random_shift(generator)


def tracking_epsilon(sigmas) -> float:
    """The Langevin step factor that lets the chain keep up with a decreasing schedule.

    Linear theory, for a Gaussian component of variance v: d - x = -(x - mu) sigma^2 / (v + sigma^2), so
    a step x <- x + (eps / 2)(d - x) + sqrt(eps) sigma z contracts the excess by q = 1 - (eps / 2) w,
    w = sigma^2 / (v + sigma^2), while the target variance v + sigma^2 shrinks by about r^2 =
    (sigma_{t+1} / sigma_t)^2. For v << sigma^2 (w = 1) the chain settles at

        var / sigma^2 = eps r^2 / (r^2 - q^2)        (infinite when q >= r: the chain falls behind),

    minimised at eps = 2 sqrt(1 - r^2). The components that matter most, v about sigma^2 (w = 1/2),
    contract half as fast, so we take twice that, eps = 4 sqrt(1 - r^2) with r the fastest decrease of
    the schedule, within [0.1, 1.6] (ULA is unstable at eps >= 2; measured on a Gaussian prior, the
    final variance falls monotonically with eps up to 1.6).
    """
    ratios = [b / a for a, b in zip(sigmas[:-1], sigmas[1:]) if a > 0]
    r = min(min(ratios, default=1.0), 1.0)
    return min(1.6, max(0.1, 4 * math.sqrt(1 - r**2)))


@dataclass(frozen=True)
class PaDIS:
    """The PaDIS reconstruction loop (seed 001, "PaDIS algorithm (modified from DPS)"):

        x ~ N(0, sigma_T^2 I)
        for t = T..1:
            m = random grid shift                                   (drawn with the generator)
            d = combine_k d(x_{m,k}; m, k, sigma_t)                 (one batched prior call)
            s = (d - x) / sigma_t^2
            x = x - zeta_t grad_x ||A d(x) - y||^2,   zeta_t = zeta / ||A d(x) - y||
            alpha_t = epsilon sigma_t^2
            x = x + (alpha_t / 2) s + sqrt(alpha_t) z,   z ~ N(0, I)
        return x

    The prior is any object with `denoise(x, sigma)`; a patch prior (`denoise(x, sigma, shift=m)` and a
    `grid`, e.g. `priors.PatchPrior`) gets a fresh shift m per step, shared by the batch. P = N (one
    shift) is the whole-image model. s is the score at the x the denoiser saw (before the data step),
    so each step costs one prior call and one backpropagation through it. zeta_t is per sample.

    Langevin noise. The slide writes z ~ N(0, sigma_t^2 I); we use z ~ N(0, I). Unadjusted Langevin on
    a density p with step alpha is x <- x + (alpha / 2) grad log p + sqrt(alpha) z with unit-variance z:
    its continuous limit dx = (1/2) grad log p dt + dW has p as its stationary law. Here p = p_sigma_t
    (the data blurred by N(0, sigma_t^2 I)); for a Gaussian p = N(mu, v) the chain settles at variance
    v / (1 - alpha / (4 v)) ~ v, whereas z ~ N(0, sigma_t^2 I) would settle at sigma_t^2 v: far too
    wide for sigma_t > 1, collapsed for sigma_t < 1. The factor sigma_t^2 belongs in alpha_t.

    Defaults. The paper: 1000 steps (1000 NFEs). [inferred] the rest, which the seed does not state:
    a geometric schedule from sigma_T = 40 to sigma_1 = 0.001 (the EDM range 80..0.002 of the Karras
    U-Net the paper uses, halved for [0, 1] images); epsilon = None, chosen from the schedule by
    `tracking_epsilon` so that the chain keeps up with the annealing (one Langevin step contracts the
    excess variance by (1 - epsilon / 2)^2, which must beat the per-step decrease
    (sigma_{t+1} / sigma_t)^2; 0.58 for the default schedule, 0.89 for 300 steps from 10 to 0.005).
    A chain that falls behind never recovers: the denoiser, told sigma_t but shown more noise, stops
    pulling, and the result is noise (an explicit epsilon that is too small warns). zeta = 1.0, the
    normalised step of DPS (Chung et al. 2023), for operators of norm about 1; its step has length
    about 2 zeta ||A||, so scale zeta by 1 / ||A|| for others (CT: tune it on validation images).
    """

    schedule: Schedule = field(default_factory=lambda: Geometric(40.0, 0.001, 1000))
    epsilon: float | None = None
    zeta: float = 1.0

    def __post_init__(self):
        check_instance("PaDIS", "schedule", self.schedule, Schedule, "a solvers.schedules.Schedule")
        check_sigmas("PaDIS", self.schedule)
        # a Langevin step contracts the excess by 1 - epsilon / 2 (see tracking_epsilon): |.| < 1 needs epsilon < 4
        check_optional_real("PaDIS", "epsilon", self.epsilon, 0, 4, low_open=True, high_open=True)
        check_real("PaDIS", "zeta", self.zeta, 0)

    def langevin_epsilon(self, sigmas) -> float:
        """epsilon as given (warning when the chain cannot keep up with the schedule), else
        `tracking_epsilon(sigmas)`."""
        if self.epsilon is None:
            return tracking_epsilon(sigmas)
        r = min((b / a for a, b in zip(sigmas[:-1], sigmas[1:]) if a > 0), default=1.0)
        if 1 - self.epsilon / 2 >= r:
            warnings.warn(
                f"PaDIS: epsilon = {self.epsilon:g} contracts the Langevin chain by {1 - self.epsilon / 2:.3g} per "
                f"step, slower than the schedule's sigma decreases ({r:.3g}): the chain falls behind and the "
                f"result stays noisy; use epsilon > {2 * (1 - r):.3g} (epsilon=None picks "
                f"{tracking_epsilon(sigmas):.3g}) or more steps",
                RuntimeWarning,
                stacklevel=3,
            )
        return self.epsilon

    def __call__(
        self, y, A, prior, *, generator=None, callback=None, progress=True, x_true=None, convention=None
    ) -> Result:
        run = start("PaDIS", y, A, prior, needs=("denoise",), schedule=self.schedule, callback=callback,
                    progress=progress, x_true=x_true, convention=convention)
        y, prior, counted, track, sigmas = run.y, run.problem.prior, run.prior, run.track, run.sigmas
        epsilon = self.langevin_epsilon(sigmas)
        x = sigmas[0] * gaussian_like(run.zeros(), generator)
        for n, sigma_t in enumerate(sigmas):
            m = random_grid_shift(prior, x, generator)
            denoise = counted.denoise if m is None else (lambda v, s, m=m: counted.denoise(v, s, shift=m))
            d, grad, norm = guidance_gradient(x, y, A, denoise, sigma_t)
            track.gradients()
            s = (d - x) / sigma_t**2
            zeta_t = self.zeta / norm.clamp(min=1e-30)
            x = x - per_sample(zeta_t, x) * grad
            alpha_t = epsilon * sigma_t**2
            x = langevin_step(x, s, gaussian_like(x, generator), alpha_t)
            track.step(n, sigma_t, x, estimate=d)
        return track.result(x)
