"""Quality checks of a trained prior on held-out images (`Split.TEST`), with fixed noise: what the model card
reports. PSNR is `priors.metrics.psnr`, with each clean image's own range (max - min) as the peak: the PSNR
in [0, 1] units for every family here, standardized or not (the generators span [0, 1] exactly)."""

from __future__ import annotations

import torch

from ..data import Split
from ..metrics import psnr
from .images import training_images
from .recipes import ConditionalDiffusion, IncrementalReconstruction, Normalization, Recipe

QUALITY_IMAGES = 8
QUALITY_SEED = 1234
QUALITY_SIGMAS = {
    Normalization.UNIT: (0.02, 0.05, 0.1, 0.2),
    Normalization.STANDARDIZE: (0.1, 0.3, 1.0, 3.0),
    Normalization.ZERO_MEAN: (0.02, 0.05, 0.1, 0.2),
}
QUALITY_TIMES = (0.25, 0.5, 0.75)
QUALITY_NOISE = 0.1  # sigma_I of the conditional priors' check (the middle of the seed's training range)
QUALITY_SEVERITIES = (0.25, 0.5, 0.75, 1.0)


@torch.no_grad()
def measure_quality(r: Recipe, prior, count: int = QUALITY_IMAGES) -> dict:
    """Held-out (Split.TEST) checks, with fixed noise (seed `QUALITY_SEED`).

    Denoisers: the PSNR of denoise(x0 + sigma z, sigma) against that of the noisy input at a few sigmas,
    and the same on `count` training images (a gap between the two shows memorisation).
    Dirac networks: at a few severities t, the PSNR of Phi(y_t, t) against that of y_t, and the PSNR
    in the look-ahead domain the IR loss trains, A_tau Phi(y_t, t) vs A_tau x0 (tau = max(t - dt, 0)),
    against that of A_tau y_t."""
    clean, _ = training_images(r, Split.TEST, count)
    g = torch.Generator().manual_seed(QUALITY_SEED)
    out = {"images": clean.shape[0], "split": "test", "image_size": clean.shape[-1]}
    if isinstance(r.objective, ConditionalDiffusion):
        return {**out, **_conditional_quality(r.objective, prior, clean, g)}
    if isinstance(r.objective, IncrementalReconstruction):
        rows = []
        for t in QUALITY_SEVERITIES:
            y = prior.process.sample(clean, t, g)
            x0_hat = prior(y, t)
            tau = max(t - r.objective.dt, 0.0)
            A = prior.process.operator(tau)
            row = _row("t", t, y, x0_hat, clean)
            row["tau"] = round(tau, 4)
            row["input_psnr_at_tau"] = round(float(psnr(A @ y, A @ clean).mean()), 2)
            row["output_psnr_at_tau"] = round(float(psnr(A @ x0_hat, A @ clean).mean()), 2)
            rows.append(row)
        return {**out, "severities": rows}
    train_clean, _ = training_images(r, Split.TRAIN, min(count, r.data.count))
    rows = []
    for sigma in QUALITY_SIGMAS[r.data.normalization]:
        noisy = clean + sigma * torch.randn(clean.shape, generator=g)
        row = _row("sigma", sigma, noisy, prior.denoise(noisy, sigma), clean)
        noisy_train = train_clean + sigma * torch.randn(train_clean.shape, generator=g)
        row["train_output_psnr"] = round(float(psnr(prior.denoise(noisy_train, sigma), train_clean).mean()), 2)
        rows.append(row)
    return {**out, "sigmas": rows}


def _conditional_quality(obj: ConditionalDiffusion, prior, clean: torch.Tensor, g: torch.Generator) -> dict:
    """Conditional priors, at sigma_I = QUALITY_NOISE: the learned schedule (lambda(y) over the pixels,
    gamma at the boundary times t_0 = 1 / T and t_1 = 1 - 1 / T, where the loss wants 1 and 0) and the
    one-step estimate x0_hat = (z_t - sqrt(1 - gamma) eps_hat) / sqrt(gamma) at a few t, against the
    Tikhonov inverse the network is given (the classical reference)."""
    m = obj.measurement
    y = m.simulate(clean, g, QUALITY_NOISE)
    c = prior.condition(y)
    lam = prior.lam(c)
    T = obj.steps
    gamma_0, gamma_1 = prior.gamma(1 / T, lam), prior.gamma(1 - 1 / T, lam)
    reference = round(float(psnr(m.regularized_inverse(y, m.condition_regularization), clean).mean()), 2)
    rows = []
    for t in QUALITY_TIMES:
        gamma = prior.gamma(t, lam)
        z = gamma.sqrt() * clean + (1 - gamma).sqrt() * torch.randn(clean.shape, generator=g)
        x0_hat = (z - (1 - gamma).sqrt() * prior.eps(z, c, gamma)) / gamma.sqrt()
        rows.append({"t": t, "mean_gamma": round(float(gamma.mean()), 4),
                     "output_psnr": round(float(psnr(x0_hat, clean).mean()), 2)})
    schedule = {
        "lambda_mean": round(float(lam.mean()), 4),
        "lambda_min": round(float(lam.min()), 4),
        "lambda_max": round(float(lam.max()), 4),
        "gamma_t0_min": round(float(gamma_0.min()), 6),
        "gamma_t1_max": round(float(gamma_1.max()), 6),
        "rho_1": round(float(prior.rho(torch.ones(1))), 4),
    }
    return {"noise_sigma_I": QUALITY_NOISE, "tikhonov_psnr": reference, "times": rows, "schedule": schedule}


def _row(key: str, level: float, degraded, estimate, clean) -> dict:
    before, after = psnr(degraded, clean), psnr(estimate, clean)
    return {key: level, "input_psnr": round(float(before.mean()), 2), "output_psnr": round(float(after.mean()), 2)}
