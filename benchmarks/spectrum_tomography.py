"""The singular spectrum of the DDGM tomography operator (128 x 128 images, 128 parallel-beam views
uniformly over [-60, 60] degrees, 128 detector bins) and the time its SVDs take.

    python benchmarks/spectrum_tomography.py [--size 128] [--rank 1000]

Writes benchmarks/results/spectrum_tomography_{size}.json and .png. The full SVD goes through
GramEigh (eigh of the 16384 x 16384 Gram matrix in float64) and is cached on disk for DDRM
(solvers.app.tomography.svd_cache_dir); a randomized top-k SVD is timed for comparison.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from linops.spectral import GramEigh, RandomizedSVD  # noqa: E402
from solvers.app.tomography import TiltSeriesProblem, svd_cache_dir  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rank", type=int, default=1000, help="k of the randomized top-k SVD timed alongside")
    args = parser.parse_args()
    A = TiltSeriesProblem(size=args.size).operator()

    start = time.perf_counter()
    full = A.svd(GramEigh(), cache_dir=svd_cache_dir())
    full_seconds = time.perf_counter() - start
    s = full.s.double()

    start = time.perf_counter()
    top = A.svd(RandomizedSVD(rank=args.rank))
    top_seconds = time.perf_counter() - start
    top_error = float(((top.s.double() - s[: args.rank]).abs() / s[: args.rank]).max())

    n = A.shape[1]
    report = {
        "operator": repr(A),
        "matrix_shape": list(A.shape),
        "kept_singular_values": int(s.numel()),
        "dropped_as_numerically_zero": n - int(s.numel()),
        "s_max": float(s[0]),
        "s_min_kept": float(s[-1]),
        "norm_lanczos": A.norm(),
        "fraction_below_0.1_s_max": float((s < 0.1 * s[0]).sum()) / n,
        "count_below_1/30": n - int((s > 1 / 30).sum()),
        "quantiles": {f"{q:g}": float(torch.quantile(s, q)) for q in (0.01, 0.1, 0.5, 0.9, 0.99)},
        "gram_eigh_seconds": full_seconds,
        "randomized_rank": args.rank,
        "randomized_seconds": top_seconds,
        "randomized_max_relative_error": top_error,
        "threads": torch.get_num_threads(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"spectrum_tomography_{args.size}.json").write_text(json.dumps(report, indent=2))

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.semilogy(s.numpy())
    ax.axhline(1 / 30, color="gray", ls="--", lw=0.8, label="1/30 (DDRM cutoff of the DDGM paper)")
    ax.set_xlabel("index")
    ax.set_ylabel("singular value")
    ax.set_title(f"Radon {args.size}x{args.size}, 128 views over +-60 deg", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(RESULTS / f"spectrum_tomography_{args.size}.png", dpi=110, bbox_inches="tight")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
