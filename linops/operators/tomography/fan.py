"""The fan-beam transform with a flat detector, of images and of stacks of slices."""

from __future__ import annotations

import math

import torch

from .geometry import FanBeamGeometry, angles_in_radians, full_range_angles_deg, positive_float
from .projector import JosephProjector, ProjectorMethod, check_in_shape


class FanBeamRadon(JosephProjector):
    """Fan-beam projection onto a flat detector, discretized by Joseph's method (exact weights in joseph.py).

    At view angle theta the source sits at S = -D_so e_r and the detector line at distance D_od beyond the
    centre of rotation, with e_s = (cos theta, sin theta) along the detector and e_r = (-sin theta, cos theta)
    towards it (axes as for `Radon`: x right, y up, origin at the image centre). Bin k is centred at
    P_k = D_od e_r + s_k e_s, s_k = (k - (n_detector - 1) / 2) * detector_spacing, and

        (A x)[theta, k] ≈ ∫ x(S + t (P_k - S) / |P_k - S|) dt   over the whole line,

    so a point q projects to s = D_sd <q, e_s> / (D_so + <q, e_r>), D_sd = D_so + D_od (magnification
    D_sd / D_so at the centre). As D_so -> infinity with D_od = 0 this tends to `Radon` with the same angles.

    Shapes as `Radon`: (C, H, W) -> (C, n_angles, n_detector); (C, D, H, W) -> (C, n_angles, D, n_detector)
    with one fan per slice (a stack of 2-D fans, not a cone beam). The source circle must enclose the image.
    `n_detector` defaults to the bins that cover the magnified inscribed disc. The adjoint is the exact
    transpose. `method` and memory as `Radon`: matrix-free by default until building the matrix pays off,
    which takes about 2 nnz (itemsize + 4) bytes, nnz ≈ 2 n_angles n_detector max(H, W).
    """

    def __init__(
        self,
        in_shape,
        *,
        source_distance: float,
        detector_distance: float,
        angles_deg=None,
        angles_rad=None,
        n_detector: int | None = None,
        detector_spacing: float = 1.0,
        pixel_size: float = 1.0,
        method: ProjectorMethod = ProjectorMethod.AUTO,
        dtype: torch.dtype = torch.float32,
        device="cpu",
    ):
        in_shape = check_in_shape(in_shape, "FanBeamRadon")
        angles = angles_in_radians(angles_deg, angles_rad, owner="FanBeamRadon")
        source_distance = positive_float(source_distance, "source_distance", "FanBeamRadon")
        detector_distance = positive_float(detector_distance, "detector_distance", "FanBeamRadon", allow_zero=True)
        detector_spacing = positive_float(detector_spacing, "detector_spacing", "FanBeamRadon")
        pixel_size = positive_float(pixel_size, "pixel_size", "FanBeamRadon")
        if n_detector is None:
            n_detector = _covering_detector_count(
                in_shape[-2:], pixel_size, detector_spacing, source_distance, detector_distance
            )
        geometry = FanBeamGeometry(angles, n_detector, source_distance, detector_distance, detector_spacing, pixel_size)
        geometry.check_image(in_shape[-2:])
        super().__init__(in_shape, geometry, method=method, dtype=dtype, device=device)

    @classmethod
    def full_range(cls, in_shape, n_angles: int, **kwargs) -> FanBeamRadon:
        """n_angles views uniformly over [0, 360) degrees (a fan needs the full turn for complete data)."""
        return cls(in_shape, angles_deg=2 * full_range_angles_deg(n_angles), **kwargs)


def _covering_detector_count(image_shape, pixel_size, spacing, source_distance, detector_distance) -> int:
    """Bins covering the fan tangent to the inscribed disc of radius R: |s| <= D_sd R / sqrt(D_so^2 - R^2)."""
    radius = max(image_shape) * pixel_size / 2
    if source_distance <= radius:  # rejected by FanBeamGeometry.check_image
        return 1
    half_width = (source_distance + detector_distance) * radius / math.sqrt(source_distance**2 - radius**2)
    return max(1, math.ceil(2 * half_width / spacing - 1e-9))
