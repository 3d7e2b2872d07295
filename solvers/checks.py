"""Checks of solver and schedule hyperparameters at construction: a number is a real (not bool), finite,
and inside its interval; a count is an int. Each error names the owner, the field, the interval and the
value given, e.g. "DDRM: sigma_y must be a finite number >= 0, got nan"."""

from __future__ import annotations

import math
import numbers

import torch


def _interval(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return ""


def check_real(
    owner: str,
    name: str,
    value,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """`value` as a float, after checking that it is a finite real number (not a bool) in the interval
    from `low` to `high` (closed unless `low_open` / `high_open`; None: unbounded on that side)."""
    where = _interval(low, high, low_open, high_open)
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        v = float(value)
        above = low is None or (v > low if low_open else v >= low)
        below = high is None or (v < high if high_open else v <= high)
        ok = above and below
    if not ok:
        raise ValueError(f"{owner}: {name} must be a finite number{' ' + where if where else ''}, got {value!r}")
    return float(value)


def check_optional_real(owner: str, name: str, value, low=None, high=None, *, low_open=False, high_open=False):
    """None, or `check_real(...)`."""
    if value is None:
        return None
    return check_real(owner, name, value, low, high, low_open=low_open, high_open=high_open)


def check_int(owner: str, name: str, value, minimum: int = 0) -> int:
    """`value`, after checking that it is an int (not a bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = {0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
        raise ValueError(f"{owner}: {name} must be {kind}, got {value!r}")
    return int(value)


def check_instance(owner: str, name: str, value, types, expected: str):
    """`value`, after checking isinstance(value, types); TypeError naming `expected` otherwise."""
    if not isinstance(value, types):
        raise TypeError(f"{owner}: {name} must be {expected}, got {value!r}")
    return value


def check_sigmas(owner: str, schedule, *, allow_zero: bool = False) -> torch.Tensor:
    """The schedule's noise levels, after checking them: a non-empty 1-D sequence of finite levels, each
    > 0 (>= 0 with `allow_zero`), none larger than the one before (a solver anneals downwards)."""
    sigmas = schedule.sigmas()
    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1 or sigmas.numel() == 0:
        raise ValueError(f"{owner}: {schedule!r}.sigmas() must be a non-empty 1-D tensor, got {sigmas!r}")
    bad = ~torch.isfinite(sigmas) | ((sigmas < 0) if allow_zero else (sigmas <= 0))
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"{owner}: every noise level of {schedule!r} must be finite and {'>= 0' if allow_zero else '> 0'}; "
            f"sigma[{i}] = {float(sigmas[i])}"
        )
    if sigmas.numel() > 1 and bool((sigmas[1:] > sigmas[:-1]).any()):
        i = int((sigmas[1:] > sigmas[:-1]).nonzero()[0]) + 1
        raise ValueError(
            f"{owner}: the noise levels of {schedule!r} must not increase; sigma[{i}] = {float(sigmas[i]):g} > "
            f"sigma[{i - 1}] = {float(sigmas[i - 1]):g}"
        )
    return sigmas
