"""Dirac's distortion against stopping time on deblurring and inpainting (seed 002).

64 x 64 held-out cell textures in [0, 1], degraded by the severity family at t = 1 plus noise
sigma_1, reconstructed by the Dirac sampler with the bundled Phi networks. The trace holds the PSNR
of Phi(y_t, t) at every step, so one run gives the whole PSNR-versus-t_stop curve: the paper's claim
is that distortion is best at an early stop (Dirac-DO) and worsens as the run continues towards
t = 0 (Dirac-PO trades it for perceptual quality).

    python benchmarks/quality_dirac.py [--images 16] [--steps 100]

Writes benchmarks/results/quality_dirac.{json,png}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import priors
from priors.data import Family, ProceduralImages, Split
from solvers.app.figures import curve_figure
from solvers.dirac import Dirac
from solvers.dirac_schedule import UniformSeverities

RESULTS = Path(__file__).parent / "results"


def curve(name: str, x_true: torch.Tensor, steps: int, seed: int) -> dict:
    prior = priors.load(name)
    process = prior.process
    A = process.operator(1.0)
    generator = torch.Generator().manual_seed(seed)
    y = process.sample(x_true, torch.ones(x_true.shape[0]), generator)
    result = Dirac(UniformSeverities(steps))(y, A, prior, generator=generator, x_true=x_true, progress=False)
    times = [1.0 - k / steps for k in range(len(result.trace.psnr))]
    psnr = [float(p.mean()) for p in result.trace.psnr]
    ssim = [float(s.mean()) for s in result.trace.ssim]
    peak = max(range(len(psnr)), key=psnr.__getitem__)
    return {"t": times, "psnr": psnr, "ssim": ssim, "peak_t": times[peak], "peak_psnr": psnr[peak],
            "one_shot_psnr": psnr[0], "final_psnr": psnr[-1]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    x_true = ProceduralImages(Family.CELLS, 64, args.images, seed=0, split=Split.TEST).tensor()
    curves = {name: curve(name, x_true, args.steps, args.seed) for name in ("dirac-blur", "dirac-inpainting")}
    for name, c in curves.items():
        print(f"{name}: one-shot {c['one_shot_psnr']:.2f} dB, peak {c['peak_psnr']:.2f} dB at t = {c['peak_t']:.2f}, "
              f"t = 0: {c['final_psnr']:.2f} dB")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quality_dirac.json").write_text(json.dumps({**vars(args), "curves": curves}, indent=2))
    first = next(iter(curves.values()))
    curve_figure([1 - t for t in first["t"]], {n: c["psnr"] for n, c in curves.items()},
                 RESULTS / "quality_dirac.png", xlabel="1 - t (progress of the run; t_stop = 1 - x)",
                 ylabel="PSNR of Phi(y_t, t) (dB)", title="Dirac: distortion against stopping time")


if __name__ == "__main__":
    main()
