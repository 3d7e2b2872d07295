"""Tomography: parallel-beam and fan-beam projection of images and stacks of slices, and FBP.

Conventions (all operators): x = (col - (W - 1) / 2) p to the right, y = ((H - 1) / 2 - row) p upwards,
view angle theta counter-clockwise from +x, detector bin k centred at s_k = (k - (n_detector - 1) / 2) * spacing;
a parallel ray measures the line x cos theta + y sin theta = s_k. Sinograms are angle-major:

    Radon / FanBeamRadon:  (C, H, W) -> (C, n_angles, n_detector),  (C, D, H, W) -> (C, n_angles, D, n_detector)

The discretization is Joseph's method, applied matrix-free (numba kernels in linops/cpu) or as a stored sparse
matrix and its exact transpose, chosen by a cost model (`ProjectorMethod`); joseph.py documents the weights ray
by ray (the contract for matrix-free kernels).

    geometry.py   angles (degrees or radians, full range, tilt series), detector, rays
    joseph.py     the weight formula and the sparse-matrix construction
    projector.py  applying A to images and stacks (batches as columns), matrix-free or sparse, and the cost model
    parallel.py   Radon          fan.py   FanBeamRadon          fbp.py   fbp, FilterWindow
    rebin.py      FanToParallel: full-turn fan data as parallel data (so fbp inverts a fan beam too)
    symmetry.py   the image flips each geometry commutes with (for `linops.spectral.SymmetricGramEigh`)
"""

from . import symmetry  # noqa: F401  (registers the symmetries of Radon and FanBeamRadon)
from .fan import FanBeamRadon
from .fbp import FilterWindow, angle_weights, fbp, filter_sinogram
from .geometry import FanBeamGeometry, ParallelBeamGeometry, full_range_angles_deg, tilt_series_angles_deg
from .parallel import Radon
from .projector import JosephProjector, ProjectorMethod
from .rebin import FanToParallel

__all__ = [
    "FanBeamGeometry",
    "FanBeamRadon",
    "FanToParallel",
    "FilterWindow",
    "JosephProjector",
    "ProjectorMethod",
    "ParallelBeamGeometry",
    "Radon",
    "angle_weights",
    "fbp",
    "filter_sinogram",
    "full_range_angles_deg",
    "tilt_series_angles_deg",
]
