"""Does DPS* overtake algebraic reconstruction with enough steps? (the DDGM paper's Table 1: DPS* 0.35
at 50 steps, 0.20 at 1000; algebraic 0.23).

The same task as quality_tomography.py (128 x 128, 128 views over +-60 deg, SNR 10:1, the same
images and noise seeds), DPS* at N steps with a given zeta (the paper's 0.1, or 0.1 * 50 / N, which
keeps the accumulated guidance of the 50-step run), next to algebraic reconstruction (K = 100) on the
same measurements. One zeta per process, so that runs go in parallel on a small machine; choose zeta
on validation images, then run the test shards:

    OMP_NUM_THREADS=1 python benchmarks/dps_steps_tomography.py --validation --zeta 0.1 &
    OMP_NUM_THREADS=1 python benchmarks/dps_steps_tomography.py --validation --zeta 0.005 &
    OMP_NUM_THREADS=1 python benchmarks/dps_steps_tomography.py --images 16 --first 0 --zeta Z &
    OMP_NUM_THREADS=1 python benchmarks/dps_steps_tomography.py --images 16 --first 16 --zeta Z &
    python benchmarks/dps_steps_tomography.py --merge benchmarks/results/dps_steps_tomography_1000_zetaZ_test*.json

Writes benchmarks/results/dps_steps_tomography_{steps}_zeta{zeta}_{split}{first}-{last}.{json,md}, and
the pooled dps_steps_tomography_{steps}_zeta{zeta}.{json,md}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import priors
from priors.data import Split
from solvers.app.comparison import Method, compare, markdown_table, pool_shards, summary_table
from solvers.app.tomography import TiltSeriesProblem
from solvers.classical import AlgebraicReconstruction
from solvers.dps import DPS
from solvers.schedules import DDGMUnconditionalSchedule

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--zeta", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--validation", action="store_true", help="validation images (to choose zeta)")
    parser.add_argument("--merge", nargs="+", type=Path, help="pool the JSON results of test shards instead of running")
    args = parser.parse_args()
    if args.merge:
        return merge(args.merge)

    problem = TiltSeriesProblem(size=128)
    A = problem.operator()
    split = Split.VALIDATION if args.validation else Split.TEST
    x_true = problem.test_images(args.images, first=args.first, split=split)
    # quality_tomography.py's noise seeds: seed + first for test shards, 1 for validation images
    y, sigma_y = problem.measure(A, x_true, seed=1 if args.validation else args.seed + args.first)
    schedule = DDGMUnconditionalSchedule.from_endpoints(3.0, 0.03, args.steps)
    dps = DPS(schedule, zeta=args.zeta)
    methods = [
        Method("algebraic (K=100)", AlgebraicReconstruction(100)),
        Method(f"DPS* ({args.steps}, zeta={args.zeta:g})", dps, priors.load("cells-conditional")),
    ]
    rows = compare(methods, y, A, x_true, seed=args.seed)
    table = markdown_table(rows)
    print(table)

    RESULTS.mkdir(exist_ok=True)
    last = args.first + args.images - 1
    stem = RESULTS / f"dps_steps_tomography_{args.steps}_zeta{args.zeta:g}_{split.name.lower()}{args.first}-{last}"
    stem.with_name(stem.name + ".md").write_text(table + "\n")  # not with_suffix: zeta has a dot
    stem.with_name(stem.name + ".json").write_text(json.dumps({
        "images": args.images, "first": args.first, "split": split.name.lower(), "steps": args.steps,
        "zeta": args.zeta, "sigma_y": sigma_y,
        "threads": torch.get_num_threads(), "methods": [r.summary() for r in rows],
    }, indent=2))


def merge(paths: list[Path]) -> None:
    """Pool test shards of one setting (steps, zeta) into dps_steps_tomography_{steps}_zeta{zeta}.{json,md}."""
    shards = [json.loads(path.read_text()) for path in paths]
    settings = {(shard["split"], shard["steps"], shard["zeta"]) for shard in shards}
    if len(settings) != 1 or next(iter(settings))[0] != "test":
        raise ValueError(f"merge test shards of one setting (split, steps, zeta), got {sorted(settings)}")
    _, steps, zeta = settings.pop()
    pooled = pool_shards(shards)
    table = summary_table(pooled)
    print(table)
    stem = RESULTS / f"dps_steps_tomography_{steps}_zeta{zeta:g}"
    stem.with_name(stem.name + ".md").write_text(table + "\n")
    stem.with_name(stem.name + ".json").write_text(json.dumps({
        "images": sum(shard["images"] for shard in shards), "shards": [path.name for path in paths],
        "steps": steps, "zeta": zeta, "sigma_y": [shard["sigma_y"] for shard in shards], "methods": pooled,
    }, indent=2))


if __name__ == "__main__":
    main()
