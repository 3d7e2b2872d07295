"""CVDM's ablation (seed 004, Appendix K, Table 3: synthetic QPI, MS-SSIM CDDPM 0.881 < CVDM-simple 0.915 <
CVDM 0.943) on this project's phase-from-defocus task, with the unsupervised solvers and the classical inverse.

Task (`priors.qpi.PhaseFromDefocus`): 64 x 64 held-out procedural blobs (Split.TEST) as phase images (up to
3.5 rad), two defocused images at +-1 um (wavelength 0.521 um, 0.42 um pixels) with intensity noise sigma_I =
0.1 (the middle of the seed's training range U(0, 0.2)), measured as y = (I+ - I-) / (2 dz) = A x + n by the
linearised TIE (`linops.TransportOfIntensity`, a Fourier multiplier). Methods:

    Tikhonov      V diag(s / (s^2 + mu)) U^T y (the regularised Fourier inverse; US-TIE's role), mu on validation
    CDDPM         conditional DDPM (`cddpm-qpi`: fixed linear schedule), T = 200 ancestral steps (`solvers.CVDM`)
    CVDM-simple   one learned global schedule (`cvdm-simple-qpi`), T = 200
    CVDM          learned per-pixel schedule lambda(y) (`cvdm-qpi`), T = 200
    DDRM          unconditional prior `qpi-unconditional`, sigma 10 -> 0.005 in 50 steps, eta 0.85
    DDGM          same prior, sigma 3 -> 0.01 in 50 steps, K = 25 gradient steps
    DPS           same prior, Eq. 2 sampler sigma 3 -> 0.01 in 200 steps, zeta on validation

Metrics per image, on x = 2 (u - mean u) (the seed's [-1, 1] target scale), phase known up to a constant so
each estimate's mean offset is removed first: MAE (mean |x_hat - x|), PSNR (peak = the truth's range) and
MS-SSIM (torchmetrics, on both images mapped to [0, 1] by the truth's range; 64 x 64 images allow 3 scales:
Gaussian window 11, sigma 1.5, betas = the first three of Wang et al.'s five, renormalised to sum to 1).
The CVDM rows score one posterior sample per image (as the seed reports); "(mean of S)" rows the mean of S.
Uncertainty: the per-pixel variance over the S samples (each sample's mean removed first: phase is known up to a
constant), its Pearson correlation with lambda(y) and with the absolute error, per image; and the spread of the
samples' means (the drift along the operator's null space, which no measurement constrains).

    python benchmarks/quality_qpi.py --validate                 # mu and zeta on 8 validation images
    python benchmarks/quality_qpi.py [--images 32] [--samples 4] [--first 0] --mu MU --zeta ZETA
    python benchmarks/quality_qpi.py --merge benchmarks/results/quality_qpi_images*.json

Writes benchmarks/results/quality_qpi{_imagesA-B}.{json,md}; the shard holding test image 0 also draws the
figure, benchmarks/results/quality_qpi.png (image 0: the input, truth, each method, CVDM's lambda(y), the error
and the per-pixel variances).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import priors
from priors.data import Split
from priors.zoo import recipe, training_images
from solvers import CVDM, DDGM, DDRM, DPS, TikhonovSVD
from solvers.schedules import DDGMUnconditionalSchedule, Geometric

RESULTS = Path(__file__).parent / "results"
SIGMA_I = 0.1
BETAS = tuple(b / (0.0448 + 0.2856 + 0.3001) for b in (0.0448, 0.2856, 0.3001))
CONDITIONAL = {"CDDPM": "cddpm-qpi", "CVDM-simple": "cvdm-simple-qpi", "CVDM": "cvdm-qpi"}


# ----------------------------------------------------------------------------------------------
# data and metrics


def images(split: Split, first: int, count: int) -> torch.Tensor:
    """Zero-mean phase images x = 2 (u - mean u), (count, 1, 64, 64)."""
    x, _ = training_images(recipe("cvdm-qpi"), split, first + count)
    return x[first:]


def measure(x_all: torch.Tensor, first: int, seed: int) -> torch.Tensor:
    """y for images first.. of a set, with noise drawn per image from (seed, index): shards see the same noise."""
    m = recipe("cvdm-qpi").objective.measurement
    ys = [m.simulate(x_all[i : i + 1], torch.Generator().manual_seed(seed * 100_003 + first + i), SIGMA_I)
          for i in range(x_all.shape[0])]
    return torch.cat(ys)


def aligned(estimate: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The estimate with its mean moved to the truth's (phase is known up to a constant)."""
    shift = (x - estimate).mean(dim=(-3, -2, -1), keepdim=True)
    return estimate + shift


