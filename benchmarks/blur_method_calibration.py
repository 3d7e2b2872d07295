"""Which padded-blur method is faster, direct (depthwise conv2d) or FFT, and how well `choose_method` picks.

Times forward and adjoint of `linops.Blur` (reflect boundary, float32) with the method fixed to each
choice, for image sides 32 .. 512, Gaussian kernels 3 x 3 .. 33 x 33 and batches of 1, 2, 4 and 16
planes (best of 7 repeats of at least 30 ms each), then reports how often `choose_method` picks the
faster method and how much slower its pick is on average than the best. The cost model's constants
in linops/operators/blur.py were fitted on this table.

    python benchmarks/blur_method_calibration.py

Writes benchmarks/results/blur_method_calibration.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

import linops
from linops.operators.blur import ConvolutionMethod, choose_method

RESULTS = Path(__file__).parent / "results"


def best_time_ms(fn, x, repeats: int = 7, window: float = 0.03) -> float:
    fn(x)
    best = float("inf")
    for _ in range(repeats):
        start, calls = time.perf_counter(), 0
        while time.perf_counter() - start < window:
            fn(x)
            calls += 1
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def main() -> None:
    rows = []
    for side in (32, 64, 128, 256, 512):
        for size in (3, 5, 7, 9, 13, 17, 25, 33):
            if size >= side // 2:
                continue
            kernel = linops.gaussian_kernel(size / 6, size=size)
            ops = {m: linops.Blur(kernel, (1, side, side), "reflect", method=m) for m in ConvolutionMethod}
            for planes in (1, 2, 4, 16):
                x = torch.rand(planes, 1, side, side)
                with torch.no_grad():
                    ms = {m.value: best_time_ms(op.apply, x) + best_time_ms(op.H.apply, x) for m, op in ops.items()}
                L = ops[ConvolutionMethod.FFT].fft_shape
                pick = choose_method(size * size, side, side, *L, torch.float32, planes).value
                rows.append({"side": side, "kernel": size, "planes": planes, "ms": ms, "pick": pick})
                print(f"{side}^2, {size}x{size}, {planes} planes: direct {ms['direct']:.3f} ms, "
                      f"fft {ms['fft']:.3f} ms, pick {pick}", flush=True)
    slowdown = [row["ms"][row["pick"]] / min(row["ms"].values()) for row in rows]
    hits = sum(s == 1.0 for s in slowdown)
    summary = {"cases": len(rows), "pick_is_fastest": hits, "mean_slowdown": sum(slowdown) / len(rows),
               "worst_slowdown": max(slowdown), "threads": torch.get_num_threads()}
    print(summary)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "blur_method_calibration.json").write_text(json.dumps({**summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
