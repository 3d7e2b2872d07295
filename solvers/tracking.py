"""Bookkeeping shared by every solver: the per-step record, the trace, the result, NaN checks,
callbacks, progress bars and call counters. A solver's loop calls `track.step(...)` once per step
and stays a transcription of its algorithm box."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from priors import metrics


class NonFiniteError(FloatingPointError):
    """An iterate became NaN or Inf; the message names the solver, the step and the noise level."""


@dataclass(frozen=True)
class StepRecord:
    """What a callback receives after each step (tensors are detached views, do not modify them)."""

    solver: str
    step: int  # 1-based
    total: int
    sigma: float
    x: torch.Tensor  # the current iterate
    estimate: torch.Tensor  # the current estimate of the clean image (x0_hat, or x itself)
    residual: torch.Tensor | None  # ||A estimate - y|| per sample, shape (B,); None without data


@dataclass
class Trace:
    """Per-step history: noise level, data residual ||A x - y|| (per sample) and, when the ground
    truth is known, MSE / PSNR / SSIM per sample; plus call counts and wall time."""

    sigma: list[float] = field(default_factory=list)
    residual: list[torch.Tensor] = field(default_factory=list)
    mse: list[torch.Tensor] = field(default_factory=list)
    psnr: list[torch.Tensor] = field(default_factory=list)
    ssim: list[torch.Tensor] = field(default_factory=list)
    prior_calls: int = 0
    gradient_evaluations: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """Plain lists (means over the batch), e.g. for JSON."""
        mean = lambda seq: [float(t.mean()) for t in seq]  # noqa: E731
        return {
            "sigma": self.sigma,
            "residual": mean(self.residual),
            "mse": mean(self.mse),
            "psnr": mean(self.psnr),
            "ssim": mean(self.ssim),
            "prior_calls": self.prior_calls,
            "gradient_evaluations": self.gradient_evaluations,
            "seconds": self.seconds,
        }


@dataclass
class Result:
    """A reconstruction and how it was reached."""

    x: torch.Tensor
    trace: Trace


class _CountingPrior:
    """A transparent proxy that counts denoise / score / eps calls of a prior, and calls of the prior
    itself (Dirac's Phi(y_t, t))."""

    def __init__(self, prior, trace: Trace):
        self._prior, self._trace = prior, trace

    def __call__(self, *args, **kwargs):
        self._trace.prior_calls += 1
        return self._prior(*args, **kwargs)

    def __getattr__(self, name):
        attr = getattr(self._prior, name)
        if name in ("denoise", "score", "eps"):

            def counted(*args, **kwargs):
                self._trace.prior_calls += 1
                return attr(*args, **kwargs)

            return counted
        return attr


class Tracker:
    """Checks, records and reports each step of a solver run."""

    def __init__(
        self,
        solver: str,
        total: int,
        y: torch.Tensor | None = None,
        A=None,
        *,
        x_true: torch.Tensor | None = None,
        callback: Callable[[StepRecord], None] | None = None,
        progress: bool = True,
        to_data: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        """`to_data` maps an image from the units the solver works in (the prior's) to those of y and
        x_true (see `solvers.problem`); records, metrics and the result are in the latter."""
        self.solver, self.total, self.y, self.A = solver, total, y, A
        self.x_true, self.callback = x_true, callback
        self.to_data = to_data
        self.trace = Trace()
        self.bar = tqdm(total=total, desc=solver, disable=not progress, leave=False)
        self.start = time.perf_counter()

    def watch(self, prior):
        """The prior, with its calls counted in the trace."""
        return _CountingPrior(prior, self.trace)

    def gradients(self, count: int = 1) -> None:
        """Count data-term gradient evaluations (A^H (A x - y) or a backpropagation)."""
        self.trace.gradient_evaluations += count

    def step(self, n: int, sigma: float, x: torch.Tensor, estimate: torch.Tensor | None = None) -> None:
        """Record step n (0-based) after it has updated x; raises NonFiniteError on NaN/Inf."""
        estimate = x if estimate is None else estimate
        if not bool(torch.isfinite(x).all()) or not bool(torch.isfinite(estimate).all()):
            self.bar.close()
            raise NonFiniteError(
                f"{self.solver}: the iterate became NaN/Inf at step {n + 1} of {self.total} "
                f"(sigma={float(sigma):.4g}); lower the step size or check the operator scaling."
            )
        with torch.no_grad():
            x, estimate = x.detach(), estimate.detach()
            if self.to_data is not None:
                x, estimate = self.to_data(x), self.to_data(estimate)
            residual = None
            if self.A is not None:
                residual = (self.A @ estimate - self.y).reshape(self.y.shape[0], -1).norm(dim=1)
            t = self.trace
            t.sigma.append(float(sigma))
            if residual is not None:
                t.residual.append(residual)
            if self.x_true is not None:
                t.mse.append(metrics.mse(estimate, self.x_true))
                t.psnr.append(metrics.psnr(estimate, self.x_true))
                if estimate.ndim == 4 and min(estimate.shape[-2:]) >= metrics.ssim_window():
                    t.ssim.append(metrics.ssim(estimate, self.x_true))
        if self.callback is not None:
            self.callback(StepRecord(self.solver, n + 1, self.total, float(sigma), x, estimate, residual))
        self.bar.update(1)
        postfix = {"sigma": f"{float(sigma):.3g}"}
        if residual is not None:
            postfix["residual"] = f"{float(residual.mean()):.3g}"
        self.bar.set_postfix(postfix)

    def result(self, x: torch.Tensor) -> Result:
        """The run's result: x (in the data's units) and the trace."""
        self.bar.close()
        self.trace.seconds = time.perf_counter() - self.start
        x = x.detach()
        return Result(self.to_data(x) if self.to_data is not None else x, self.trace)


def gaussian_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like x, drawn from `generator` (on x's device)."""
    if generator is not None and generator.device != x.device:
        raise ValueError(f"the generator lives on {generator.device} but the iterate on {x.device}")
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