def metrics(estimate: torch.Tensor, x: torch.Tensor) -> dict[str, list[float]]:
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as ms_ssim

    est = aligned(estimate.double(), x.double())
    x = x.double()
    flat = x.reshape(x.shape[0], -1)
    lo, rng = flat.min(1).values, flat.max(1).values - flat.min(1).values
    out = {"ms_ssim": [], "mae": [], "psnr": []}
    for i in range(x.shape[0]):
        u_hat, u = (est[i : i + 1] - lo[i]) / rng[i], (x[i : i + 1] - lo[i]) / rng[i]
        score = ms_ssim(u_hat.float(), u.float(), data_range=1.0, kernel_size=11, sigma=1.5, betas=BETAS,
                        normalize="relu")
        out["ms_ssim"].append(float(score))
        out["mae"].append(float((est[i] - x[i]).abs().mean()))
        out["psnr"].append(float(10 * torch.log10(rng[i] ** 2 / (est[i] - x[i]).pow(2).mean())))
    return out


def mean_se(values: list[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std() / math.sqrt(len(values))) if len(values) > 1 else 0.0


def pearson(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    a, b = a.reshape(a.shape[0], -1).double(), b.reshape(b.shape[0], -1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1).div(a.norm(dim=1) * b.norm(dim=1)).tolist()


# ----------------------------------------------------------------------------------------------
# validation choices


def validate(args) -> dict:
    """mu of Tikhonov and zeta of DPS, each by the best mean MS-SSIM on validation images."""
    x = images(Split.VALIDATION, 0, args.validation_images)
    y = measure(x, 0, args.seed + 1)
    A = recipe("cvdm-qpi").objective.measurement.operator()
    scores = {"tikhonov_mu": {}, "dps_zeta": {}}
    for mu in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2):
        est = TikhonovSVD(mu)(y, A, progress=False).x
        scores["tikhonov_mu"][mu] = mean_se(metrics(est, x)["ms_ssim"])[0]
    prior = load("qpi-unconditional", args)
    for zeta in (0.1, 0.3, 1.0, 3.0):
        est = dps(zeta, args.dps_steps)(y, A, prior, generator=torch.Generator().manual_seed(0), progress=False).x
        scores["dps_zeta"][zeta] = mean_se(metrics(est, x)["ms_ssim"])[0]
    best = {k: max(v, key=v.get) for k, v in scores.items()}
    print("validation (MS-SSIM):", json.dumps(scores), "->", best, flush=True)
    return {"scores": {k: {str(a): b for a, b in v.items()} for k, v in scores.items()}, "best": best}


def load(name: str, args):
    return priors.load(name, directory=args.priors_dir)


def dps(zeta: float, steps: int) -> DPS:
    return DPS(DDGMUnconditionalSchedule.from_endpoints(3.0, 0.01, steps), zeta=zeta, rescaled=True)


# ----------------------------------------------------------------------------------------------
# the run


def run(args) -> dict:
    x = images(Split.TEST, args.first, args.images)
    y = measure(x, args.first, args.seed)
    m = recipe("cvdm-qpi").objective.measurement
    A = m.operator()
    sigma_y = float(m.noise_std(SIGMA_I))
    choices = {"tikhonov_mu": args.mu, "dps_zeta": args.zeta}
    rows, extra, estimates = {}, {}, {}

    def record(name, estimate, seconds, calls):
        rows[name] = {**metrics(estimate, x), "seconds": round(seconds, 1), "prior_calls": calls}
        estimates[name] = estimate[:1]
        ms = mean_se(rows[name]["ms_ssim"])
        print(f"{name:24s} MS-SSIM {ms[0]:.4f} +- {ms[1]:.4f}  MAE {mean_se(rows[name]['mae'])[0]:.4f}  "
              f"({seconds:.0f} s)", flush=True)

    start = time.perf_counter()
    record(f"Tikhonov (mu={choices['tikhonov_mu']:g})", TikhonovSVD(choices["tikhonov_mu"])(y, A, progress=False).x,
           time.perf_counter() - start, 0)

    for label, name in CONDITIONAL.items():
        prior = load(name, args)
        start = time.perf_counter()
        result = CVDM(steps=args.steps, samples=args.samples)(
            y, A, prior, generator=torch.Generator().manual_seed(args.seed), progress=False)
        seconds = time.perf_counter() - start
        record(f"{label} (T={args.steps})", result.samples[:, 0], seconds, result.trace.prior_calls)
        record(f"{label} (mean of {args.samples})", result.x, seconds, result.trace.prior_calls)
        with torch.no_grad():
            lam = prior.lam(prior.condition(y))
            error = (aligned(result.samples[:, 0], x) - x).abs()
            offsets = result.samples.mean(dim=(-3, -2, -1), keepdim=True)
            variance = (result.samples - offsets).var(dim=1)  # of the mean-removed samples
        extra[label] = {
            "lambda_mean": lam.mean().item(), "lambda_spatial_std": lam.reshape(lam.shape[0], -1).std(1).mean().item(),
            "variance_mean": variance.mean().item(),
            "offset_std": offsets.reshape(offsets.shape[0], -1).std(1).mean().item(),
            "corr_lambda_variance": pearson(lam, variance),
            "corr_variance_error": pearson(variance, error),
            "residual_final": result.trace.residual[-1].mean().item(),
        }
        estimates[f"{label} lambda"] = lam[:1]
        estimates[f"{label} variance"] = variance[:1]

    prior = load("qpi-unconditional", args)
    solvers = {
        "DDRM (50)": DDRM(Geometric(10.0, 0.005, 50), sigma_y=sigma_y, eta=0.85),
        "DDGM (50, K=25)": DDGM(Geometric(3.0, 0.01, 50), gradient_steps=25),
        f"DPS ({args.dps_steps}, zeta={choices['dps_zeta']:g})": dps(choices["dps_zeta"], args.dps_steps),
    }
    for name, solver in solvers.items():
        start = time.perf_counter()
        result = solver(y, A, prior, generator=torch.Generator().manual_seed(args.seed), progress=False)
        record(name, result.x, time.perf_counter() - start, result.trace.prior_calls)

    return {"settings": {**vars(args), "merge": None, "priors_dir": str(args.priors_dir), "sigma_I": SIGMA_I,
                         "sigma_y": sigma_y, "ms_ssim": {"scales": 3, "kernel": 11, "sigma": 1.5, "betas": BETAS},
                         "choices": choices, "torch_threads": torch.get_num_threads()},
            "rows": rows, "uncertainty": extra,
            "figure": {**estimates, "truth": x[:1], "y": y[:1]}}


# ----------------------------------------------------------------------------------------------
# output


def table(data: dict) -> str:
    lines = [
        "| method | MS-SSIM | MAE | PSNR (dB) | prior calls | time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in data["rows"].items():
        cells = [f"{a:.4f} ± {b:.4f}" for a, b in (mean_se(row["ms_ssim"]), mean_se(row["mae"]))]
        p = mean_se(row["psnr"])
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {p[0]:.2f} ± {p[1]:.2f} | {row['prior_calls']} "
                     f"| {row['seconds']} |")
    lines += ["", "Paired differences over the same images (one sample each; mean ± standard error of the per-image "
              "difference, and the images where the second method scores better):", "",
              "| comparison | Δ MS-SSIM | Δ MAE | better MS-SSIM |", "|---|---|---|---|"]
    single = {label: next(k for k in data["rows"] if k.startswith(f"{label} (T=")) for label in CONDITIONAL}
    for a, b in (("CDDPM", "CVDM-simple"), ("CVDM-simple", "CVDM"), ("CDDPM", "CVDM")):
        ra, rb = data["rows"][single[a]], data["rows"][single[b]]
        d_ms = [y - x for x, y in zip(ra["ms_ssim"], rb["ms_ssim"])]
        d_mae = [y - x for x, y in zip(ra["mae"], rb["mae"])]
        (m1, e1), (m2, e2) = mean_se(d_ms), mean_se(d_mae)
        wins = sum(d > 0 for d in d_ms)
        lines.append(f"| {b} − {a} | {m1:+.4f} ± {e1:.4f} | {m2:+.4f} ± {e2:.4f} | {wins} / {len(d_ms)} |")
    lines += ["", "Uncertainty over the samples (variance of the mean-removed samples; offset: the standard deviation "
              "of the samples' means, the drift along the null space):", "",
              "| schedule | lambda(y) mean | spatial std of lambda | corr(lambda, variance) | "
              "corr(variance, abs error) | mean variance | offset |", "|---|---|---|---|---|---|---|"]
    for label, u in data["uncertainty"].items():
        c1, c2 = mean_se(u["corr_lambda_variance"]), mean_se(u["corr_variance_error"])
        c1s = "n/a (constant)" if u["lambda_spatial_std"] < 1e-6 else f"{c1[0]:.3f} ± {c1[1]:.3f}"
        lines.append(f"| {label} | {u['lambda_mean']:.3f} | {u['lambda_spatial_std']:.3f} | {c1s} | "
                     f"{c2[0]:.3f} ± {c2[1]:.3f} | {u['variance_mean']:.4f} | {u['offset_std']:.3f} |")
    return "\n".join(lines) + "\n"


def figure(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_data = {k: v[0, 0].detach().float() for k, v in data["figure"].items()}
    truth, y = fig_data.pop("truth"), fig_data.pop("y")
    methods = [k for k in fig_data if not k.endswith((" lambda", " variance")) and "mean of" not in k]
    panels = [("input y = dI/dz", y, "gray", None), ("truth", truth, "gray", "phase")]
    for name in methods:
        est = aligned(fig_data[name][None, None], truth[None, None])[0, 0]
        panels.append((name, est, "gray", "phase"))
    cvdm = next(k for k in methods if k.startswith("CVDM (T="))
    samples = data["settings"]["samples"]
    panels += [("CVDM lambda(y)", fig_data["CVDM lambda"], "viridis", None),
               ("CVDM |error| (one sample)",
                (aligned(fig_data[cvdm][None, None], truth[None, None])[0, 0] - truth).abs(), "magma", None)]
    panels += [(f"{label} variance ({samples} samples)", fig_data[f"{label} variance"], "magma", None)
               for label in ("CVDM", "CVDM-simple", "CDDPM")]
    cols = 5
    rows_ = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(2.6 * cols, 2.7 * rows_), squeeze=False)
    lo, hi = float(truth.min()), float(truth.max())
    for ax, (title, img, cmap, scale) in zip(axes.ravel(), panels):
        kw = {"vmin": lo, "vmax": hi} if scale == "phase" else {}
        im = ax.imshow(img.numpy(), cmap=cmap, **kw)
        ax.set_title(title, fontsize=8)
        if scale != "phase":
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"Phase from defocus (TIE), sigma_I = {SIGMA_I}: held-out test image {data['settings']['first']}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merge(paths: list[Path]) -> dict:
    """Pool shards (disjoint test images): per-image lists are concatenated, means weighted by image count."""
    parts = [json.loads(p.read_text()) for p in sorted(paths)]
    data = parts[0]
    count = len(next(iter(data["rows"].values()))["mae"])
    for part in parts[1:]:
        n = len(next(iter(part["rows"].values()))["mae"])
        for name, row in part["rows"].items():
            for key in ("ms_ssim", "mae", "psnr"):
                data["rows"][name][key] += row[key]
            data["rows"][name]["seconds"] = round(data["rows"][name]["seconds"] + row["seconds"], 1)
        for label, u in part["uncertainty"].items():
            mine = data["uncertainty"][label]
            for key in ("corr_lambda_variance", "corr_variance_error"):
                mine[key] += u[key]
            for key in ("lambda_mean", "lambda_spatial_std", "variance_mean", "offset_std", "residual_final"):
                mine[key] = (mine[key] * count + u[key] * n) / (count + n)
        count += n
    data["settings"].update(images=count, first=0, shards=[str(p) for p in sorted(paths)])
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--dps-steps", type=int, default=200)
    parser.add_argument("--validation-images", type=int, default=8)
    parser.add_argument("--validate", action="store_true", help="only choose mu and zeta on validation images")
    parser.add_argument("--mu", type=float, default=1e-3, help="Tikhonov mu (from --validate)")
    parser.add_argument("--zeta", type=float, default=1.0, help="DPS zeta (from --validate)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--merge", nargs="+", type=Path)
    parser.add_argument("--priors-dir", type=Path, default=None, help="load the priors from here (default: bundled)")
    parser.add_argument("--output", default="quality_qpi")
    args = parser.parse_args()
    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    if args.validate:
        (RESULTS / f"{args.output}_validation.json").write_text(json.dumps(validate(args), indent=1))
        return
    if args.merge:
        data, stem = merge(args.merge), args.output
    else:
        data = run(args)
        stem = f"{args.output}_images{args.first}-{args.first + args.images - 1}"
    if "figure" in data:  # a run (not a merge) that holds test image 0
        if data["settings"]["first"] == 0:
            figure(data, RESULTS / f"{args.output}.png")
        del data["figure"]
    (RESULTS / f"{stem}.json").write_text(json.dumps(data, indent=1))
    (RESULTS / f"{stem}.md").write_text(table(data))
    print(table(data))


if __name__ == "__main__":
    main()
