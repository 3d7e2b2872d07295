"""What every solver checks before its loop, in one place: the data y against the operator A and the prior.

    problem = check_problem("DDRM", y, A, prior, needs=("denoise",), convention=convention, x_true=x_true)
    y, prior = problem.y, problem.prior                    # y in the prior's units
    track = problem.track(steps, callback=callback, progress=progress)
    ...                                                    # the algorithm box
    return track.result(x)                                 # x back in the data's units

Solvers call it through `solvers.start.start(...)`, which adds the schedule, its range check and the
counted prior.

Checks (each error names the solver, A, what was expected and what was given):

- y has shape (B, *A.out_shape), B >= 1: no broadcasting of a (B, 1, n_views, 1) sinogram.
- y is a torch tensor of A's precision (float32 / complex64 for a float32 operator, ...) on A's device, and
  finite. A numpy array is converted (integers and floats alike) to a tensor of A's dtype on A's device;
  the result is a torch tensor all the same (`result.x.numpy()` for an array). A CuPy array goes through
  DLPack and then follows the torch rules.
- A network prior's parameters have y's precision and device (a float64 y with a float32 network is
  refused with the fix, not left to fail inside conv2d); an analytic prior with an `event_shape` must
  act on A.in_shape.
- x_true (for the trace's metrics), when given, has shape (B or 1, *A.in_shape).

Units. A solver works in its prior's units (the prior's `convention`: [0, 1], [-1, 1], standardized): its
noise schedule and step sizes are in those units, as the prior was trained. `convention` states the units
of the data instead (a `priors.Convention`, or the range (lo, hi) of the images, e.g. (0, 255)); when they
differ, with x_prior = a x_data + b (`Convention.map_to`) and A linear,

    y_prior = a y + b A 1,        sigma_y,prior = |a| sigma_y,        x_data = (x_prior - b) / a,

which is exact: the solver sees the problem in the prior's units and the result, the trace's residuals and
metrics and the callback's records come back in the data's units. Without `convention` the data are taken
to be in the prior's units, and a `ConventionWarning` says so when they clearly are not: when the constant
image that best explains y (c = <A 1, y> / ||A 1||^2, the mean of the image for every operator that
preserves constants) lies more than one full image range outside the range of the prior's images
(convention.to_unit(c) outside [-1, 2]), e.g. [0, 255] or Hounsfield data with a [0, 1] prior. Subtler
mismatches (standardized data and a [0, 1] prior) are not detected: pass `convention`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from linops.base import precision_of, same_device
from linops.interop.arrays import is_cupy_array
from priors.protocol import Convention

from .tracking import Tracker


class ConventionWarning(UserWarning):
    """The data do not look like images in the prior's units."""


@dataclass(frozen=True)
class Problem:
    """A checked problem. `y` is in the prior's units (what the solver iterates against); `data_y` is the
    measurement as given (converted to a tensor); x_prior = scale x_data + offset."""

    solver: str
    A: object
    y: torch.Tensor
    prior: object
    data_y: torch.Tensor
    x_true: torch.Tensor | None = None
    scale: float = 1.0
    offset: float = 0.0

    @property
    def batch(self) -> int:
        return self.y.shape[0]

    @property
    def x_shape(self) -> tuple[int, ...]:
        """(B, *A.in_shape): the shape of the iterate."""
        return (self.batch, *self.A.in_shape)

    @property
    def real_dtype(self) -> torch.dtype:
        return precision_of(self.A.dtype)

    @property
    def noise_scale(self) -> float:
        """|a|: a noise level in the data's units times this is the same noise in the prior's units."""
        return abs(self.scale)

    @property
    def converted(self) -> bool:
        return (self.scale, self.offset) != (1.0, 0.0)

    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        """An image in the prior's units -> the data's units."""
        return (x - self.offset) / self.scale if self.converted else x

    def zeros(self) -> torch.Tensor:
        """A real zero image batch (B, *A.in_shape) in A's precision, on A's device."""
        return torch.zeros(self.x_shape, dtype=self.real_dtype, device=self.y.device)

    def track(self, total: int, *, callback=None, progress: bool = True) -> Tracker:
        """The run's Tracker, reporting in the data's units."""
        return Tracker(
            self.solver, total, self.data_y, self.A, x_true=self.x_true, callback=callback, progress=progress,
            to_data=self.to_data if self.converted else None,
        )


