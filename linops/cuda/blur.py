"""CuPy kernels for `Blur`, `SeparableBlur` and `CircularBlur` (kernels/blur.cu, cuFFT through cupy.fft).

Every plane (the trailing H x W of a sample) is blurred on its own; the operators' conventions are in
linops/operators/blur.py. The kernels are registered in the kernel table for the three types on "cuda" (forward,
adjoint, and the normal residual with the subtraction fused into the forward pass). A plan is chosen once per
operator by its type's builder (`PLAN_BUILDERS`) and remembered on it (linops.memo, key `BlurPlanKey`):

    DirectPlan     y = V(k) P x summed directly, kh kw taps per sample (kernel conv_forward / conv_adjoint);
                   Blur with kh kw <= DIRECT_MAX_TAPS, and CircularBlur whose periodic kernel fits a small box
    SeparablePlan  two DirectPlans, a (kh, 1) pass with the row padding then a (1, kw) one with the column padding
    FFTPlan        y = crop(irfft2(rfft2(embed(P x)) k̂)): boundary extension and zero embedding in one pass
                   (pad_embed), cuFFT, and the crop (fold); the adjoint embeds y, multiplies by conj(k̂) and
                   folds the padding back (fold with the inverse padding tables); Blur with larger kernels
    CircularFFTPlan  irfft2(rfft2(x) k̂): CircularBlur whose kernel fills the image

A padding is described per axis by `AxisTables`: the sample each padded position copies (src, -1 for a zero)
and, inverted, the padded positions that copy each sample (CSR), so every adjoint is a gather over exactly the
(weight, sample) pairs of its forward: no atomics, and the direct adjoint is the exact transpose.

DIRECT_MAX_TAPS is a first guess (a direct tap costs a fused multiply-add on cached data; an FFT pair several
passes over a complex buffer) until a GPU run calibrates it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..backends import kernels
from ..memo import MemoKey, remember
from ..operators.blur import Blur, CircularBlur, SeparableBlur, good_fft_size
from ..operators.padding import Boundary, source_index
from . import runtime
from .dispatch import cupy_kernel
from .residual import subtracting_forward

DIRECT_MAX_TAPS = 121


@dataclass(frozen=True)
class AxisTables:
    """One axis of a padding: `src` (int32, per padded position, the sample copied or -1) and its inverse as
    CSR (`ptr`, `idx`): padded positions idx[ptr[s]:ptr[s + 1]] copy sample s."""

    src: torch.Tensor
    ptr: torch.Tensor
    idx: torch.Tensor


def axis_tables(src: torch.Tensor, n: int) -> AxisTables:
    """The tables of a padding whose padded position m copies sample src[m] (-1: zero) of an axis of n samples."""
    src = src.to(torch.int64)
    positions = torch.nonzero(src >= 0).squeeze(1)
    sources = src[positions]
    order = torch.argsort(sources, stable=True)
    counts = torch.bincount(sources, minlength=n)
    ptr = torch.zeros(n + 1, dtype=torch.int64, device=src.device)
    torch.cumsum(counts, 0, out=ptr[1:])
    as_int = lambda t: t.to(torch.int32).contiguous()
    return AxisTables(as_int(src), as_int(ptr), as_int(positions[order]))


def padding_source(n: int, before: int, after: int, boundary, length: int | None = None, device="cpu"):
    """src of an axis of n samples padded by (before, after) with `boundary` (a `Boundary`), then extended with
    zeros (-1) to `length` positions."""
    if Boundary.coerce(boundary) is Boundary.ZERO:
        src = torch.arange(-before, n + after)
        src = torch.where((src >= 0) & (src < n), src, -1)
    else:
        src = source_index(n, before, after, Boundary.coerce(boundary))
    if length is not None:
        src = torch.cat([src, torch.full((length - src.numel(),), -1, dtype=src.dtype)])
    return src.to(device)


def _kernel_widths(taps: int) -> tuple[int, int]:
    """(before, after) padding of a kernel axis with `taps` entries centred at taps // 2."""
    return taps - 1 - taps // 2, taps // 2


def _planes(t: torch.Tensor, H: int, W: int) -> torch.Tensor:
    return t.contiguous().reshape(-1, H, W)


