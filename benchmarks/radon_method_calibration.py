"""Constants of the projectors' cost model (linops/operators/tomography/projector.py, linops/cpu/__init__.py).

Times, for parallel-beam geometries of several sizes (float32, torch's thread count, default 2 here):

    build    joseph_matrices (A and A^T as CSR), per stored entry                     -> BUILD_NS_PER_ENTRY
    sparse   torch.sparse.mm with A (forward) and A^T (adjoint) on B columns          -> SPARSE_COST
    numba    the matrix-free kernels of linops/cpu on B columns                        -> NUMBA_RADON_COST
    torch    the chunked torch matrix-free path (joseph.project / backproject)         -> TORCH_MATRIX_FREE_COST

and fits each apply as nnz (a + b B) nanoseconds (least squares on the relative error), the build as c nnz.
Each time is the minimum over `--repeats` runs (the machine is shared: the minimum is the least disturbed);
the spread (median / min) is reported with it. numba's compile time is excluded (one warm-up call).

    python benchmarks/radon_method_calibration.py [--threads 2] [--repeats 5] [--clock wall|cpu]

On a busy shared machine, wall-clock times of multithreaded code are dominated by waits for descheduled threads;
`--threads 1 --clock cpu` measures the work instead (what the model needs: the ratios of the three costs), and
`--threads 2 --clock wall` when the machine is quiet checks that the ratios hold with two threads.

Writes benchmarks/results/radon_method_calibration_<threads>t_<clock>.json.
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


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def timed(fn, repeats: int) -> tuple[float, float]:
    """(min, median) seconds of fn() over `repeats` runs, by `clock`."""
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
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
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="cpu: process time, robust on a busy machine with --threads 1")  # fmt: skip
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    # every measurement is repeated in `repeats` interleaved rounds over all configurations, so that each one's
    # minimum can come from a quieter moment of the shared machine
    setups = []
    for n, views in SIZES:
        op = Radon((1, n, n), angles_deg=full_range_angles_deg(views), method=ProjectorMethod.MATRIX_FREE)
        table = op.ray_table
        A, At = op.matrix, op.matrix_t
        kernel = kernels.lookup(op, torch.empty(0))
        runs = {("build", 0): partial(joseph_matrices, table, op.image_shape, torch.float32)}
        for columns in COLUMNS:
            x, y = torch.rand(n * n, columns), torch.rand(views * n, columns)
            kernel.forward(op, x), kernel.adjoint(op, y)  # compile (or load from the cache) outside the timing
            runs[("sparse_forward", columns)] = partial(torch.sparse.mm, A, x)
            runs[("sparse_adjoint", columns)] = partial(torch.sparse.mm, At, y)
            runs[("numba_forward", columns)] = partial(kernel.forward, op, x)
            runs[("numba_adjoint", columns)] = partial(kernel.adjoint, op, y)
            if columns <= 4 and n <= 256:
                runs[("torch_forward", columns)] = partial(project, table, op.image_shape, x)
                runs[("torch_adjoint", columns)] = partial(backproject, table, op.image_shape, y)
        setups.append((n, views, op.nnz, runs))
    samples = {(n, key): [] for n, _, _, runs in setups for key in runs}
    for round_ in range(args.repeats):
        for n, _, _, runs in setups:
            for key, fn in runs.items():
                samples[(n, key)].append(timed(fn, 1)[0])
        print(f"round {round_ + 1} of {args.repeats} done", flush=True)
    rows, builds = [], []
    for n, views, nnz, runs in setups:
        best = {key: min(samples[(n, key)]) for key in runs}
        median = {key: statistics.median(samples[(n, key)]) for key in runs}
        build = best[("build", 0)]
        builds.append({"n": n, "views": views, "nnz": nnz, "build_s": build, "build_median_s": median[("build", 0)]})
        print(f"{n}^2, {views} views: nnz {nnz / 1e6:.1f} M, build {build:.3f} s ({build / nnz * 1e9:.1f} ns/entry)")
        for columns in COLUMNS:
            row = {"n": n, "views": views, "nnz": nnz, "columns": columns}
            for (name, c), t in best.items():
                if c == columns:
                    row[name], row[name + "_median"] = t, median[(name, c)]
            rows.append(row)
            print(f"  B={columns}: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in row.items()
                                               if k.endswith(("forward", "adjoint"))))  # fmt: skip
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
            "threads": args.threads, "repeats": args.repeats, "clock": args.clock, "dtype": "float32"}  # fmt: skip
    out = {"meta": meta, "constants": constants, "builds": builds, "applies": rows}
    name = f"radon_method_calibration_{args.threads}t_{args.clock}.json"
    (RESULTS / name).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
