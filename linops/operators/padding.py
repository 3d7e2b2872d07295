"""Padding and cropping of trailing axes, with every common boundary extension and exact adjoints."""

from __future__ import annotations

import enum
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..base import LinearOperator, as_shape
from ..rules import adjoint_rules, coisometry_rules, composition_rules, isometry_rules
from .identity import Identity


class Boundary(str, enum.Enum):
    """How a signal is extended beyond its support (index i outside 0..n-1 maps to):

    ZERO       0
    REFLECT    mirror about the edge sample, not repeating it:  d c b | a b c d | c b a
    SYMMETRIC  mirror about the edge, repeating it:              c b a | a b c d | d c b
    REPLICATE  the edge sample:                                  a a a | a b c d | d d d
    CIRCULAR   periodic wrap:                                    b c d | a b c d | a b c
    """

    ZERO = "zero"
    REFLECT = "reflect"
    SYMMETRIC = "symmetric"
    REPLICATE = "replicate"
    CIRCULAR = "circular"

    @classmethod
    def coerce(cls, value) -> Boundary:
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(b.value for b in cls)
            raise ValueError(f"unknown boundary {value!r}; choose one of {names}") from None


def source_index(n: int, before: int, after: int, boundary: Boundary) -> torch.Tensor:
    """For each position of the padded axis (length before + n + after), the index it copies from."""
    i = torch.arange(-before, n + after)
    if boundary is Boundary.REFLECT:
        if n == 1:
            return torch.zeros_like(i)
        j = i.remainder(2 * n - 2)
        return torch.where(j >= n, 2 * n - 2 - j, j)
    if boundary is Boundary.SYMMETRIC:
        j = i.remainder(2 * n)
        return torch.where(j >= n, 2 * n - 1 - j, j)
    if boundary is Boundary.REPLICATE:
        return i.clamp(0, n - 1)
    if boundary is Boundary.CIRCULAR:
        return i.remainder(n)
    raise ValueError(f"{boundary} has no source index")


def _as_widths(widths, ndim: int) -> tuple[tuple[int, int], ...]:
    """Normalise widths to ((before, after), ...) for the last len(widths) axes."""
    if isinstance(widths, int):
        widths = (widths,)
    out = tuple((int(w), int(w)) if isinstance(w, int) else (int(w[0]), int(w[1])) for w in widths)
    if len(out) > ndim or any(b < 0 or a < 0 for b, a in out):
        raise ValueError(f"pad widths must be non-negative pairs for at most {ndim} trailing axes, got {widths}")
    return out


class Pad(LinearOperator):
    """P x = x extended along its trailing axes by (before, after) samples with the given boundary.

    `widths` lists (before, after) (or one int for both) for the last len(widths) axes of `in_shape`.
    The adjoint P^H sums every padded sample back into the sample it was copied from (for ZERO it
    is a crop), so <P x, y> = <x, P^H y> holds exactly for every boundary.
    """

    def __init__(
        self,
        in_shape,
        widths: int | Sequence[int | tuple[int, int]],
        boundary: Boundary | str = Boundary.ZERO,
        *,
        dtype: torch.dtype = torch.float32,
        device="cpu",
    ):
        in_shape = as_shape(in_shape, "in_shape")
        self.widths = _as_widths(widths, len(in_shape))
        self.boundary = Boundary.coerce(boundary)
        k = len(in_shape) - len(self.widths)
        out_shape = in_shape[:k] + tuple(n + b + a for n, (b, a) in zip(in_shape[k:], self.widths))
        super().__init__(in_shape, out_shape, dtype=dtype, device=device)
        if self.boundary is Boundary.ZERO:
            self.indices = ()
        else:
            self.indices = tuple(
                source_index(n, b, a, self.boundary).to(device) for n, (b, a) in zip(in_shape[k:], self.widths)
            )

    def _axes(self):
        return range(-len(self.widths), 0)

    def _native_mode(self) -> str | None:
        """The torch.nn.functional.pad mode computing this padding, where torch has one."""
        k = len(self.widths)
        sizes = self.in_shape[-k:]
        if self.boundary is Boundary.REFLECT and all(b < n and a < n for n, (b, a) in zip(sizes, self.widths)):
            return "reflect"
        if self.boundary is Boundary.REPLICATE:
            return "replicate"
        if self.boundary is Boundary.CIRCULAR and all(b <= n and a <= n for n, (b, a) in zip(sizes, self.widths)):
            return "circular"
        return None

    def _apply(self, x):
        flat = [w for pair in reversed(self.widths) for w in pair]
        if self.boundary is Boundary.ZERO:
            return F.pad(x, flat)
        mode = self._native_mode() if len(self.widths) <= 3 else None
        if mode is not None:
            # torch's native kernels want (N, C, *spatial) with 1 to 3 padded spatial axes
            k = len(self.widths)
            lead = x.shape[: x.ndim - k]
            out = F.pad(x.reshape(-1, 1, *x.shape[x.ndim - k :]), flat, mode=mode)
            return out.reshape(*lead, *out.shape[2:])
        for axis, idx in zip(self._axes(), self.indices):
            x = x.index_select(axis, idx)
        return x

    def _adjoint(self, y):
        if self.boundary is Boundary.ZERO:
            return _crop(y, self.widths)
        for axis, idx, n in zip(self._axes(), self.indices, self.in_shape[-len(self.widths) :]):
            shape = list(y.shape)
            shape[axis] = n
            y = y.new_zeros(shape).index_add_(axis, idx, y)
        return y

    def __repr__(self):
        return f"Pad({self.in_shape} -> {self.out_shape}, {self.boundary.value})"


