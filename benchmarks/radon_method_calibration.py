"""Constants of the projectors' cost model (linops/operators/tomography/projector.py, linops/cpu/__init__.py).

Times, for parallel-beam geometries of several sizes (float32, torch's thread count, default 2 here):

    build    joseph_matrices (A and A^T as CSR), per stored entry                     -> BUILD_NS_PER_ENTRY
    sparse   torch.sparse.mm with A (forward) and A^T (adjoint) on B columns          -> SPARSE_COST
    numba    the matrix-free kernels of linops/cpu on B columns                        -> NUMBA_RADON_COST
    torch    the chunked torch matrix-free path (joseph.project / backproject)         -> TORCH_MATRIX_FREE_COST

and fits each apply as nnz (a + b B) nanoseconds (least squares on the relative error), the build as c nnz.
Each time is the minimum over `--repeats` runs (the machine is shared: the minimum is the least disturbed);
the spread (median / min) is reported with it. numba's compile time is excluded (one warm-up call).

    python benchmarks/radon_method_calibration.py [--threads 2] [--repeats 5]

Writes benchmarks/results/radon_method_calibration.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date
from functools import partial
from pathlib import Path

import numpy as np
import torch

from linops.backends import kernels
from linops.operators.tomography import ProjectorMethod, Radon, full_range_angles_deg
from linops.operators.tomography.joseph import backproject, joseph_matrices, project

RESULTS = Path(__file__).parent / "results"
SIZES = [(96, 90), (160, 120), (256, 180), (384, 270)]
COLUMNS = [1, 4, 16]


def timed(fn, repeats: int) -> tuple[float, float]:
    """(min, median) seconds of fn() over `repeats` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def fit(rows: list[dict], key: str) -> tuple[float, float]:
    """(a, b) in ns per entry with t = nnz (a + b B), least squares on t relative to the measured t."""
    design = np.array([[r["nnz"], r["nnz"] * r["columns"]] for r in rows]) / np.array([[r[key]] for r in rows])
    coefficients, *_ = np.linalg.lstsq(design, np.ones(len(rows)), rcond=None)
    return tuple(float(c) * 1e9 for c in coefficients)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, builds = [], []
    for n, views in SIZES:
        op = Radon((1, n, n), angles_deg=full_range_angles_deg(views), method=ProjectorMethod.MATRIX_FREE)
        table, nnz = op.ray_table, op.nnz
        build, build_median = timed(partial(joseph_matrices, table, op.image_shape, torch.float32), args.repeats)
        builds.append({"n": n, "views": views, "nnz": nnz, "build_s": build, "build_median_s": build_median})
        print(f"{n}^2, {views} views: nnz {nnz / 1e6:.1f} M, build {build:.3f} s ({build / nnz * 1e9:.1f} ns/entry)")
        A, At = op.matrix, op.matrix_t
        kernel = kernels.lookup(op, torch.empty(0))
        for columns in COLUMNS:
            x = torch.rand(n * n, columns)
            y = torch.rand(views * n, columns)
            kernel.forward(op, x), kernel.adjoint(op, y)  # compile (cached) outside the timing
            runs = {
                "sparse_forward": partial(torch.sparse.mm, A, x),
                "sparse_adjoint": partial(torch.sparse.mm, At, y),
                "numba_forward": partial(kernel.forward, op, x),
                "numba_adjoint": partial(kernel.adjoint, op, y),
            }
            if columns <= 4 and n <= 256:
                runs["torch_forward"] = partial(project, table, op.image_shape, x)
                runs["torch_adjoint"] = partial(backproject, table, op.image_shape, y)
            row = {"n": n, "views": views, "nnz": nnz, "columns": columns}
            for name, fn in runs.items():
                row[name], row[name + "_median"] = timed(fn, args.repeats)
            rows.append(row)
            print(f"  B={columns}: " + ", ".join(f"{k} {row[k] * 1e3:.1f} ms" for k in runs), flush=True)
        del A, At
        op._cache.clear()
    constants = {
        "BUILD_NS_PER_ENTRY": float(np.median([b["build_s"] / b["nnz"] * 1e9 for b in builds])),
        "SPARSE_COST": {d: fit(rows, f"sparse_{d}") for d in ("forward", "adjoint")},
        "NUMBA_RADON_COST": {d: fit(rows, f"numba_{d}") for d in ("forward", "adjoint")},
        "TORCH_MATRIX_FREE_COST": {
            d: fit([r for r in rows if f"torch_{d}" in r], f"torch_{d}") for d in ("forward", "adjoint")
        },
    }
    print(json.dumps(constants, indent=1))
    RESULTS.mkdir(exist_ok=True)
    meta = {"date": date.today().isoformat(), "machine": platform.processor() or platform.machine(),
            "threads": args.threads, "repeats": args.repeats, "dtype": "float32"}  # fmt: skip
    out = {"meta": meta, "constants": constants, "builds": builds, "applies": rows}
    (RESULTS / "radon_method_calibration.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
