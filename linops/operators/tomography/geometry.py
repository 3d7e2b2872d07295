"""Acquisition geometries: view angles, the detector, and the rays they define.

Coordinates. An image of H rows and W columns with pixel size p has pixel (row, col) centred at

    x = (col - c_x) p,    y = (c_y - row) p,    c_x = (W - 1) / 2,  c_y = (H - 1) / 2,

so x grows to the right, y grows upwards, and the origin is the centre of the image. A view at angle
theta has the detector axis e_s = (cos theta, sin theta) and the ray direction e_r = (-sin theta, cos theta);
angles grow counter-clockwise (from +x towards +y). Detector bin k of n is centred at

    s_k = (k - (n - 1) / 2) * spacing.

Parallel beam: ray (theta, k) is the line {s_k e_s + t e_r}, i.e. all points with x cos theta + y sin theta = s_k.
Fan beam (flat detector): the source sits at S = -D_so e_r, bin k at P_k = D_od e_r + s_k e_s, and ray (theta, k)
is the line through S and P_k; a point q lands at s = D_sd <q, e_s> / (D_so + <q, e_r>) with D_sd = D_so + D_od.

Rays are listed view-major (ray index = view * n_detector + k), the order of a sinogram row by row.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


def angles_in_radians(angles_deg=None, angles_rad=None, *, owner: str = "Radon") -> tuple[float, ...]:
    """The view angles in radians from exactly one of `angles_deg` and `angles_rad` (1-D, finite, non-empty)."""
    if (angles_deg is None) == (angles_rad is None):
        raise ValueError(
            f"{owner}: give the view angles as exactly one of angles_deg=... or angles_rad=..., "
            f"got {'both' if angles_deg is not None else 'neither'}."
        )
    name, values = ("angles_deg", angles_deg) if angles_deg is not None else ("angles_rad", angles_rad)
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {name} must be a sequence of numbers, got {values!r}") from None
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{owner}: {name} must be a non-empty 1-D sequence, got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{owner}: {name} must be finite, got {array.tolist()}.")
    if name == "angles_deg":
        array = np.deg2rad(array)
    return tuple(float(a) for a in array)


def full_range_angles_deg(n_angles: int) -> np.ndarray:
    """n angles uniformly over [0, 180) degrees: 180 k / n for k = 0..n-1."""
    n = _positive_int(n_angles, "n_angles")
    return np.arange(n) * (180.0 / n)


def tilt_series_angles_deg(n_angles: int, max_tilt_deg: float = 60.0, min_tilt_deg: float | None = None) -> np.ndarray:
    """n tilts uniformly over [min_tilt_deg, max_tilt_deg], both ends included (min defaults to -max)."""
    n = _positive_int(n_angles, "n_angles")
    low = -float(max_tilt_deg) if min_tilt_deg is None else float(min_tilt_deg)
    high = float(max_tilt_deg)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"tilt range must be finite with min <= max, got [{low}, {high}] degrees")
    if n == 1:
        return np.array([(low + high) / 2])
    return np.linspace(low, high, n)


def detector_positions(n_detector: int, spacing: float) -> torch.Tensor:
    """Bin centres s_k = (k - (n - 1) / 2) * spacing, float64."""
    return (torch.arange(n_detector, dtype=torch.float64) - (n_detector - 1) / 2) * spacing


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def positive_float(value, name: str, owner: str = "", *, allow_zero: bool = False) -> float:
    """float(value), checked finite and positive (or >= 0 with `allow_zero`); errors name `owner: name`."""
    label = f"{owner}: {name}" if owner else name
    expected = "finite and >= 0" if allow_zero else "positive and finite"
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{label} must be a number, {expected}, got {value!r}") from None
    if not (math.isfinite(out) and (out >= 0 if allow_zero else out > 0)):
        raise ValueError(f"{label} must be {expected}, got {value!r}")
    return out


@dataclass(frozen=True)
class Rays:
    """Lines given by a point (origin_x, origin_y) and a unit direction (direction_x, direction_y), float64 (R,)."""

    origin_x: torch.Tensor
    origin_y: torch.Tensor
    direction_x: torch.Tensor
    direction_y: torch.Tensor

    def __len__(self) -> int:
        return self.origin_x.numel()


def _view_axes(angles_rad: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    theta = torch.tensor(angles_rad, dtype=torch.float64)[:, None]
    return torch.cos(theta), torch.sin(theta)


@dataclass(frozen=True)
class ParallelBeamGeometry:
    """Parallel beam: views at `angles_rad`, `n_detector` bins `detector_spacing` apart, pixels `pixel_size` wide.

    Ray (theta, k) is the line x cos theta + y sin theta = s_k (see the module docstring for the axes).
    """

    angles_rad: tuple[float, ...]
    n_detector: int
    detector_spacing: float = 1.0
    pixel_size: float = 1.0

    def __post_init__(self):
        _positive_int(self.n_detector, "n_detector")
        positive_float(self.detector_spacing, "detector_spacing")
        positive_float(self.pixel_size, "pixel_size")

    @property
    def n_views(self) -> int:
        return len(self.angles_rad)

    def rays(self, image_shape: tuple[int, int]) -> Rays:
        """Ray (view, k) through s_k e_s with direction e_r, listed view-major."""
        cos, sin = _view_axes(self.angles_rad)
        s = detector_positions(self.n_detector, self.detector_spacing)[None, :]
        shape = (self.n_views, self.n_detector)
        return Rays(
            (s * cos).reshape(-1),
            (s * sin).reshape(-1),
            (-sin).expand(shape).reshape(-1),
            cos.expand(shape).reshape(-1),
        )


@dataclass(frozen=True)
class FanBeamGeometry:
    """Fan beam with a flat detector: source at distance `source_distance` (D_so) from the centre of rotation,
    detector at `detector_distance` (D_od) beyond it, perpendicular to the central ray.

    Ray (theta, k) joins S = -D_so e_r and P_k = D_od e_r + s_k e_s. The source must lie outside the image.
    """

    angles_rad: tuple[float, ...]
    n_detector: int
    source_distance: float
    detector_distance: float
    detector_spacing: float = 1.0
    pixel_size: float = 1.0

    def __post_init__(self):
        _positive_int(self.n_detector, "n_detector")
        positive_float(self.source_distance, "source_distance")
        positive_float(self.detector_spacing, "detector_spacing")
        positive_float(self.pixel_size, "pixel_size")
        positive_float(self.detector_distance, "detector_distance", allow_zero=True)

    @property
    def n_views(self) -> int:
        return len(self.angles_rad)

    def check_image(self, image_shape: tuple[int, int]) -> None:
        """The source circle must enclose the image: D_so > p hypot(H, W) / 2."""
        radius = self.pixel_size * math.hypot(*image_shape) / 2
        if self.source_distance <= radius:
            raise ValueError(
                f"FanBeamRadon: source_distance {self.source_distance} must exceed the image half-diagonal "
                f"{radius:.4g} (pixel_size * hypot(H, W) / 2 for an image of {image_shape[0]}x{image_shape[1]})."
            )

    def rays(self, image_shape: tuple[int, int]) -> Rays:
        """Ray (view, k) from the source S through the bin centre P_k, listed view-major."""
        cos, sin = _view_axes(self.angles_rad)
        s = detector_positions(self.n_detector, self.detector_spacing)[None, :]
        total = self.source_distance + self.detector_distance
        # P_k - S = s_k e_s + D_sd e_r, normalised
        length = torch.sqrt(s**2 + total**2)
        direction_x = (s * cos - total * sin) / length
        direction_y = (s * sin + total * cos) / length
        shape = (self.n_views, self.n_detector)
        return Rays(
            (self.source_distance * sin).expand(shape).reshape(-1),
            (-self.source_distance * cos).expand(shape).reshape(-1),
            direction_x.reshape(-1),
            direction_y.reshape(-1),
        )
