"""Market examples for the discrete gradient, with an independent numpy reference."""

from __future__ import annotations

import numpy as np

from ..operators.finite_difference import Gradient
from .market import register


def np_gradient(op, x: np.ndarray) -> np.ndarray:
    """(N, *s) -> (N, k, *s): np.diff along each axis, a zero appended at the far end (Neumann)."""
    parts = []
    for a in op.axes:
        axis = a + 1  # after the batch axis
        d = np.diff(x, axis=axis)
        pad = [(0, 0)] * x.ndim
        pad[axis] = (0, 1)
        parts.append(np.pad(d, pad))
    return np.stack(parts, axis=1)


@register("gradient-1d", reference=np_gradient)
def _(dtype, g):
    return Gradient((9,), axes=(-1,), dtype=dtype)


@register("gradient-2d", reference=np_gradient)
def _(dtype, g):
    return Gradient((2, 5, 6), dtype=dtype)


@register("gradient-3d-thin-axis", reference=np_gradient)
def _(dtype, g):
    # a volume with a singleton slice axis: its component is identically zero
    return Gradient((1, 4, 1, 5), axes=(1, 2, 3), dtype=dtype)


@register("gradient-reordered-axes", reference=np_gradient)
def _(dtype, g):
    return Gradient((3, 4, 5), axes=(-1, 0), dtype=dtype)