def _crop(y: torch.Tensor, widths) -> torch.Tensor:
    index = [slice(None)] * (y.ndim - len(widths))
    index += [slice(b, y.shape[y.ndim - len(widths) + i] - a) for i, (b, a) in enumerate(widths)]
    return y[tuple(index)]


class Crop(LinearOperator):
    """C x = x with (before, after) samples removed from its trailing axes; C^H pads with zeros."""

    def __init__(self, in_shape, widths, *, dtype: torch.dtype = torch.float32, device="cpu"):
        in_shape = as_shape(in_shape, "in_shape")
        self.widths = _as_widths(widths, len(in_shape))
        k = len(in_shape) - len(self.widths)
        out_shape = in_shape[:k] + tuple(n - b - a for n, (b, a) in zip(in_shape[k:], self.widths))
        if any(n <= 0 for n in out_shape):
            raise ValueError(f"Crop widths {self.widths} remove all of in_shape {in_shape}")
        super().__init__(in_shape, out_shape, dtype=dtype, device=device)

    def _apply(self, x):
        return _crop(x, self.widths)

    def _adjoint(self, y):
        return F.pad(y, [w for pair in reversed(self.widths) for w in pair])

    def __repr__(self):
        return f"Crop({self.in_shape} -> {self.out_shape})"


@adjoint_rules.register(Crop)
def _adjoint_of_crop(c):
    """A crop's adjoint is zero padding by the same widths."""
    return Pad(c.out_shape, c.widths, Boundary.ZERO, dtype=c.dtype, device=c.device)


@adjoint_rules.register(Pad)
def _adjoint_of_zero_pad(p):
    """Zero padding's adjoint is the crop by the same widths (other boundaries fold back instead)."""
    if p.boundary is not Boundary.ZERO:
        return None
    return Crop(p.out_shape, p.widths, dtype=p.dtype, device=p.device)


@composition_rules.register(Crop, Pad)
def _crop_after_pad(c, p):
    """Cropping what was padded, with the same widths, gives the input back: C P = I."""
    if c.widths != p.widths or c.in_shape != p.out_shape:
        return None
    return Identity(p.in_shape, dtype=p.dtype, device=p.device)


# ----------------------------------------------------------------------------------------------
# spectral facts (linops.rules tables)


@isometry_rules.register(Pad)
def _zero_pad_is_isometry(op) -> bool:
    """Zero padding: P^H P = crop(pad(x)) = x; other boundaries fold samples back (P^H P != I)."""
    return op.boundary is Boundary.ZERO


@coisometry_rules.register(Crop)
def _crop_is_coisometry(op) -> bool:
    """C C^H = crop(zero-pad(y)) = y."""
    return True
