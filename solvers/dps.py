"""DPS: Diffusion Posterior Sampling (Chung et al. 2023), in VE form on DDGM's Eq. 2 sampler, with the
DDGM paper's rescaled variant DPS* (its Eq. 6)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .checks import check_instance, check_real
from .schedules import DDGMUnconditionalSchedule
from .start import start
from .steps import eq2_step, gaussian_like, guidance_gradient, per_sample
from .tracking import Result


@dataclass(frozen=True)
class DPS:
    """One prior call per step: x0_hat = denoise(x_n, sigma_n) (through autograd), eps = (x_n - x0_hat)
    / sigma_n, then the unconditional Eq. 2 step plus a normalised data-gradient step:

        x_{n+1} = x_n - alpha sigma_n eps + sqrt(alpha beta) sigma_n z
                  - zeta grad_x ||A x0_hat(x_n) - y||^2 / (c_n ||A x0_hat(x_n) - y||),

    c_n = sqrt(1 + sigma_n^2) for DPS* (`rescaled=True`, DDGM's Eq. 6: x_n is about sqrt(1 + sigma_n^2)
    times a unit-variance image in the VE regime) and c_n = 1 for plain DPS. The result is the last
    x0_hat. DDGM paper's best DPS*: sigma 3 -> 0.03 over 1000 steps (alpha from the endpoints,
    beta = 0.5), zeta = 0.1.
    """

    schedule: DDGMUnconditionalSchedule = field(
        default_factory=lambda: DDGMUnconditionalSchedule.from_endpoints(3.0, 0.03, 1000)
    )
    zeta: float = 0.1
    rescaled: bool = True

    def __post_init__(self):
        check_instance("DPS", "schedule", self.schedule, DDGMUnconditionalSchedule,
                       "a DDGMUnconditionalSchedule (the Eq. 2 step ties the schedule to alpha and beta)")
        check_real("DPS", "zeta", self.zeta, 0)
        check_instance("DPS", "rescaled", self.rescaled, bool, "True or False")

    def __call__(
        self, y, A, prior, *, generator=None, callback=None, progress=True, x_true=None, convention=None
    ) -> Result:
        sched = self.schedule
        run = start("DPS*" if self.rescaled else "DPS", y, A, prior, needs=("denoise",), schedule=sched,
                    callback=callback, progress=progress, x_true=x_true, convention=convention)
        y, denoise, track, sigmas = run.y, run.prior.denoise, run.track, run.sigmas
        x = sigmas[0] * gaussian_like(run.zeros(), generator)
        x0 = x
        for n, sigma in enumerate(sigmas):
            x0, grad, norm = guidance_gradient(x, y, A, denoise, sigma)
            track.gradients()
            scale = self.zeta / (norm * (math.sqrt(1 + sigma**2) if self.rescaled else 1.0)).clamp(min=1e-30)
            eps = (x - x0) / sigma
            x = eq2_step(x, eps, gaussian_like(x, generator), sigma, sched.alpha, sched.beta)
            x = x - per_sample(scale, x) * grad
            track.step(n, sigma, x, estimate=x0)
        return track.result(x0)