@dataclass(frozen=True)
class DirectPlan:
    """Direct summation with `kernel` (n_kernels, kh, kw); plane p uses kernel p % n_kernels."""

    kernel: torch.Tensor
    rows: AxisTables
    cols: AxisTables

    def forward(self, x: torch.Tensor, subtract: torch.Tensor | None = None) -> torch.Tensor:
        """V(k) P x for planes x (P, H, W) (minus `subtract` in the same pass)."""
        _, H, W = x.shape
        n_kernels, kh, kw = self.kernel.shape
        y = torch.empty_like(x)
        with runtime.on_torch_stream(x.device):
            kernel = runtime.function("blur", "conv_forward", x.dtype, x.device)
            for part in runtime.batch_chunks(x.shape[0], H * W):
                s = y[part] if subtract is None else subtract[part]
                runtime.launch(
                    kernel, (part.stop - part.start) * H * W, x[part], y[part], s, subtract is not None,
                    self._kernel_for(part), n_kernels, kh, kw, self.rows.src, self.cols.src, H, W,
                )  # fmt: skip
        return y

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """P^T V(k)^T y for planes y (P, H, W)."""
        _, H, W = y.shape
        n_kernels, kh, kw = self.kernel.shape
        x = torch.empty_like(y)
        with runtime.on_torch_stream(y.device):
            kernel = runtime.function("blur", "conv_adjoint", y.dtype, y.device)
            for part in runtime.batch_chunks(y.shape[0], H * W):
                runtime.launch(
                    kernel, (part.stop - part.start) * H * W, y[part], x[part], self._kernel_for(part), n_kernels,
                    kh, kw, self.rows.ptr, self.rows.idx, self.cols.ptr, self.cols.idx, H, W,
                )  # fmt: skip
        return x

    def _kernel_for(self, part: slice) -> torch.Tensor:
        """The kernels rotated so that the first plane of `part` uses kernel part.start % n_kernels."""
        shift = part.start % self.kernel.shape[0]
        return self.kernel if shift == 0 else torch.roll(self.kernel, -shift, 0).contiguous()


@dataclass(frozen=True)
class SeparablePlan:
    """A (kh, 1) DirectPlan over the rows, then a (1, kw) one over the columns."""

    first: DirectPlan
    second: DirectPlan

    def forward(self, x, subtract=None):
        return self.second.forward(self.first.forward(x), subtract)

    def adjoint(self, y):
        return self.first.adjoint(self.second.adjoint(y))


