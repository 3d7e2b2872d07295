"""The symmetries of `Radon` and `FanBeamRadon`, read off the geometry (see linops/symmetry.py).

The pixel grid is centred (x = (col - (W - 1) / 2) p, y = ((H - 1) / 2 - row) p) and so are the detector
bins (s_k = -s_{N-1-k}), so three flips of the image map pixel centres to pixel centres and rays to rays:

    left-right   x -> -x    (col -> W - 1 - col)
    up-down      y -> -y    (row -> H - 1 - row)
    half-turn    (x, y) -> (-x, -y)   (both), the product of the other two

Each maps the ray (theta, s) of the flipped image to a ray of the original (A P_in x)[theta, s] =
(A x)[theta', s'], where (with bin k -> N - 1 - k for s -> -s):

    parallel beam (line x cos theta + y sin theta = s; the same line as (theta + pi, -s)):
        left-right   (-theta, -s)  or  (pi - theta, s)
        up-down      (-theta,  s)  or  (pi - theta, -s)
        half-turn    ( theta, -s)  or  (theta + pi, s)
    fan beam (source S = -D_so e_r, bin P_k = D_od e_r + s_k e_s; no such line identity):
        left-right   (-theta, -s)        (M S(theta) = S(-theta), M P_k(theta) = P_{N-1-k}(-theta))
        up-down      (pi - theta, -s)
        half-turn    (theta + pi, s)

A flip is declared when every view's partner angle (mod 2 pi) is in the angle set to within
`ANGLE_TOLERANCE` and the resulting ray map is an involution. So a tilt series symmetric about 0 has all
three (the group of order 4), a parallel beam has the half-turn whatever its angles, a full-turn fan with
an even number of uniform views has all three, and a fan over an asymmetric arc has none. Joseph's
weights map exactly (its sample positions and interpolation weights are mirrored: u -> W - 1 - u gives
f -> 1 - f on the mirrored pixel pair), up to the rounding of the angles and positions (about 1e-15).
"""

from __future__ import annotations

import math

import torch

from ...rules import symmetry_rules
from ...symmetry import Symmetry
from .geometry import FanBeamGeometry, ParallelBeamGeometry
from .projector import JosephProjector

#: two views are partners when their angles agree to this many radians (mod 2 pi)
ANGLE_TOLERANCE = 1e-12

# (name, image axes flipped, partner rules (angle map, detector reversed)) per beam type
_PARALLEL = (
    ("left-right flip", (-1,), ((lambda t: -t, True), (lambda t: math.pi - t, False))),
    ("up-down flip", (-2,), ((lambda t: -t, False), (lambda t: math.pi - t, True))),
    ("half-turn", (-2, -1), ((lambda t: t, True), (lambda t: t + math.pi, False))),
)
_FAN = (
    ("left-right flip", (-1,), ((lambda t: -t, True),)),
    ("up-down flip", (-2,), ((lambda t: math.pi - t, True),)),
    ("half-turn", (-2, -1), ((lambda t: t + math.pi, False),)),
)


def _partner_views(angles: tuple[float, ...], rules) -> tuple[list[int], list[bool]] | None:
    """For each view i the view j and detector reversal of its partner (the first rule that finds one), or None."""
    theta = torch.tensor(angles, dtype=torch.float64)
    views, reversed_ = [], []
    for t in angles:
        for angle_map, reverse in rules:
            gap = torch.remainder(theta - angle_map(t) + math.pi, 2 * math.pi) - math.pi
            j = int(gap.abs().argmin())
            if float(gap[j].abs()) <= ANGLE_TOLERANCE:
                views.append(j)
                reversed_.append(reverse)
                break
        else:
            return None
    return views, reversed_


def _ray_permutation(op: JosephProjector, views: list[int], reverse: list[bool]) -> torch.Tensor:
    """perm of the flattened sinogram with (P y)[c, v, (d,) k] = y[c, views[v], (d,) k or N - 1 - k]."""
    index = torch.arange(math.prod(op.out_shape)).reshape(op.out_shape)
    index = index[:, torch.tensor(views)]
    flipped = index.flip(-1)
    mask = torch.tensor(reverse).reshape(1, -1, *([1] * (index.ndim - 2)))
    return torch.where(mask, flipped, index).reshape(-1)


@symmetry_rules.register(JosephProjector)
def _joseph_symmetries(op: JosephProjector) -> tuple[Symmetry, ...]:
    """The flips of the image that the geometry maps to permutations of the rays (module docstring)."""
    g = op.geometry
    if isinstance(g, ParallelBeamGeometry):
        candidates = _PARALLEL
    elif isinstance(g, FanBeamGeometry):
        candidates = _FAN
    else:
        return ()
    pixels = torch.arange(math.prod(op.in_shape)).reshape(op.in_shape)
    found = []
    for name, axes, rules in candidates:
        partners = _partner_views(g.angles_rad, rules)
        if partners is None:
            continue
        out_perm = _ray_permutation(op, *partners)
        if not torch.equal(out_perm[out_perm], torch.arange(out_perm.numel())):
            continue  # repeated views can pair up inconsistently: not an involution of the rays
        found.append(Symmetry(name, pixels.flip(axes).reshape(-1), out_perm))
    return tuple(found)
