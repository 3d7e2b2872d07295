"""Market examples for the tomography operators, with an independent numpy reference.

The reference rebuilds every ray from the documented geometry (geometry.py) and Joseph's weights from
the documented formula (joseph.py) with plain Python loops, one ray and one step at a time; it shares no
code with the vectorized construction. Angles avoid exactly 45 degrees, where the steep/flat choice of a
ray is a tie that a one-ulp difference in cos/sin could break either way.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..operators.tomography import FanBeamRadon, FanToParallel, ProjectorMethod, Radon
from .market import register


def np_rays(geometry) -> list[tuple[float, float, float, float]]:
    """(o_x, o_y, d_x, d_y) for every ray, view-major, from the geometry's documented definition."""
    rays = []
    for theta in geometry.angles_rad:
        e_s = np.array([math.cos(theta), math.sin(theta)])
        e_r = np.array([-math.sin(theta), math.cos(theta)])
        for k in range(geometry.n_detector):
            s = (k - (geometry.n_detector - 1) / 2) * geometry.detector_spacing
            if hasattr(geometry, "source_distance"):
                source = -geometry.source_distance * e_r
                target = geometry.detector_distance * e_r + s * e_s
                d = (target - source) / np.linalg.norm(target - source)
                rays.append((source[0], source[1], d[0], d[1]))
            else:
                rays.append((s * e_s[0], s * e_s[1], e_r[0], e_r[1]))
    return rays


def np_joseph_matrix(geometry, H: int, W: int) -> np.ndarray:
    """The dense Joseph matrix, written from the formula in joseph.py's docstring."""
    p = geometry.pixel_size
    c_x, c_y = (W - 1) / 2, (H - 1) / 2
    rays = np_rays(geometry)
    A = np.zeros((len(rays), H * W))
    for i, (o_x, o_y, d_x, d_y) in enumerate(rays):
        if abs(d_y) >= abs(d_x):
            for r in range(H):
                x = o_x + ((c_y - r) * p - o_y) * d_x / d_y
                u = c_x + x / p
                c0 = math.floor(u)
                f, w = u - c0, p / abs(d_y)
                for c, weight in ((c0, (1 - f) * w), (c0 + 1, f * w)):
                    if 0 <= c < W:
                        A[i, r * W + c] += weight
        else:
            for c in range(W):
                y = o_y + ((c - c_x) * p - o_x) * d_y / d_x
                v = c_y - y / p
                r0 = math.floor(v)
                g, w = v - r0, p / abs(d_x)
                for r, weight in ((r0, (1 - g) * w), (r0 + 1, g * w)):
                    if 0 <= r < H:
                        A[i, r * W + c] += weight
    return A


def np_project(op, x: np.ndarray) -> np.ndarray:
    """Apply the reference matrix slice by slice: (N, C, [D,] H, W) -> (N, C, V, [D,] K)."""
    H, W = op.in_shape[-2:]
    A = np_joseph_matrix(op.geometry, H, W)
    V, K = op.geometry.n_views, op.geometry.n_detector
    if len(op.in_shape) == 3:
        return np.einsum("mp,ncp->ncm", A, x.reshape(*x.shape[:2], H * W)).reshape(x.shape[0], x.shape[1], V, K)
    n, c, d = x.shape[:3]
    y = np.einsum("mp,ncdp->ncdm", A, x.reshape(n, c, d, H * W)).reshape(n, c, d, V, K)
    return y.transpose(0, 1, 3, 2, 4)


_ANGLES = [0.0, 17.0, 63.5, 90.0, 151.0]


@register("radon", reference=np_project)
def _(dtype, g):
    return Radon((2, 9, 7), angles_deg=_ANGLES, n_detector=11, dtype=dtype)


@register("radon-full-range", reference=np_project)
def _(dtype, g):
    return Radon.full_range((1, 8, 8), 6, dtype=dtype)


@register("radon-radians-spacing", reference=np_project)
def _(dtype, g):
    angles = torch.rand(5, generator=g, dtype=torch.float64) * 2 * math.pi
    return Radon((1, 7, 8), angles_rad=angles, n_detector=9, detector_spacing=1.3, pixel_size=0.9, dtype=dtype)


@register("radon-volume", reference=np_project)
def _(dtype, g):
    return Radon((2, 3, 8, 7), angles_deg=_ANGLES, n_detector=10, dtype=dtype)


@register("radon-tilt-series", reference=np_project)
def _(dtype, g):
    # limited angle: 5 tilts over [-60, 60] degrees, ends included; fine detector
    return Radon.tilt_series((1, 8, 9), 5, 60.0, n_detector=13, detector_spacing=0.75, dtype=dtype)


@register("radon-tilt-series-volume", reference=np_project)
def _(dtype, g):
    return Radon.tilt_series((1, 4, 7, 7), 4, 50.0, dtype=dtype)


@register("fan-beam", reference=np_project)
def _(dtype, g):
    return FanBeamRadon(
        (1, 9, 7), angles_deg=[0.0, 50.0, 100.0, 200.0, 310.0], source_distance=12.0, detector_distance=6.0, dtype=dtype
    )


@register("fan-beam-volume", reference=np_project)
def _(dtype, g):
    return FanBeamRadon.full_range(
        (2, 2, 8, 8), 5, source_distance=9.0, detector_distance=0.0, n_detector=12, detector_spacing=0.8, dtype=dtype
    )


@register("radon-sparse", reference=np_project)
def _(dtype, g):
    # the stored-matrix path (the entries above apply the matrix-free path: AUTO starts without the matrix)
    return Radon((2, 9, 7), angles_deg=_ANGLES, n_detector=11, method=ProjectorMethod.SPARSE, dtype=dtype)


@register("fan-beam-volume-sparse", reference=np_project)
def _(dtype, g):
    return FanBeamRadon.full_range(
        (1, 2, 8, 7), 6, source_distance=9.0, detector_distance=2.0, method=ProjectorMethod.SPARSE, dtype=dtype
    )


@register("radon-matrix-free-volume", reference=np_project)
def _(dtype, g):
    return Radon.tilt_series((2, 3, 7, 8), 6, 55.0, detector_spacing=0.8, method=ProjectorMethod.MATRIX_FREE,
                             dtype=dtype)  # fmt: skip


@register("fan-to-parallel-volume")
def _(dtype, g):
    fan = FanBeamRadon.full_range((1, 2, 6, 6), 12, source_distance=9.0, detector_distance=3.0, dtype=dtype)
    return FanToParallel(fan)

