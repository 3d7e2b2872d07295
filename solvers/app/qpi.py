"""The phase-imaging demo (`python -m solvers demo --task qpi`): CVDM's task, phase from two defocused images by
the transport-of-intensity equation, on a held-out 64 x 64 phase image.

The measurement y = (I+ - I-) / (2 dz) = A x + n (`priors.qpi`, intensity noise sigma_I) is inverted by the
classical Tikhonov inverse, the three conditional priors of the seed's ablation sampled by `CVDM` (conditional
DDPM, CVDM-simple, CVDM; one sample each) and DDRM and DDGM with the unconditional phase prior; the figure shows
each reconstruction and its error map, the table MSE, PSNR, SSIM, wall time and prior calls. Phase is known up to
a constant, so every estimate's mean is moved to the truth's before scoring. (The full benchmark, MS-SSIM and MAE
over 32 images with DPS as well, is benchmarks/quality_qpi.py.)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

import priors
from priors.data import Split
from priors.zoo import recipe, training_images

from ..classical import TikhonovSVD
from ..cvdm import CVDM
from ..ddgm import DDGM
from ..ddrm import DDRM
from ..schedules import Geometric
from .comparison import Method, compare, evaluate, markdown_table
from .figures import comparison_figure


@dataclass(frozen=True)
class QPIDemoSettings:
    """What the QPI demo runs (mu: the benchmark's validation choice)."""

    image: int = 0
    seed: int = 0
    sigma_I: float = 0.1
    cvdm_steps: int = 200
    tikhonov_mu: float = 3e-3
    ddrm_steps: int = 50
    ddgm_steps: int = 50
    ddgm_gradient_steps: int = 25

    def methods(self, sigma_y: float) -> list[Method]:
        unconditional = priors.load("qpi-unconditional")
        cvdm = CVDM(steps=self.cvdm_steps)
        return [
            Method(f"Tikhonov (mu={self.tikhonov_mu:g})", TikhonovSVD(self.tikhonov_mu)),
            Method("CDDPM", cvdm, priors.load("cddpm-qpi")),
            Method("CVDM-simple", cvdm, priors.load("cvdm-simple-qpi")),
            Method("CVDM", cvdm, priors.load("cvdm-qpi")),
            Method(f"DDRM ({self.ddrm_steps})", DDRM(Geometric(10.0, 0.005, self.ddrm_steps), sigma_y=sigma_y),
                   unconditional),
            Method(f"DDGM ({self.ddgm_steps}x{self.ddgm_gradient_steps})",
                   DDGM(Geometric(3.0, 0.01, self.ddgm_steps), gradient_steps=self.ddgm_gradient_steps), unconditional),
        ]


def _scored_up_to_a_constant(row, x_true: torch.Tensor):
    """The row re-scored with its estimate's mean moved to the truth's."""
    estimate = row.estimate + (x_true - row.estimate).mean(dim=(-3, -2, -1), keepdim=True)
    scored = evaluate(row.name, estimate, x_true, row.seconds, None)
    return replace(scored, prior_calls=row.prior_calls, gradient_evaluations=row.gradient_evaluations)


def run_qpi_demo(settings: QPIDemoSettings, output: Path, *, progress: bool = True, log=print) -> list:
    r = recipe("cvdm-qpi")
    m = r.objective.measurement
    x_true = training_images(r, Split.TEST, settings.image + 1)[0][settings.image :]
    y = m.simulate(x_true, torch.Generator().manual_seed(settings.seed), settings.sigma_I)
    sigma_y = float(m.noise_std(settings.sigma_I))
    log(f"phase from defocus: {m.size}x{m.size} phase image, defocus +-{m.defocus:g} um, wavelength "
        f"{m.wavelength:g} um, pixel {m.pixel_size:g} um, sigma_I = {settings.sigma_I:g} (sigma_y = {sigma_y:.3g})")
    rows = compare(settings.methods(sigma_y), y, m.operator(), x_true, seed=settings.seed, progress=progress)
    rows = [_scored_up_to_a_constant(row, x_true) for row in rows]

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rows)
    figure = comparison_figure(x_true, rows, output / "comparison.png",
                               title=f"phase from defocus (TIE), sigma_I = {settings.sigma_I:g}")
    (output / "metrics.md").write_text(table + "\n")
    (output / "metrics.json").write_text(json.dumps(
        {"settings": asdict(settings), "sigma_y": sigma_y, "methods": [row.summary() for row in rows]}, indent=2))
    log(table)
    log(f"wrote {figure}, {output / 'metrics.md'}, {output / 'metrics.json'}")
    return rows
