"""DDGM: Diffusive Denoising of Gradient-based Minimization (Luther & Seung), and its Eq. 2
unconditional sampler."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .checks import check_instance, check_int, check_optional_real, check_real, check_sigmas
from .schedules import DDGMUnconditionalSchedule, Geometric, Schedule
from .start import start
from .steps import eq2_step, gaussian_like, gradient_descent, stable_step_size
from .tracking import Result, Tracker


@dataclass(frozen=True)
class DDGM:
    """Algorithm 1 of Luther & Seung: K gradient steps on ||A x - y||^2, then noise, then one
    full denoising step with a blind denoiser, over a geometric schedule sigma_1 > ... > sigma_N.

        x = 0
        for n = 1..N:
            repeat K times:  x <- x - lambda grad_x ||A x - y||^2      (= x - 2 lambda A^H (A x - y))
            x <- x + sigma_n z,   z ~ N(0, I)
            x <- x - sigma_n eps_theta(x)

    Paper defaults: sigma 3.0 -> 0.03, N = 150, K = 15 (best); N = 50, K = 25 with 50 denoiser calls.
    lambda defaults to step_fraction / ||A||^2, inside the stability bound 1 / ||A||^2.
    """

    schedule: Schedule = field(default_factory=lambda: Geometric(3.0, 0.03, 150))
    gradient_steps: int = 15
    step_size: float | None = None
    step_fraction: float = 0.9

    def __post_init__(self):
        check_instance("DDGM", "schedule", self.schedule, Schedule, "a solvers.schedules.Schedule")
        check_sigmas("DDGM", self.schedule, allow_zero=True)
        check_int("DDGM", "gradient_steps", self.gradient_steps, 0)
        check_optional_real("DDGM", "step_size", self.step_size, 0, low_open=True)
        check_real("DDGM", "step_fraction", self.step_fraction, 0, 1, low_open=True, high_open=True)

    @classmethod
    def fast(cls) -> DDGM:
        """The paper's best setting with 50 denoiser calls: N = 50, K = 25."""
        return cls(Geometric(3.0, 0.03, 50), gradient_steps=25)

    def __call__(
        self, y, A, prior, *, generator=None, callback=None, progress=True, x_true=None, convention=None
    ) -> Result:
        run = start("DDGM", y, A, prior, needs=("eps",), schedule=self.schedule, callback=callback,
                    progress=progress, x_true=x_true, convention=convention)
        y, eps_theta, track = run.y, run.prior.eps, run.track
        lam = stable_step_size(A, self.step_size, self.step_fraction)
        x = run.zeros()
        for n, sigma in enumerate(run.sigmas):
            x = gradient_descent(x, y, A, lam, self.gradient_steps)
            track.gradients(self.gradient_steps)
            x = x + sigma * gaussian_like(x, generator)
            with torch.no_grad():
                x = x - sigma * eps_theta(x, sigma)
            track.step(n, sigma, x)
        return track.result(x)


@dataclass(frozen=True)
class DDGMUnconditional:
    """Unconditional generation with a blind denoiser (DDGM's Eq. 2):

        x_1 = sigma_1 z
        x_{n+1} = x_n - alpha sigma_n eps_theta(x_n) + sqrt(alpha beta) sigma_n z_n,
        sigma_n = sigma_1 ((1 - alpha)^2 + alpha beta)^((n - 1) / 2)

    Paper: sigma_1 = 30, alpha = 0.183, beta = 0.5, 50 steps.
    """

    schedule: DDGMUnconditionalSchedule = field(default_factory=DDGMUnconditionalSchedule)

    def __post_init__(self):
        check_instance("DDGMUnconditional", "schedule", self.schedule, DDGMUnconditionalSchedule,
                       "a DDGMUnconditionalSchedule (Eq. 2 ties the schedule to the step alpha, beta)")

    def __call__(
        self,
        shape,
        prior,
        *,
        batch: int = 1,
        generator=None,
        callback=None,
        progress=True,
        dtype=torch.float32,
        device="cpu",
    ) -> Result:
        s = self.schedule
        sigmas = s.sigmas().tolist()
        track = Tracker("DDGM-unconditional", len(sigmas), callback=callback, progress=progress)
        eps_theta = track.watch(prior).eps
        x = sigmas[0] * torch.randn((batch, *shape), generator=generator, dtype=dtype, device=device)
        for n, sigma in enumerate(sigmas):
            with torch.no_grad():
                x = eq2_step(x, eps_theta(x, sigma), gaussian_like(x, generator), sigma, s.alpha, s.beta)
            track.step(n, sigma, x)
        return track.result(x)
