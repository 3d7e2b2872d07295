"""The demo: the DDGM comparison on a held-out test image, with figures and a metrics table.

A simulated 128-view tilt series over +-60 degrees (SNR 10:1) of a zero-mean, unit-variance
electron-micrograph-like image is reconstructed by algebraic reconstruction, FBP, DDRM, DPS* and
DDGM with the bundled priors; the figure shows each reconstruction and its error map, the table
MSE, PSNR, SSIM, wall time and the number of prior calls and data-gradient evaluations.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import priors
from linops.spectral import SymmetricGramEigh

from ..classical import AlgebraicReconstruction, FilteredBackprojection
from ..ddgm import DDGM
from ..ddrm import DDRM
from ..dps import DPS
from ..schedules import DDGMUnconditionalSchedule, Geometric
from .comparison import Method, compare, markdown_table
from .figures import comparison_figure
from .tomography import TiltSeriesProblem


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs. The image is 64 x 64 by default so that the whole comparison, including
    DDRM's SVD of the tilt-series operator (cached on disk afterwards), takes about a minute;
    `size=128` is the DDGM paper's setting (its SVD takes some minutes, once)."""

    size: int = 64
    views: int = 128
    max_tilt_deg: float = 60.0
    snr: float = 10.0
    image: int = 0
    seed: int = 0
    blind_prior: str = "ddgm-cells"
    conditional_prior: str = "cells-conditional"
    algebraic_iterations: int = 200  # best K on held-out 64 x 64 images (the paper's 128 x 128: 100)
    ddgm_steps: int = 50
    ddgm_gradient_steps: int = 25
    ddrm_steps: int = 10
    dps_steps: int = 50
    dps_zeta: float = 0.1  # best of 0.01 .. 3 for 50 steps on held-out images

    def problem(self) -> TiltSeriesProblem:
        return TiltSeriesProblem(self.size, self.views, self.max_tilt_deg, self.snr)

    def methods(self, sigma_y: float) -> list[Method]:
        blind = priors.load(self.blind_prior)
        conditional = priors.load(self.conditional_prior)
        return [
            Method("algebraic", AlgebraicReconstruction(self.algebraic_iterations)),
            Method("FBP", FilteredBackprojection()),
            Method(f"DDRM ({self.ddrm_steps})", DDRM.ddgm_paper(sigma_y, self.ddrm_steps, SymmetricGramEigh()),
                   conditional),
            Method(
                f"DPS* ({self.dps_steps})",
                DPS(DDGMUnconditionalSchedule.from_endpoints(3.0, 0.03, self.dps_steps), zeta=self.dps_zeta),
                conditional,
            ),
            Method(
                f"DDGM ({self.ddgm_steps}x{self.ddgm_gradient_steps})",
                DDGM(Geometric(3.0, 0.03, self.ddgm_steps), gradient_steps=self.ddgm_gradient_steps),
                blind,
            ),
        ]


def run_demo(settings: DemoSettings, output: Path, *, progress: bool = True, log=print) -> list:
    problem = settings.problem()
    A = problem.operator()
    x_true = problem.test_images(1, first=settings.image)
    y, sigma_y = problem.measure(A, x_true, seed=settings.seed)
    geometry = f"{settings.views} views over +-{settings.max_tilt_deg:g} deg"
    log(f"tilt series: {geometry} of a {settings.size}x{settings.size} image, sigma_y = {sigma_y:.3g} "
        f"(SNR {settings.snr:g}:1)")
    methods = settings.methods(sigma_y)
    problem.svd(A, progress=log)
    rows = compare(methods, y, A, x_true, seed=settings.seed, progress=progress)

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rows)
    figure = comparison_figure(
        x_true, rows, output / "comparison.png", measurement=y[:, 0],
        title=f"limited-angle tomography, {geometry}, SNR {settings.snr:g}:1",
    )
    (output / "metrics.md").write_text(table + "\n")
    (output / "metrics.json").write_text(json.dumps(
        {"settings": asdict(settings), "sigma_y": sigma_y, "methods": [r.summary() for r in rows]}, indent=2))
    torch.save({"x_true": x_true, "y": y, **{r.name: r.estimate for r in rows}}, output / "reconstructions.pt")
    log(table)
    log(f"wrote {figure}, {output / 'metrics.md'}, {output / 'metrics.json'}")
    return rows
