"""Running several reconstruction methods on one problem and tabulating how they do.

A `Method` pairs a name with a solver and the prior it uses; `compare` runs each on the same
measurements with its own seeded generator and returns one `Row` per method with the estimate,
MSE / PSNR / SSIM per image, wall time and the counts of prior calls and data-gradient evaluations.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from priors import metrics

from ..tracking import Result


@dataclass(frozen=True)
class Method:
    name: str
    solver: object
    prior: object | None = None


@dataclass
class Row:
    """One method's outcome on a batch of images (per-image metrics, shape (B,))."""

    name: str
    estimate: torch.Tensor
    mse: torch.Tensor
    psnr: torch.Tensor
    ssim: torch.Tensor
    seconds: float
    prior_calls: int
    gradient_evaluations: int
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Means and standard errors over the images, for tables and JSON."""
        n = self.mse.shape[0]

        def stat(t):
            mean = float(t.mean())
            se = float(t.std() / math.sqrt(n)) if n > 1 else 0.0
            return mean, se

        mse, mse_se = stat(self.mse)
        psnr, psnr_se = stat(self.psnr)
        ssim, ssim_se = stat(self.ssim)
        return {
            "method": self.name,
            "images": n,
            "mse": mse,
            "mse_se": mse_se,
            "psnr": psnr,
            "psnr_se": psnr_se,
            "ssim": ssim,
            "ssim_se": ssim_se,
            "seconds": self.seconds,
            "prior_calls": self.prior_calls,
            "gradient_evaluations": self.gradient_evaluations,
            **self.extra,
        }


def evaluate(name: str, estimate: torch.Tensor, x_true: torch.Tensor, seconds: float, result: Result | None) -> Row:
    data_range = metrics.data_range_of(x_true)
    return Row(
        name=name,
        estimate=estimate,
        mse=metrics.mse(estimate, x_true),
        psnr=metrics.psnr(estimate, x_true, data_range),
        ssim=metrics.ssim(estimate, x_true, data_range),
        seconds=seconds,
        prior_calls=result.trace.prior_calls if result is not None else 0,
        gradient_evaluations=result.trace.gradient_evaluations if result is not None else 0,
    )


def compare(methods, y, A, x_true, *, seed: int = 0, progress: bool = True) -> list[Row]:
    """Run every method on (y, A) with a generator seeded by `seed`; metrics against x_true."""
    rows = []
    for method in methods:
        generator = torch.Generator(device=y.device).manual_seed(seed)
        start = time.perf_counter()
        result = method.solver(y, A, method.prior, generator=generator, progress=progress)
        seconds = time.perf_counter() - start
        rows.append(evaluate(method.name, result.x, x_true, seconds, result))
    return rows


def markdown_table(rows: list[Row]) -> str:
    """A markdown table of the per-method means (with standard errors for several images)."""
    return summary_table([row.summary() for row in rows])


def summary_table(summaries: list[dict]) -> str:
    """The markdown table of `Row.summary()` dicts (or of `pool`ed ones)."""
    head = "| method | MSE | PSNR (dB) | SSIM | time (s) | prior calls | gradient evals |"
    lines = [head, "|" + "---|" * 7]
    for s in summaries:

        def cell(key, fmt, s=s):
            value = format(s[key], fmt)
            return f"{value} ± {format(s[key + '_se'], fmt)}" if s["images"] > 1 else value

        lines.append(
            f"| {s['method']} | {cell('mse', '.4f')} | {cell('psnr', '.2f')} | {cell('ssim', '.3f')} "
            f"| {s['seconds']:.1f} | {s['prior_calls']} | {s['gradient_evaluations']} |"
        )
    return "\n".join(lines)


def pool(summaries: list[dict]) -> dict:
    """One method's summaries on disjoint image sets, pooled exactly: from each set's n, mean m and
    standard error e, the sums n m and sums of squares (n - 1) n e^2 + n m^2 give the mean and
    standard error over all images. Wall times add up; the prior-call and gradient counts are per
    (batched) solve, so they must agree between shards and are kept as they are."""
    if len({s["method"] for s in summaries}) != 1:
        raise ValueError(f"pool one method at a time, got {sorted({s['method'] for s in summaries})}")
    n = sum(s["images"] for s in summaries)
    pooled = {**summaries[0], "images": n}
    for key in ("mse", "psnr", "ssim"):
        total = sum(s["images"] * s[key] for s in summaries)
        squares = sum(
            (s["images"] - 1) * s["images"] * s[key + "_se"] ** 2 + s["images"] * s[key] ** 2 for s in summaries
        )
        mean = total / n
        variance = max(squares - n * mean**2, 0.0) / (n - 1) if n > 1 else 0.0
        pooled[key], pooled[key + "_se"] = mean, math.sqrt(variance / n)
    pooled["seconds"] = sum(s["seconds"] for s in summaries)
    for key in ("prior_calls", "gradient_evaluations"):
        if len({s[key] for s in summaries}) != 1:
            raise ValueError(f"shards of {pooled['method']} disagree on {key}: {[s[key] for s in summaries]}")
    return pooled


def pool_shards(shards: list[dict]) -> list[dict]:
    """Every method of benchmark shards pooled over the shards (`pool`). A shard is a results dict
    with "first" and "images" (the test images first .. first + images - 1) and "methods" (summaries);
    the shards must cover disjoint images and run the same methods."""
    spans = sorted((shard.get("first", 0), shard["images"]) for shard in shards)
    if any(a + n > b for (a, n), (b, _) in zip(spans[:-1], spans[1:])):
        raise ValueError(f"shards must cover disjoint images, got (first, images) = {spans}")
    names = [m["method"] for m in shards[0]["methods"]]
    if any(sorted(m["method"] for m in shard["methods"]) != sorted(names) for shard in shards):
        listed = [[m["method"] for m in shard["methods"]] for shard in shards]
        raise ValueError(f"shards must run the same methods, got {listed}")
    return [pool([next(m for m in shard["methods"] if m["method"] == name) for shard in shards]) for name in names]

