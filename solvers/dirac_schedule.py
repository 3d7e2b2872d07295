"""Severity schedules for Dirac (Fabian et al. 2023; seed 002): the severities the reverse process
visits, and the greedy degradation scheduler that decides how a family's parameter grows with t.

Two different things are scheduled:

- The reverse-process grid 1 = t_0 > t_1 > ... > t_N = 0 (`UniformSeverities`, `SeverityTimes`): where
  the sampler evaluates Phi(y_t, t); dt = t_k - t_{k+1}. The sampler truncates it at t_stop.
- The degradation schedule (`GreedyDegradationScheduler`): which member of a severity family t stands
  for. Dirac picks severities 0 = s_0 < s_1 < ... < s_K = 1 (of the family's own parameterisation)
  such that the largest distance between consecutive ones,

      d(s, s') = E_x m(A_s x, A_s' x)       (mean over sample images, m a per-image dissimilarity),

  is as small as possible, greedily: start from {0, 1}; repeatedly split the interval of largest d at
  the candidate that minimises the larger of its two halves. The selected severities are placed at
  equally spaced t = k / K and linearly interpolated in between (the seed's "linear interpolation in
  between the selected interpolating severities"), which gives the warp t -> s as a
  `linops.PiecewiseLinearRamp`; `compose(ramp, warp)` turns a family's parameter ramp (std, width) into
  the rescheduled one.

The paper measures m with LPIPS. Here m is any callable (a, b) -> (B,); the default `rms_distance`
(the root-mean-square pixel difference) is a metric (it obeys the triangle inequality), so splitting
a gap never leaves a half wider than the gap, and for the nested degradations of a severity family it
grows with |s - s'|. Pass an LPIPS callable to follow the paper exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from linops import PiecewiseLinearRamp, SeverityFamily

# ------------------------------------------------------------------------------------------------
# the reverse-process grid


def _check_int(value, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


class Severities:
    """Severities 1 = t_0 > t_1 > ... > t_N = 0 visited by the Dirac reverse process."""

    def times(self) -> torch.Tensor:
        """The grid as a decreasing float64 tensor from 1 to 0."""
        raise NotImplementedError

    def until(self, t_stop: float) -> list[float]:
        """The grid times above t_stop, then t_stop itself: 1 = t_0 > ... > t_K = t_stop (a last step
        shorter than dt when t_stop is off the grid; [1.0] for t_stop = 1, the one-shot mode)."""
        if not 0 <= t_stop <= 1:
            raise ValueError(f"t_stop must lie in [0, 1], got {t_stop}")
        above = [t for t in self.times().tolist() if t > t_stop + 1e-9]
        return above + [float(t_stop)]

    def __len__(self) -> int:
        return len(self.times()) - 1


@dataclass(frozen=True)
class UniformSeverities(Severities):
    """t_k = 1 - k dt, dt = 1 / steps, k = 0..steps."""

    steps: int = 100

    def __post_init__(self):
        _check_int(self.steps, "UniformSeverities steps", 1)

    @property
    def dt(self) -> float:
        return 1.0 / self.steps

    def times(self) -> torch.Tensor:
        return torch.arange(self.steps, -1, -1, dtype=torch.float64) / self.steps


@dataclass(frozen=True)
class SeverityTimes(Severities):
    """An explicit grid: `values` strictly decreasing from 1 to 0 (e.g. a scheduler's selection, reversed)."""

    values: tuple[float, ...]

    def __post_init__(self):
        v = tuple(float(t) for t in self.values)
        object.__setattr__(self, "values", v)
        finite = all(math.isfinite(t) for t in v)
        if not finite or len(v) < 2 or v[0] != 1 or v[-1] != 0 or any(b >= a for a, b in zip(v, v[1:])):
            raise ValueError(f"severity times must decrease strictly from 1 to 0, got {v}")

    def times(self) -> torch.Tensor:
        return torch.tensor(self.values, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------
# the greedy degradation scheduler


def rms_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sqrt(mean |a - b|^2) per image, shape (B,)."""
    return (a - b).abs().pow(2).reshape(a.shape[0], -1).mean(dim=1).sqrt()


def greedy_severities(
    distance: Callable[[float, float], float], candidates: Sequence[float], intervals: int
) -> list[tuple[float, ...]]:
    """Dirac's greedy scheduler (seed 002, Algorithm 2) on sorted `candidates` (from 0 to 1):

        S = {0, 1}
        while |S| - 1 < intervals:
            (a, b) = the gap of S with the largest d(a, b) that holds a candidate
            S = S + {argmin_{a < c < b} max(d(a, c), d(c, b))}

    Returns the selection after each split, from (0, 1) to the final one (intervals + 1 severities),
    so a caller can see the widest gap being split. For a distance that grows with the gap, the
    largest consecutive distance never increases from one selection to the next.
    """
    c = [float(v) for v in candidates]
    if c[0] != 0 or c[-1] != 1 or any(b <= a for a, b in zip(c, c[1:])):
        raise ValueError("candidates must increase strictly from 0 to 1")
    _check_int(intervals, "intervals", 1)
    if intervals > len(c) - 1:
        raise ValueError(f"{intervals} intervals need at least {intervals + 1} candidates, got {len(c)}")
    chosen = [0, len(c) - 1]  # indices into c, sorted
    history = [(c[0], c[-1])]
    while len(chosen) - 1 < intervals:
        gaps = [(distance(c[i], c[j]), i, j) for i, j in zip(chosen, chosen[1:]) if j - i > 1]
        _, i, j = max(gaps)
        k = min(range(i + 1, j), key=lambda k: max(distance(c[i], c[k]), distance(c[k], c[j])))
        chosen = sorted([*chosen, k])
        history.append(tuple(c[m] for m in chosen))
    return history


def compose(ramp, warp: PiecewiseLinearRamp) -> PiecewiseLinearRamp:
    """ramp(warp(t)) as a PiecewiseLinearRamp on warp's knots: the family parameter (std, width) as a
    function of the rescheduled severity. Exact at the knots, and everywhere when `ramp` is linear
    between consecutive warped knots (a `LinearRamp`)."""
    values = ramp(torch.tensor(warp.values, dtype=torch.float64))
    return PiecewiseLinearRamp(warp.times, tuple(values.tolist()))


@dataclass(frozen=True)
class GreedyDegradationScheduler:
    """Chooses `intervals` + 1 severities of a family by `greedy_severities`, with

        d(s, s') = mean over the sample images x of metric(A_s x, A_s' x),

    among `candidates` equally spaced severities of [0, 1], and returns the warp t -> s as a
    `PiecewiseLinearRamp` with knots (k / K, s_k). Build the rescheduled family from it, e.g.
    `GaussianBlurFamily(shape, compose(family.std, warp))`.

    Attributes:
        intervals: K, the number of gaps (the budget of interpolating severities is K - 1).
        candidates: how many equally spaced severities the selection is drawn from (>= K + 1).
        metric: (a, b) -> per-image dissimilarity (B,); `rms_distance` by default (the paper: LPIPS).
    """

    intervals: int = 20
    candidates: int = 201
    metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = rms_distance

    def __post_init__(self):
        _check_int(self.intervals, "intervals", 1)
        _check_int(self.candidates, "candidates", 2)
        if self.candidates < self.intervals + 1:
            raise ValueError(f"{self.intervals} intervals need at least {self.intervals + 1} candidates")

    def distance(self, family: SeverityFamily, images: torch.Tensor) -> Callable[[float, float], float]:
        """d(s, s') on the candidate grid, with each A_s x computed once and each distance cached."""
        degraded: dict[float, torch.Tensor] = {}
        cache: dict[tuple[float, float], float] = {}

        def apply(s: float) -> torch.Tensor:
            if s not in degraded:
                with torch.no_grad():
                    degraded[s] = family.at(s) @ images
            return degraded[s]

        def d(s: float, s_next: float) -> float:
            if (s, s_next) not in cache:
                cache[(s, s_next)] = float(self.metric(apply(s), apply(s_next)).mean())
            return cache[(s, s_next)]

        return d

    def history(self, family: SeverityFamily, images: torch.Tensor) -> list[tuple[float, ...]]:
        """The selections after each split (see `greedy_severities`)."""
        shape = family.image_shape
        if images.ndim != len(shape) + 1 or tuple(images.shape[1:]) != tuple(shape):
            raise ValueError(f"images must have shape (B, {', '.join(map(str, shape))}), got {tuple(images.shape)}")
        grid = (torch.arange(self.candidates, dtype=torch.float64) / (self.candidates - 1)).tolist()
        return greedy_severities(self.distance(family, images), grid, self.intervals)

    def __call__(self, family: SeverityFamily, images: torch.Tensor) -> PiecewiseLinearRamp:
        """The warp t -> s: knots (k / K, s_k) for the selected s_0 = 0 < ... < s_K = 1."""
        selected = self.history(family, images)[-1]
        K = len(selected) - 1
        return PiecewiseLinearRamp(tuple(k / K for k in range(K + 1)), selected)
