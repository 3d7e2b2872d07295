"""The DDGM paper's Table 1 analog on held-out procedural images (seed 000).

Limited-angle tomography: 128 x 128 zero-mean, unit-variance electron-micrograph-like test images
(never seen in training), 128 parallel-beam views uniformly over [-60, 60] degrees, noise at
SNR 10:1. Methods as the paper ran them:

    algebraic   K gradient steps from 0, K chosen on validation images (the paper's best: 100)
    DDRM        singular values below 1/30 zeroed, start sigma 30, eta = eta_b = 1, 10 and 50 steps
    DPS*        Eq. 2 sampler + Eq. 6 rescaled guidance, sigma 3 -> 0.03, 50 steps and more
    DDGM        sigma 3 -> 0.03: N = 50, K = 25 and N = 150, K = 15

    python benchmarks/quality_tomography.py [--images 32] [--size 128] [--dps-long 200]

Prints the table (MSE and SSIM as mean +- standard error over images, with prior calls, gradient
evaluations and wall time) and writes benchmarks/results/quality_tomography_{size}.{json,md,png}.

On a small machine, run disjoint shards of the test set in parallel and pool them (exactly):

    python benchmarks/quality_tomography.py --images 16 --first 0  &
    python benchmarks/quality_tomography.py --images 16 --first 16 &
    python benchmarks/quality_tomography.py --merge results/quality_tomography_128_images*.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import priors
from linops.spectral import SymmetricGramEigh
from solvers.app.comparison import Method, compare, evaluate, markdown_table, pool_shards, summary_table
from solvers.app.figures import comparison_figure
from solvers.app.tomography import TiltSeriesProblem
from solvers.classical import AlgebraicReconstruction
from solvers.ddgm import DDGM
from solvers.ddrm import DDRM
from solvers.dps import DPS
from solvers.schedules import DDGMUnconditionalSchedule, Geometric

RESULTS = Path(__file__).parent / "results"


def best_algebraic_iterations(problem, A, images: int, candidates=(25, 50, 100, 200, 400, 800)) -> tuple[int, dict]:
    """K minimising the MSE on validation images (early stopping is the regularizer)."""
    from priors.data import Split

    x = problem.test_images(images, split=Split.VALIDATION)
    y, _ = problem.measure(A, x, seed=1)
    mses = {}
    for k in candidates:
        estimate = AlgebraicReconstruction(k)(y, A, progress=False).x
        mses[k] = float(evaluate("algebraic", estimate, x, 0.0, None).mse.mean())
    return min(mses, key=mses.get), mses


def best_dps_zeta(problem, A, prior, steps: int, images: int, candidates) -> tuple[float, dict]:
    """zeta minimising the MSE of DPS* on validation images (the paper tuned it likewise)."""
    from priors.data import Split

    x = problem.test_images(images, split=Split.VALIDATION)
    y, _ = problem.measure(A, x, seed=1)
    mses = {}
    for zeta in candidates:
        solver = DPS(DDGMUnconditionalSchedule.from_endpoints(3.0, 0.03, steps), zeta=zeta)
        estimate = solver(y, A, prior, generator=torch.Generator().manual_seed(0), progress=False).x
        mses[zeta] = float(evaluate("DPS*", estimate, x, 0.0, None).mse.mean())
    return min(mses, key=mses.get), mses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--validation-images", type=int, default=8)
    parser.add_argument("--dps-long", type=int, default=200, help="steps of the longer DPS* run (paper: 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=None, help="run test images first .. first + images - 1 only")
    parser.add_argument("--merge", nargs="+", type=Path, help="pool the JSON results of shards instead of running")
    parser.add_argument("--only", choices=("algebraic", "ddrm", "dps", "ddgm"), nargs="+", default=None,
                        help="run only these methods (and only the validation scans they need); results go to "
                             "quality_tomography_{size}_{names}*")
    args = parser.parse_args()
    if args.merge:
        return merge(args.merge)

    problem = TiltSeriesProblem(size=args.size)
    A = problem.operator()
    first = args.first or 0
    x_true = problem.test_images(args.images, first=first)
    # shards draw their noise from their own seed, so that no two shards share a noise realisation
    y, sigma_y = problem.measure(A, x_true, seed=args.seed + first)
    print(f"{args.images} test images {args.size}x{args.size}, 128 views over +-60 deg, sigma_y = {sigma_y:.3g}")
    blind, conditional = priors.load("ddgm-cells"), priors.load("cells-conditional")

    start = time.perf_counter()
    problem.svd(A)
    svd_seconds = time.perf_counter() - start
    only = set(args.only or ("algebraic", "ddrm", "dps", "ddgm"))
    k_best, k_scan, zeta_50, zeta_scan_50 = None, None, None, None
    if "algebraic" in only:
        k_best, k_scan = best_algebraic_iterations(problem, A, args.validation_images)
        print(f"algebraic: best K = {k_best} ({k_scan})")
    if "dps" in only:
        zeta_candidates = (0.03, 0.1, 0.3)
        zeta_50, zeta_scan_50 = best_dps_zeta(problem, A, conditional, 50, args.validation_images, zeta_candidates)
        print(f"DPS*(50): best zeta = {zeta_50} ({zeta_scan_50})")

    ddrm = lambda steps: DDRM.ddgm_paper(sigma_y, steps, SymmetricGramEigh())  # noqa: E731
    dps = lambda steps, zeta: DPS(DDGMUnconditionalSchedule.from_endpoints(3.0, 0.03, steps), zeta=zeta)  # noqa: E731
    methods = []
    if "algebraic" in only:
        methods.append(Method(f"algebraic (K={k_best})", AlgebraicReconstruction(k_best)))
    if "ddrm" in only:
        methods += [Method("DDRM (10)", ddrm(10), conditional), Method("DDRM (50)", ddrm(50), conditional)]
    if "dps" in only:
        methods += [
            Method("DPS* (50)", dps(50, zeta_50), conditional),
            # the guidance accumulates over steps: keep zeta * N fixed (the paper: 0.1 at N = 1000)
            Method(f"DPS* ({args.dps_long})", dps(args.dps_long, zeta_50 * 50 / args.dps_long), conditional),
        ]
    if "ddgm" in only:
        methods += [
            Method("DDGM (50, K=25)", DDGM(Geometric(3.0, 0.03, 50), gradient_steps=25), blind),
            Method("DDGM (150, K=15)", DDGM(Geometric(3.0, 0.03, 150), gradient_steps=15), blind),
        ]
    rows = compare(methods, y, A, x_true, seed=args.seed)
    table = markdown_table(rows)
    print(table)

    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"quality_tomography_{args.size}"
    if args.only:
        stem = stem.with_name(f"{stem.name}_{'_'.join(sorted(only))}")
    if args.first is not None:
        stem = stem.with_name(f"{stem.name}_images{first}-{first + args.images - 1}")
    stem.with_suffix(".md").write_text(table + "\n")
    stem.with_suffix(".json").write_text(json.dumps({
        "images": args.images, "first": first, "size": args.size, "sigma_y": sigma_y, "svd_seconds": svd_seconds,
        "algebraic_scan": k_scan, "dps_zeta_scan": zeta_scan_50, "threads": torch.get_num_threads(),
        "methods": [r.summary() for r in rows],
    }, indent=2))
    comparison_figure(x_true, rows, stem.with_suffix(".png"), measurement=y[:, 0],
                      title=f"test image 0 of {args.images}, 128 views over +-60 deg, SNR 10:1")
    by_mse = sorted(rows, key=lambda r: float(r.mse.mean()))
    print("ordering by MSE (best first):", " < ".join(r.name for r in by_mse))


def merge(paths: list[Path]) -> None:
    """Pool shard results (disjoint test images, same settings) into quality_tomography_{size}.{json,md}."""
    shards = [json.loads(path.read_text()) for path in paths]
    sizes = {shard["size"] for shard in shards}
    if len(sizes) != 1:
        raise ValueError(f"shards must share the image size, got {sorted(sizes)}")
    pooled = pool_shards(shards)
    table = summary_table(pooled)
    print(table)
    names = {path.stem.partition("_images")[0] for path in paths}  # e.g. quality_tomography_128_ddrm
    stem = RESULTS / (names.pop() if len(names) == 1 else f"quality_tomography_{sizes.pop()}")
    stem.with_suffix(".md").write_text(table + "\n")
    stem.with_suffix(".json").write_text(json.dumps({
        "images": sum(shard["images"] for shard in shards), "shards": [str(path.name) for path in paths],
        "sigma_y": [shard["sigma_y"] for shard in shards],
        **{key: shards[0][key] for key in ("size", "algebraic_scan", "dps_zeta_scan", "threads")},
        "methods": pooled,
    }, indent=2))
    by_mse = sorted(pooled, key=lambda m: m["mse"])
    print("ordering by MSE (best first):", " < ".join(m["method"] for m in by_mse))


if __name__ == "__main__":
    main()