@dataclass(frozen=True)
class FFTPlan:
    """Padded blur by cuFFT on an Lh x Lw buffer (`transfer` = rfft2 of the kernel there, (n_kernels, Lh, Lw/2+1))."""

    transfer: torch.Tensor
    transfer_conj: torch.Tensor
    embed_rows: torch.Tensor  # forward: the padding, then zeros to Lh
    embed_cols: torch.Tensor
    shift_rows: torch.Tensor  # adjoint: y placed at offset (kh - 1, kw - 1), zeros elsewhere
    shift_cols: torch.Tensor
    crop_rows: AxisTables  # forward: output i is buffer position i + kh - 1
    crop_cols: AxisTables
    fold_rows: AxisTables  # adjoint: the padding's inverse
    fold_cols: AxisTables

    def forward(self, x, subtract=None):
        y = self._filter(x, self.embed_rows, self.embed_cols, self.transfer, self.crop_rows, self.crop_cols)
        return y if subtract is None else y - subtract

    def adjoint(self, y):
        return self._filter(y, self.shift_rows, self.shift_cols, self.transfer_conj, self.fold_rows, self.fold_cols)

    def _filter(self, planes, embed_rows, embed_cols, transfer, fold_rows, fold_cols):
        cp = runtime.cupy_module()
        n, H, W = planes.shape
        Lh, Lw = embed_rows.numel(), embed_cols.numel()
        n_kernels = transfer.shape[0]
        out = torch.empty_like(planes)
        with runtime.on_torch_stream(planes.device):
            buffer = torch.empty((n, Lh, Lw), dtype=planes.dtype, device=planes.device)
            embed = runtime.function("blur", "pad_embed", planes.dtype, planes.device)
            runtime.launch(embed, n * Lh * Lw, planes, buffer, embed_rows, embed_cols, H, W, Lh, Lw)
            spectrum = cp.fft.rfft2(runtime.as_cupy(buffer))
            spectrum = spectrum.reshape(n // n_kernels, n_kernels, *spectrum.shape[1:])
            spectrum *= runtime.as_cupy(transfer)
            filtered = cp.fft.irfft2(spectrum.reshape(n, *spectrum.shape[2:]), s=(Lh, Lw))
            fold = runtime.function("blur", "fold", planes.dtype, planes.device)
            runtime.launch(
                fold, n * H * W, filtered, out, fold_rows.ptr, fold_rows.idx, fold_cols.ptr,
                fold_cols.idx, Lh, Lw, H, W,
            )  # fmt: skip
        return out


@dataclass(frozen=True)
class CircularFFTPlan:
    """Circular blur by cuFFT: irfft2(rfft2(x) k̂) with the operator's own transfer function."""

    transfer: torch.Tensor
    transfer_conj: torch.Tensor
    in_shape: tuple[int, ...]

    def forward(self, x, subtract=None):
        y = self._filter(x, self.transfer)
        return y if subtract is None else y - subtract

    def adjoint(self, y):
        return self._filter(y, self.transfer_conj)

    def _filter(self, planes, transfer):
        cp = runtime.cupy_module()
        H, W = planes.shape[-2:]
        with runtime.on_torch_stream(planes.device):
            images = runtime.as_cupy(planes.reshape(-1, *self.in_shape))
            spectrum = cp.fft.rfft2(images)
            spectrum *= runtime.as_cupy(transfer)
            return torch.from_dlpack(cp.fft.irfft2(spectrum, s=(H, W))).reshape(planes.shape)


# ----------------------------------------------------------------------------------------------
# plans of the operators


def _padded_direct_plan(kernel: torch.Tensor, H: int, W: int, boundary) -> DirectPlan:
    kh, kw = kernel.shape[-2:]
    device = kernel.device
    rows = axis_tables(padding_source(H, *_kernel_widths(kh), boundary, device=device), H)
    cols = axis_tables(padding_source(W, *_kernel_widths(kw), boundary, device=device), W)
    return DirectPlan(kernel.reshape(-1, kh, kw).contiguous(), rows, cols)


def _padded_fft_plan(op) -> FFTPlan:
    H, W = op.in_shape[-2:]
    kh, kw = op.kernel.shape[-2:]
    device = op.kernel.device
    Lh, Lw = good_fft_size(H + kh - 1), good_fft_size(W + kw - 1)
    transfer = torch.fft.rfft2(op.kernel.reshape(-1, kh, kw), s=(Lh, Lw))
    (rb, ra), (cb, ca) = _kernel_widths(kh), _kernel_widths(kw)

    def shift(n, taps, length):
        src = torch.arange(length) - (taps - 1)
        return torch.where((src >= 0) & (src < n), src, -1).to(torch.int32).to(device)

    def crop(n, taps):
        return AxisTables(
            torch.empty(0, dtype=torch.int32, device=device),
            torch.arange(n + 1, dtype=torch.int32, device=device),
            torch.arange(taps - 1, n + taps - 1, dtype=torch.int32, device=device),
        )

    return FFTPlan(
        transfer=transfer.contiguous(),
        transfer_conj=transfer.conj().resolve_conj().contiguous(),
        embed_rows=padding_source(H, rb, ra, op.boundary, Lh, device).to(torch.int32),
        embed_cols=padding_source(W, cb, ca, op.boundary, Lw, device).to(torch.int32),
        shift_rows=shift(H, kh, Lh),
        shift_cols=shift(W, kw, Lw),
        crop_rows=crop(H, kh),
        crop_cols=crop(W, kw),
        fold_rows=axis_tables(padding_source(H, rb, ra, op.boundary, device=device), H),
        fold_cols=axis_tables(padding_source(W, cb, ca, op.boundary, device=device), W),
    )


def blur_plan(op):
    """The plan of a `Blur`: direct for kh kw <= DIRECT_MAX_TAPS, else FFT (whatever op.method says for CPUs)."""
    kh, kw = op.kernel.shape[-2:]
    if kh * kw <= DIRECT_MAX_TAPS:
        return _padded_direct_plan(op.kernel, *op.in_shape[-2:], op.boundary)
    return _padded_fft_plan(op)


def separable_plan(op) -> SeparablePlan:
    """The plan of a `SeparableBlur`: the row pass pads rows only, the column pass columns only."""
    H, W = op.in_shape[-2:]
    kh, kw = len(op.kernel_rows), len(op.kernel_cols)
    device = op.kernel_rows.device
    identity_rows = axis_tables(padding_source(H, 0, 0, Boundary.ZERO, device=device), H)
    identity_cols = axis_tables(padding_source(W, 0, 0, Boundary.ZERO, device=device), W)
    rows = axis_tables(padding_source(H, *_kernel_widths(kh), op.boundary, device=device), H)
    cols = axis_tables(padding_source(W, *_kernel_widths(kw), op.boundary, device=device), W)
    return SeparablePlan(
        DirectPlan(op.kernel_rows.reshape(1, kh, 1).contiguous(), rows, identity_cols),
        DirectPlan(op.kernel_cols.reshape(1, 1, kw).contiguous(), identity_rows, cols),
    )


def compact_support(kernel: torch.Tensor, threshold: float) -> tuple[int, int] | None:
    """Half-widths (R_r, R_c) of the smallest centred box holding every tap of a periodic kernel (centre at the
    origin, shape (..., H, W)) above `threshold` max |k| (per kernel); None when that box would wrap around."""
    H, W = kernel.shape[-2:]
    magnitude = torch.roll(kernel.abs(), (H // 2, W // 2), (-2, -1)).reshape(-1, H, W)
    above = (magnitude > threshold * magnitude.amax(dim=(-2, -1), keepdim=True)).any(dim=0)

    def half_width(hit: torch.Tensor, n: int) -> int | None:  # hit: (n,) with the origin at n // 2
        offsets = torch.nonzero(hit).squeeze(1) - n // 2
        R = int(offsets.abs().max()) if offsets.numel() else 0
        return R if 2 * R + 1 <= n else None

    R_r, R_c = half_width(above.any(dim=1), H), half_width(above.any(dim=0), W)
    return None if R_r is None or R_c is None else (R_r, R_c)


def circular_plan(op):
    """The plan of a `CircularBlur`: direct with the periodic kernel cut to its support box when that box has
    at most DIRECT_MAX_TAPS taps, else cuFFT with the operator's transfer function.

    The periodic kernel is the float64 inverse FFT of the stored transfer function; taps at most 8 eps max |k|
    (eps of the operator's dtype) are left out: they are the rounding noise of a transfer function stored in that
    precision (a few eps / 10 per tap for kernels given in space), not part of the blur."""
    H, W = op.in_shape[-2:]
    transfer = op.transfer
    lead = transfer.shape[:-2]
    per_channel = len(lead) == 1 and len(op.in_shape) >= 3 and lead[0] == op.in_shape[-3]
    if len(lead) == 0 or per_channel:
        kernel = torch.fft.irfft2(transfer.to(torch.complex128), s=(H, W))
        support = compact_support(kernel, 8 * torch.finfo(op.dtype).eps)
        if support is not None and (2 * support[0] + 1) * (2 * support[1] + 1) <= DIRECT_MAX_TAPS:
            R_r, R_c = support
            box = torch.roll(kernel, (R_r, R_c), (-2, -1))[..., : 2 * R_r + 1, : 2 * R_c + 1]
            return _padded_direct_plan(box.to(op.dtype), H, W, "circular")
    return CircularFFTPlan(transfer.contiguous(), transfer.conj().resolve_conj().contiguous(), op.in_shape)


#: the plan builder of each operator type (looked up along the operator's MRO)
PLAN_BUILDERS = {SeparableBlur: separable_plan, CircularBlur: circular_plan, Blur: blur_plan}


@dataclass(frozen=True)
class BlurPlanKey(MemoKey):
    """The CuPy plan of a blur operator (DirectPlan, SeparablePlan, FFTPlan or CircularFFTPlan)."""


def _build(op):
    build = next((PLAN_BUILDERS[cls] for cls in type(op).__mro__ if cls in PLAN_BUILDERS), None)
    if build is None:
        raise TypeError(f"no CuPy blur plan for {op!r}")
    return build(op)


def _plan(op):
    """The operator's plan, built on first use and remembered on it."""
    return remember(op, BlurPlanKey(), lambda: _build(op))


def forward(op, x: torch.Tensor, subtract: torch.Tensor | None = None) -> torch.Tensor:
    """A x (or A x - subtract) for a blur operator and x of shape (N, *op.in_shape) on a CUDA device."""
    H, W = op.in_shape[-2:]
    plan = _plan(op)
    planes = None if subtract is None else _planes(subtract, H, W)
    return plan.forward(_planes(x, H, W), planes).reshape(x.shape)


def adjoint(op, y: torch.Tensor) -> torch.Tensor:
    """A^T y for a blur operator and y of shape (N, *op.out_shape) on a CUDA device."""
    H, W = op.in_shape[-2:]
    return _plan(op).adjoint(_planes(y, H, W)).reshape(y.shape)


def plan_kind(op) -> str:
    """The name of the plan the CuPy path uses for `op` (built on first use and cached)."""
    return type(_plan(op)).__name__


KERNELS = {
    op_type: kernels.register(op_type, "cuda", cupy_kernel(forward, adjoint, subtracting_forward(forward, adjoint)))
    for op_type in PLAN_BUILDERS
}