def as_convention(convention) -> Convention | None:
    """None, a `Convention`, or an image range (lo, hi) -> Convention(hi - lo, lo) (x = (hi - lo) u + lo)."""
    if convention is None or isinstance(convention, Convention):
        return convention
    try:
        lo, hi = (float(v) for v in convention)
    except (TypeError, ValueError):
        raise TypeError(
            f"convention must be a priors.Convention or an image range (lo, hi), got {convention!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"the image range convention=(lo, hi) needs finite lo < hi, got {convention!r}")
    return Convention(hi - lo, lo, f"[{lo:g}, {hi:g}]")


def _as_tensor(solver: str, name: str, value, A) -> torch.Tensor:
    """A torch tensor for value (numpy converted to A's dtype and device, CuPy through DLPack)."""
    if isinstance(value, torch.Tensor):
        return value
    if is_cupy_array(value):
        return torch.from_dlpack(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise TypeError(f"{solver}: {name} must hold numbers, got a numpy array of dtype {value.dtype}")
        if value.dtype.kind == "c" and not A.dtype.is_complex:
            raise TypeError(f"{solver}: {name} is complex ({value.dtype}) but A = {A!r} is real ({A.dtype})")
        target = A.dtype if A.dtype.is_complex else precision_of(A.dtype)
        return torch.from_numpy(np.ascontiguousarray(value)).to(dtype=target, device=A.device)
    raise TypeError(f"{solver}: {name} must be a torch tensor or a numpy array, got {type(value).__name__}")


def _first_parameter(prior, depth: int = 0):
    """The first floating parameter of a network prior (looking through wrappers), or None."""
    if prior is None or depth > 4:
        return None
    parameters = getattr(prior, "parameters", None)
    if callable(parameters):
        try:
            found = next((p for p in parameters() if p.is_floating_point()), None)
        except TypeError:
            found = None
        if found is not None:
            return found
    for attr in ("inner", "prior"):
        inner = getattr(prior, attr, None)
        if inner is not None and inner is not prior:
            found = _first_parameter(inner, depth + 1)
            if found is not None:
                return found
    return None


def _check_shape(solver: str, y: torch.Tensor, A) -> None:
    out = tuple(A.out_shape)
    expected = f"(B, {', '.join(map(str, out))})"
    if y.ndim != len(out) + 1 or tuple(y.shape[1:]) != out or y.shape[0] < 1:
        hint = "; add a batch axis: y[None]" if tuple(y.shape) == out else ""
        raise ValueError(
            f"{solver}: y must have shape (B, *A.out_shape) = {expected} for A = {A!r}, got {tuple(y.shape)}{hint}"
        )


def _check_dtype_and_device(solver: str, y: torch.Tensor, A, prior) -> None:
    if not (y.dtype.is_floating_point or y.dtype.is_complex):
        raise TypeError(f"{solver}: y must be a floating-point tensor, got {y.dtype}; convert it with y.to({A.dtype})")
    want = precision_of(A.dtype)
    if precision_of(y.dtype) != want:
        raise TypeError(
            f"{solver}: y is {y.dtype} but A = {A!r} is {A.dtype}; convert y with y.to({want}) "
            f"or the operator with A.to({precision_of(y.dtype)})"
        )
    if y.dtype.is_complex and not A.dtype.is_complex:
        raise TypeError(f"{solver}: y is complex ({y.dtype}) but A = {A!r} is real ({A.dtype})")
    if A.dtype.is_complex and not y.dtype.is_complex:
        raise TypeError(f"{solver}: A = {A!r} is complex ({A.dtype}), so y must be complex too; got {y.dtype}")
    if not same_device(y.device, A.device):
        raise ValueError(f"{solver}: y is on {y.device} but A = {A!r} on {A.device}; move one of them")
    p = _first_parameter(prior)
    if p is not None:
        if p.dtype != want:
            raise TypeError(
                f"{solver}: y and A are {want} but the prior's network is {p.dtype}; convert the prior with "
                f"prior.to({want}), or y and A to {p.dtype} (y.to({p.dtype}), A.to({p.dtype}))"
            )
        if not same_device(p.device, y.device):
            raise ValueError(f"{solver}: y is on {y.device} but the prior's network on {p.device}; move one of them")


def _check_prior(solver: str, prior, A, needs: tuple[str, ...]) -> None:
    if not needs:
        return
    if prior is None or not all(callable(getattr(prior, m, None)) for m in needs):
        raise TypeError(
            f"{solver} needs a prior with {' and '.join(needs)}(x, sigma) (e.g. priors.load(...) or a "
            f"priors.analytic prior), got {type(prior).__name__ if prior is not None else None}"
        )
    event = getattr(prior, "event_shape", None)
    if event is not None and tuple(event) != tuple(A.in_shape):
        raise ValueError(f"{solver}: the prior's images have shape {tuple(event)} but A = {A!r} takes {A.in_shape}")


def _constant_fit(y: torch.Tensor, A) -> float | None:
    """c = <A 1, y> / ||A 1||^2 averaged over the batch: the constant image that best explains y (None if
    A annihilates constants)."""
    with torch.no_grad():
        a1 = A @ torch.ones((1, *A.in_shape), dtype=precision_of(A.dtype), device=y.device)
        norm2 = float(a1.abs().pow(2).sum())
        if not (norm2 > 0 and math.isfinite(norm2)):
            return None
        inner = (a1.conj() * y).real.reshape(y.shape[0], -1).sum(1)
        return float(inner.mean()) / norm2


def _warn_if_out_of_range(solver: str, y: torch.Tensor, A, convention: Convention, declared: bool) -> None:
    c = _constant_fit(y, A)
    if c is None:
        return
    u = float(convention.to_unit(torch.tensor(c)))
    if -1.0 <= u <= 2.0:
        return
    lo, hi = sorted((float(convention.from_unit(torch.tensor(0.0))), float(convention.from_unit(torch.tensor(1.0)))))
    whose = "the declared convention" if declared else "the prior's convention"
    warnings.warn(
        f"{solver}: y looks like images of mean about {c:.4g}, far outside [{lo:.4g}, {hi:.4g}], the range of "
        f"{whose} {convention.name}; state the data's units with convention=(lo, hi) (e.g. (0, 255)) or a "
        "priors.Convention, and the solver converts exactly",
        ConventionWarning,
        stacklevel=5,  # the solver's caller: _warn_if_out_of_range <- check_problem <- start <- solver.__call__
    )


def check_problem(
    solver: str,
    y,
    A,
    prior=None,
    *,
    needs: tuple[str, ...] = (),
    convention=None,
    x_true=None,
) -> Problem:
    """Check y against A and the prior (see the module docstring) and bring the problem into the prior's
    units. `needs`: the prior methods the solver calls (a missing prior or method raises TypeError)."""
    if not all(hasattr(A, a) for a in ("in_shape", "out_shape", "dtype", "device")):
        raise TypeError(f"{solver}: A must be a linops.LinearOperator, got {type(A).__name__}")
    _check_prior(solver, prior, A, needs)
    y = _as_tensor(solver, "y", y, A)
    _check_shape(solver, y, A)
    _check_dtype_and_device(solver, y, A, prior)
    bad = int((~torch.isfinite(y)).sum())
    if bad:
        raise ValueError(f"{solver}: y has {bad} NaN or infinite entries (of {y.numel()})")
    if x_true is not None:
        x_true = _as_tensor(solver, "x_true", x_true, A)
        if x_true.ndim != len(A.in_shape) + 1 or tuple(x_true.shape[1:]) != tuple(A.in_shape) or (
            x_true.shape[0] not in (1, y.shape[0])
        ):
            raise ValueError(
                f"{solver}: x_true must have shape ({y.shape[0]} or 1, {', '.join(map(str, A.in_shape))}) for "
                f"A = {A!r}, got {tuple(x_true.shape)}"
            )

    prior_convention = getattr(prior, "convention", None)
    data_convention = as_convention(convention)
    if prior_convention is None or not needs:
        return Problem(solver, A, y, prior, y, x_true)
    if data_convention is None:
        _warn_if_out_of_range(solver, y, A, prior_convention, declared=False)
        return Problem(solver, A, y, prior, y, x_true)
    _warn_if_out_of_range(solver, y, A, data_convention, declared=True)
    a, b = data_convention.map_to(prior_convention)
    if math.isclose(a, 1.0, rel_tol=1e-12) and abs(b) <= 1e-12:
        return Problem(solver, A, y, prior, y, x_true)
    with torch.no_grad():
        ones = torch.ones((1, *A.in_shape), dtype=precision_of(A.dtype), device=y.device)
        y_prior = a * y + b * (A @ ones)
    return Problem(solver, A, y_prior, prior, y, x_true, a, b)

