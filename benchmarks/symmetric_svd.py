"""Time and size of the exact SVD of the DDGM tilt series through its symmetries (`SymmetricGramEigh`).

    python benchmarks/symmetric_svd.py --sizes 64 128 [--repeat 2] [--baseline] [--reference-dir DIR]
    python benchmarks/symmetric_svd.py --sizes 256 --blocks 1      # instrumented: the projection and one block

The operator is `Radon.tilt_series((1, N, N), 128, 60.0)` in float32 (the demo's), whose left-right and
up-down flips give four blocks of N^2 / 4. For each size: the end-to-end time of `svd(A, SymmetricGramEigh())`
on a fresh operator (no disk cache; `--repeat` times), then one instrumented pass that times the projection
(every block B = Q_out^T A Q_in through A, `block_matrices`) and each block's decomposition (Gram, eigh, the
other factor, `decompose_block`), and the size of the disk-cache file. `--baseline` times the plain
`GramEigh` in the same run, interleaved. `--reference-dir` compares the singular values with
`ref_*_{N}.pt` files holding a float64 reference spectrum "s" (dense svdvals or eigvalsh of the full Gram
matrix, computed independently).
Writes benchmarks/results/symmetric_svd_{N}.json.

On a shared machine, run it with OMP_WAIT_POLICY=PASSIVE: torch's OpenMP threads otherwise spin while
waiting for a descheduled peer, and a two-thread eigh of 1024 x 1024 took 38 s instead of 2 s here at a
load average of 13 (recorded in the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

import linops
from linops.spectral import GramEigh, SymmetricGramEigh
from linops.spectral.symmetric import block_matrices, block_svd_to_tensors, decompose_block
from linops.symmetry import SymmetryGroup

RESULTS = Path(__file__).parent / "results"


def operator(size: int) -> linops.Radon:
    return linops.Radon.tilt_series((1, size, size), 128, 60.0)


CPU_SECONDS: list[float] = []  # process CPU time (all threads) of each timed call, in order


def timed(fn, *args):
    """(fn(*args), wall seconds); the process CPU seconds go to CPU_SECONDS (on a shared machine the wall
    time grows with the load, the CPU time much less)."""
    cpu, start = time.process_time(), time.perf_counter()
    out = fn(*args)
    CPU_SECONDS.append(time.process_time() - cpu)
    return out, time.perf_counter() - start


def spread(values: list[float]) -> dict:
    return {"runs": values, "min": min(values), "median": statistics.median(values), "max": max(values)}


def file_bytes(svd) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "svd.pt"
        torch.save(block_svd_to_tensors(svd), path)
        return path.stat().st_size


def accuracy(s: torch.Tensor, reference: torch.Tensor, rtol: float) -> dict:
    s, reference = s.double(), reference.double()
    s_max = float(reference[0])
    kept_reference = int((reference > rtol * s_max).sum())
    k = min(s.numel(), kept_reference)
    error = (s[:k] - reference[:k]).abs()
    out = {
        "kept": s.numel(),
        "reference_above_rtol": kept_reference,
        "max_abs_error_over_s_max": float(error.max()) / s_max,
    }
    out["max_relative_error_all_kept"] = float((error / reference[:k]).max())
    for level in (1e-2, 1e-3, 1e-4, 1e-5):
        above = reference[:k] > level * s_max
        out[f"max_relative_error_s_above_{level:g}_s_max"] = float((error[above] / reference[:k][above]).max())
    return out


def instrumented(A, algorithm: SymmetricGramEigh, blocks: int | None) -> dict:
    """The projection (every B_chi at once, `block_matrices`) and each block's decomposition, timed
    separately (A in float64, as the algorithm runs it)."""
    group = SymmetryGroup.of(A)
    A64, convert = timed(A.to, torch.float64)
    _, build = timed(A64.apply, torch.zeros(1, *A.in_shape, dtype=torch.float64))  # builds the float64 matrix
    matrices, projection = timed(block_matrices, A64, group, algorithm.batch_size)
    out = {"conversion_seconds": convert + build, "projection_seconds": projection,
           "projection_cpu_seconds": CPU_SECONDS[-1], "blocks": []}
    for c in range(group.order if blocks is None else min(blocks, group.order)):
        B = matrices[c]
        block, seconds = timed(decompose_block, B, c, algorithm.rtol)
        out["blocks"].append({
            "character": group.character_signs(c),
            "block_shape": list(B.shape),
            "decomposition_seconds": seconds,
            "decomposition_cpu_seconds": CPU_SECONDS[-1],
            "kept": int(block.s.numel()),
        })
        matrices[c] = None
        del B, block
    return out


def run(size: int, args) -> dict:
    algorithm = SymmetricGramEigh()
    A = operator(size)
    group = SymmetryGroup.of(A)
    report = {
        "operator": repr(A),
        "dtype": str(A.dtype),
        "matrix_shape": list(A.shape),
        "symmetries": [g.name for g in group.generators],
        "blocks": [list(group.dimensions(c)) for c in range(group.order)],
        "threads": torch.get_num_threads(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_average_before": os.getloadavg(),
    }
    if not args.skip_total:
        totals, baseline, cpu_totals, cpu_baseline = [], [], [], []
        svd = None
        for _ in range(args.repeat):
            svd, seconds = timed(linops.svd, operator(size), algorithm)
            totals.append(seconds)
            cpu_totals.append(CPU_SECONDS[-1])
            print(f"{size}: SymmetricGramEigh {seconds:.1f} s (CPU {CPU_SECONDS[-1]:.1f} s)", flush=True)
            if args.baseline:
                _, seconds = timed(linops.svd, operator(size), GramEigh())
                baseline.append(seconds)
                cpu_baseline.append(CPU_SECONDS[-1])
                print(f"{size}: GramEigh {seconds:.1f} s (CPU {CPU_SECONDS[-1]:.1f} s)", flush=True)
        report["seconds"] = spread(totals)
        report["cpu_seconds"] = spread(cpu_totals)
        if baseline:
            report["gram_eigh_seconds"] = spread(baseline)
            report["gram_eigh_cpu_seconds"] = spread(cpu_baseline)
            report["speedup_median"] = statistics.median(baseline) / statistics.median(totals)
        m, n = A.shape
        k = svd.s.numel()
        report["kept_singular_values"] = k
        report["complete"] = svd.complete
        report["s_max"] = float(svd.s[0])
        report["norm_lanczos"] = A.norm()  # an independent check of s_max
        report["cache_file_bytes"] = file_bytes(svd)
        report["dense_factor_bytes_for_comparison"] = (m + n + 1) * k * svd.s.element_size()
        if args.reference_dir:
            for path in sorted(Path(args.reference_dir).glob(f"ref_*_{size}.pt")):
                ref = torch.load(path, weights_only=False)
                report[f"accuracy_vs_{path.stem}"] = accuracy(svd.s, ref["s"], algorithm.rtol)
        del svd
    report["instrumented"] = instrumented(A, algorithm, args.blocks)
    report["load_average_after"] = os.getloadavg()
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--baseline", action="store_true", help="time GramEigh too (39 min at 128)")
    parser.add_argument("--blocks", type=int, default=None, help="decompose only this many blocks when instrumented")
    parser.add_argument("--skip-total", action="store_true", help="only the instrumented pass")
    parser.add_argument("--reference-dir", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    RESULTS.mkdir(exist_ok=True)
    for size in args.sizes:
        report = run(size, args)
        out = RESULTS / f"symmetric_svd_{size}{args.tag}.json"
        out.write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2), flush=True)


if __name__ == "__main__":
    main()
