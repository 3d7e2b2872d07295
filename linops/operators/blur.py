"""Convolution operators: circular (FFT), padded with any boundary (direct or FFT), separable.

Conventions shared by all of them. Images have shape (..., H, W); a kernel k of shape (kh, kw)
has its centre at (kh // 2, kw // 2), and the blurred image is the true convolution

    y[i, j] = sum_{a, b} k[a, b] x_ext[i + kh//2 - a, j + kw//2 - b]

where x_ext extends x beyond its support by the boundary rule (periodic for `CircularBlur`).
A kernel of shape (C, kh, kw) blurs channel c (axis -3 of the image) with k[c].
"""

from __future__ import annotations

import enum
import functools
import math

import torch
import torch.nn.functional as F

from ..backends import kernels
from ..base import LinearOperator, as_shape, precision_of, require_finite
from ..kron import Kron
from ..rules import composition_rules, norm_rules, sum_rules, svd_rules
from .bases import Hartley2, PairRotation, reflect_frequencies
from .decomposition import SVD, identity_like
from .matrix import Matrix
from .padding import Boundary, Pad, source_index


def gaussian_kernel_1d(sigma: float, size: int | None = None, *, dtype=torch.float32) -> torch.Tensor:
    """g[a] ∝ exp(-(a - c)^2 / (2 sigma^2)), a = 0..size-1, c = size // 2, normalised to sum 1.

    `size` defaults to 2 ceil(3 sigma) + 1.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    size = 2 * math.ceil(3 * sigma) + 1 if size is None else int(size)
    a = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(a**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def gaussian_kernel(sigma: float | tuple[float, float], size=None, *, dtype=torch.float32) -> torch.Tensor:
    """The 2-D Gaussian kernel outer(g_rows, g_cols) (sigma may differ per axis)."""
    sy, sx = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
    hy, hx = (size, size) if size is None or isinstance(size, int) else size
    rows = gaussian_kernel_1d(sy, hy, dtype=torch.float64)
    cols = gaussian_kernel_1d(sx, hx, dtype=torch.float64)
    return torch.outer(rows, cols).to(dtype)


def good_fft_size(n: int) -> int:
    """The smallest even 5-smooth integer (only factors 2, 3, 5) that is at least n."""
    m = max(n, 2)
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1 and m % 2 == 0:
            return m
        m += 1


def _check_kernel(kernel, in_shape, name):
    if kernel.ndim not in (2, 3):
        raise ValueError(f"{name} kernel must have shape (kh, kw) or (C, kh, kw), got {tuple(kernel.shape)}")
    if kernel.numel() == 0:
        raise ValueError(f"{name} kernel must have at least one tap along each axis, got shape {tuple(kernel.shape)}")
    if kernel.ndim == 3 and (len(in_shape) < 3 or in_shape[-3] != kernel.shape[0]):
        raise ValueError(
            f"{name}: a per-channel kernel of shape {tuple(kernel.shape)} needs in_shape (..., "
            f"{kernel.shape[0]}, H, W), got {in_shape}"
        )
    if kernel.shape[-2] > in_shape[-2] or kernel.shape[-1] > in_shape[-1]:
        raise ValueError(f"{name}: kernel {tuple(kernel.shape[-2:])} is larger than the image {in_shape[-2:]}")


#: precisions that torch's CPU FFT does not support (and CUDA only for power-of-two sizes)
HALF_PRECISIONS = (torch.float16, torch.bfloat16)


def _as_kernel(kernel, dtype, name):
    """The kernel as a real floating tensor of finite entries (dtype `dtype`, else its own, else the
    default dtype for an integer kernel). A complex kernel is refused, not cast to its real part."""
    k = torch.as_tensor(kernel)
    if k.is_complex() or (dtype is not None and dtype.is_complex):
        raise TypeError(
            f"{name} kernel must be real: the blur is a real convolution, got {dtype if dtype is not None else k.dtype}"
        )
    if dtype is not None:
        k = k.to(dtype)
    elif not k.dtype.is_floating_point:
        k = k.to(torch.get_default_dtype())
    require_finite(k, f"{name} kernel")
    return k


# ----------------------------------------------------------------------------------------------
# circular convolution


class CircularBlur(LinearOperator):
    """Circular convolution y = k ⊛ x = F^{-1}(k̂ · F x), with adjoint F^{-1}(conj(k̂) · F y).

    `in_shape` is (..., H, W); k̂ = rfft2 of the kernel embedded in an H x W image with its centre
    at the origin. The transfer function k̂ is all the operator stores, so products and sums of
    circular blurs are circular blurs (see the rules below).
    """

    def __init__(self, kernel, in_shape, *, dtype: torch.dtype | None = None):
        k = _as_kernel(kernel, dtype, "CircularBlur")
        if k.dtype in HALF_PRECISIONS:
            raise TypeError(
                f"CircularBlur kernel dtype {k.dtype} is not supported: the circular blur runs on torch's FFT, "
                "which needs float32 or float64; pass dtype=torch.float32, or use Blur(kernel, in_shape, 'circular'), "
                "which convolves directly in half precision."
            )
        in_shape = as_shape(in_shape, "in_shape")
        if len(in_shape) < 2:
            raise ValueError(f"CircularBlur needs in_shape (..., H, W), got {in_shape}")
        _check_kernel(k, in_shape, "CircularBlur")
        H, W = in_shape[-2:]
        kh, kw = k.shape[-2:]
        embedded = k.new_zeros(*k.shape[:-2], H, W)
        embedded[..., :kh, :kw] = k
        embedded = torch.roll(embedded, shifts=(-(kh // 2), -(kw // 2)), dims=(-2, -1))
        self._init(torch.fft.rfft2(embedded), in_shape)

    @classmethod
    def from_transfer_function(cls, transfer: torch.Tensor, in_shape) -> CircularBlur:
        """The circular blur whose rfft2 transfer function is `transfer` (shape (..., H, W // 2 + 1))."""
        op = cls.__new__(cls)
        op._init(transfer, as_shape(in_shape, "in_shape"))
        return op

    def _init(self, transfer, in_shape):
        LinearOperator.__init__(self, in_shape, in_shape, dtype=transfer.real.dtype, device=transfer.device)
        self.transfer = transfer

    @property
    def kernel(self) -> torch.Tensor:
        """The H x W periodic kernel (centre at the origin)."""
        return torch.fft.irfft2(self.transfer, s=self.in_shape[-2:])

    def _filter(self, x, transfer):
        H, W = self.in_shape[-2:]
        spectrum = torch.fft.rfft2(x) * transfer
        # irfft2 infers an even width itself, and is ~20% faster without an explicit output size
        return torch.fft.irfft2(spectrum) if H % 2 == 0 and W % 2 == 0 else torch.fft.irfft2(spectrum, s=(H, W))

    def _apply(self, x):
        if kernel := kernels.lookup(self, x):
            return kernel.forward(self, x)
        return self._filter(x, self.transfer)

    def _adjoint(self, y):
        if kernel := kernels.lookup(self, y, operation="adjoint"):
            return kernel.adjoint(self, y)
        return self._filter(y, self.transfer.conj())

    def __repr__(self):
        return f"CircularBlur(in_shape={self.in_shape})"


@composition_rules.register(CircularBlur, CircularBlur)
def _circular_product(a, b):
    """Circular convolutions commute and compose: (k1 ⊛)(k2 ⊛) = (k1 ⊛ k2) ⊛, transfer k̂1 k̂2."""
    return CircularBlur.from_transfer_function(a.transfer * b.transfer, a.in_shape)


@sum_rules.register(CircularBlur, CircularBlur)
def _circular_sum(a, b):
    """k1 ⊛ x + k2 ⊛ x = (k1 + k2) ⊛ x, transfer k̂1 + k̂2."""
    return CircularBlur.from_transfer_function(a.transfer + b.transfer, a.in_shape)


@svd_rules.register(CircularBlur)
def _circular_blur_svd(op, child):
    """k ⊛ x = H R diag(|k^|) H x with H the orthonormal Hartley transform and R the pair rotation by the
    phase of k^: a real circulant with transfer function k^ = |k^| e^{i phi} satisfies H C H = R diag(|k^|)
    (`PairRotation`). So U = H R and V = H are real orthogonal and a real image has real spectral
    coordinates (what DDRM's per-coordinate noise needs); s = |k^| on the full H x W frequency grid, as in
    the complex Fourier SVD, which this equals up to the choice of basis within each pair (w, -w)."""
    H, W = op.in_shape[-2:]
    real = precision_of(op.dtype)
    k_hat = torch.fft.fft2(torch.fft.irfft2(op.transfer, s=(H, W)))
    # exact Hermitian symmetry k^(-w) = conj(k^(w)), so that R is exactly orthogonal
    k_hat = (k_hat + reflect_frequencies(k_hat).conj()) / 2
    mag = k_hat.abs()
    nonzero = mag > 0
    safe = torch.where(nonzero, mag, 1)
    cos = torch.where(nonzero, k_hat.real / safe, 1).to(real)
    sin = torch.where(nonzero, k_hat.imag / safe, 0).to(real)
    hartley = Hartley2(op.in_shape, dtype=real, device=op.device)
    U = hartley @ PairRotation(cos, sin, op.in_shape)
    s = mag.to(real).expand(op.in_shape).clone()
    return SVD(U, s, hartley, complete=True, range_complete=True, structured=True)


@norm_rules.register(CircularBlur)
def _circular_blur_norm(op):
    """||k ⊛|| = max |k^| over the frequency grid."""
    return float(op.transfer.abs().max())


# ----------------------------------------------------------------------------------------------
# padded convolution


def blur_matrices(taps: torch.Tensor, n: int, boundary: Boundary) -> torch.Tensor:
    """Padded 1-D blurs of a length-n signal as matrices, shape (S, n, n), for taps (S, K):

        (M_s x)[i] = sum_{a=0..K-1} taps_s[a] x_ext[i + a - b],     b = K - 1 - K // 2,

    with x_ext the extension of x by the boundary rule (zero: terms outside 0..n-1 dropped): a correlation
    after padding b samples before and K // 2 after, the boundary folded into the matrix. The padded
    convolution with a kernel k (`SeparableBlur` along one axis) is the correlation with taps flip(k); for
    a symmetric kernel of odd length 2r + 1 (b = r) the two are the same."""
    S, K = taps.shape
    before, after = K - 1 - K // 2, K // 2
    i = torch.arange(n)[:, None] + torch.arange(K)[None, :]  # padded position of tap a at output i
    if boundary is Boundary.ZERO:
        src = i - before
        valid = (src >= 0) & (src < n)
        src = src.clamp(0, n - 1)
    else:
        src = source_index(n, before, after, boundary)[i]
        valid = torch.ones_like(src, dtype=torch.bool)
    values = torch.where(valid.to(taps.device), taps[:, None, :], 0).expand(S, n, K)
    index = src.to(taps.device).expand(S, n, K)
    return taps.new_zeros(S, n, n).scatter_add_(2, index, values)


class ConvolutionMethod(enum.Enum):
    """How a padded convolution is computed: DIRECT (depthwise conv2d) or FFT (zero-padded rfft2)."""

    DIRECT = "direct"
    FFT = "fft"


def choose_method(taps: int, H: int, W: int, Lh: int, Lw: int, dtype: torch.dtype, planes: int) -> ConvolutionMethod:
    """The cheaper way to convolve `planes` H x W planes with a kernel of `taps` taps (FFT size Lh x Lw).

    Cost model in ns, fitted on the project's 2-core x86 CPU (benchmarks/blur_method_calibration.py:
    over 144 sizes, kernels and batches the chosen method is 4% slower than the best on average):

        direct = 30e3 + 0.1 taps H W ceil(planes / 16)       (x 20 in float64: no vectorised path)
        fft    = 0.1 planes Lh Lw log2(Lh Lw)

    The depthwise conv2d vectorises across planes (16 float32 lanes), so one to sixteen planes cost
    about the same; the FFT pays for every plane. Hence one image prefers the FFT from about 7 x 7
    taps on, a batch of 16 keeps the direct path up to about 17 x 17.
    """
    direct = 30e3 + 0.1 * taps * H * W * math.ceil(planes / 16) * (1 if dtype == torch.float32 else 20)
    fft = 0.1 * planes * Lh * Lw * math.log2(Lh * Lw)
    return ConvolutionMethod.DIRECT if direct < fft else ConvolutionMethod.FFT


def _depthwise(x: torch.Tensor, weight: torch.Tensor, padding=(0, 0)) -> torch.Tensor:
    """Correlate each (H, W) plane of x (N, C, H, W) with weight (C or 1, 1, kh, kw), after zero
    padding by `padding` = (rows, cols) on both sides.

    Folding the batch into channels (groups = N C) is 10-50x faster on CPU than batched conv2d
    with one input channel, and padding explicitly is ~5x faster than conv2d's own padding there.
    """
    n, c = x.shape[:2]
    if any(padding):
        x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    w = weight.expand(c, *weight.shape[1:]).repeat(n, 1, 1, 1)
    out = F.conv2d(x.reshape(1, n * c, *x.shape[2:]), w, groups=n * c)
    return out.reshape(n, c, *out.shape[2:])


class _PlaneLayout:
    """Reshape (N, *lead, H, W) to (N', C, H, W) for a kernel of shape (kh, kw) or (C, kh, kw)."""

    def __init__(self, in_shape, per_channel: bool):
        self.in_shape = in_shape
        self.channels = in_shape[-3] if per_channel else 1

    def planes(self, x):
        return x.reshape(-1, self.channels, *x.shape[-2:])

    def restore(self, x, n):
        return x.reshape(n, *self.in_shape[:-2], *x.shape[-2:])


class Blur(LinearOperator):
    """Padded convolution y = V(k) P x: extend x by the boundary rule (P), then keep the valid part
    of the convolution with k (V), so y has the shape of x. The adjoint P^H V(k)^H correlates with k
    over the full support and folds the padding back, exactly.

    `method` is `ConvolutionMethod.DIRECT` (depthwise conv2d; the adjoint is a conv2d of the same
    cost, not a transposed convolution) or `ConvolutionMethod.FFT` (rfft2 on a 5-smooth size); by
    default (None) each call picks the cheaper for its number of planes (`choose_method`), and
    `method` reports the pick for one sample. Memory: the kernel, and once the FFT path has run, its
    transfer function of size Lh x (Lw / 2 + 1) complex values.
    """

    def __init__(
        self,
        kernel,
        in_shape,
        boundary: Boundary | str = Boundary.ZERO,
        *,
        method: ConvolutionMethod | None = None,
        dtype: torch.dtype | None = None,
    ):
        k = _as_kernel(kernel, dtype, "Blur")
        in_shape = as_shape(in_shape, "in_shape")
        if len(in_shape) < 2:
            raise ValueError(f"Blur needs in_shape (..., H, W), got {in_shape}")
        _check_kernel(k, in_shape, "Blur")
        super().__init__(in_shape, in_shape, dtype=k.dtype, device=k.device)
        self.kernel = k
        self.boundary = Boundary.coerce(boundary)
        kh, kw = k.shape[-2:]
        self.pad = Pad(
            in_shape,
            ((kh - 1 - kh // 2, kh // 2), (kw - 1 - kw // 2, kw // 2)),
            self.boundary,
            dtype=k.dtype,
            device=k.device,
        )
        self.layout = _PlaneLayout(in_shape, per_channel=k.ndim == 3)
        Hp, Wp = self.pad.out_shape[-2:]
        self.fixed_method = method
        # conv2d correlates; correlating with flip(k) convolves with k
        self.weight = k.flip(-1, -2).reshape(-1, 1, kh, kw)
        self.fft_shape = (good_fft_size(Hp), good_fft_size(Wp))
        self.method_for(1)  # refuses a fixed FFT in half precision now rather than at the first call

    @functools.cached_property
    def transfer(self) -> torch.Tensor:
        """rfft2 of the kernel on the FFT grid, computed on first use in the operator's precision (so
        that both paths agree to that precision after `.to()`, which drops it) and cached."""
        return torch.fft.rfft2(self.kernel, s=self.fft_shape)

    def method_for(self, planes: int) -> ConvolutionMethod:
        """The method a call on `planes` H x W planes uses: the fixed one, else the cheaper; always
        DIRECT in half precision (float16, bfloat16), where torch's FFT is unsupported."""
        if self.kernel.dtype in HALF_PRECISIONS:
            if self.fixed_method is ConvolutionMethod.FFT:
                raise ValueError(
                    f"Blur: method=ConvolutionMethod.FFT needs a float32 or float64 kernel, got {self.kernel.dtype} "
                    "(torch's FFT does not support half precision); use method=ConvolutionMethod.DIRECT or None."
                )
            return ConvolutionMethod.DIRECT
        if self.fixed_method is not None:
            return self.fixed_method
        kh, kw = self.kernel.shape[-2:]
        return choose_method(kh * kw, *self.in_shape[-2:], *self.fft_shape, self.kernel.dtype, planes)

    @property
    def method(self) -> ConvolutionMethod:
        """The method for one sample (`method_for` its planes)."""
        return self.method_for(math.prod(self.in_shape[:-2]))

    def _apply(self, x):
        if kernel := kernels.lookup(self, x):
            return kernel.forward(self, x)
        n = x.shape[0]
        H, W = self.in_shape[-2:]
        kh, kw = self.kernel.shape[-2:]
        xp = self.layout.planes(self.pad._apply(x))
        if self.method_for(xp.shape[0] * xp.shape[1]) is ConvolutionMethod.DIRECT:
            y = _depthwise(xp, self.weight)
        else:
            full = torch.fft.irfft2(torch.fft.rfft2(xp, s=self.fft_shape) * self.transfer, s=self.fft_shape)
            y = full[..., kh - 1 : kh - 1 + H, kw - 1 : kw - 1 + W]
        return self.layout.restore(y, n)

    def _adjoint(self, y):
        if kernel := kernels.lookup(self, y, operation="adjoint"):
            return kernel.adjoint(self, y)
        n = y.shape[0]
        kh, kw = self.kernel.shape[-2:]
        Hp, Wp = self.pad.out_shape[-2:]
        yp = self.layout.planes(y)
        if self.method_for(yp.shape[0] * yp.shape[1]) is ConvolutionMethod.DIRECT:
            # V^H y = full correlation with k = conv2d of y zero-padded by (kh-1, kw-1) with flip(flip(k))
            xp = _depthwise(yp, self.weight.flip(-1, -2), padding=(kh - 1, kw - 1))
        else:
            Lh, Lw = self.fft_shape
            embedded = F.pad(yp, (kw - 1, Lw - kw + 1 - yp.shape[-1], kh - 1, Lh - kh + 1 - yp.shape[-2]))
            xp = torch.fft.irfft2(torch.fft.rfft2(embedded) * self.transfer.conj(), s=self.fft_shape)[..., :Hp, :Wp]
        return self.pad._adjoint(self.layout.restore(xp, n))

    def __repr__(self):
        kh, kw = self.kernel.shape[-2:]
        method = self.fixed_method.value if self.fixed_method is not None else "auto"
        return f"Blur({kh}x{kw}, in_shape={self.in_shape}, {self.boundary.value}, {method})"


class SeparableBlur(LinearOperator):
    """Padded convolution with a separable kernel k = outer(k_rows, k_cols):

        y = V(k_rows ⊗ k_cols) P x = (V(k_rows) P_rows) ⊗ (V(k_cols) P_cols) x,

    two 1-D convolutions (rows then columns) after padding with the boundary rule. Equal to
    `Blur(outer(k_rows, k_cols), ...)` at (kh + kw) instead of kh kw multiply-adds per pixel.
    """

    def __init__(
        self,
        kernel_rows,
        kernel_cols,
        in_shape,
        boundary: Boundary | str = Boundary.ZERO,
        *,
        dtype: torch.dtype | None = None,
    ):
        kr, kc = _as_kernel(kernel_rows, dtype, "SeparableBlur"), _as_kernel(kernel_cols, dtype, "SeparableBlur")
        if kr.ndim != 1 or kc.ndim != 1:
            raise ValueError(f"SeparableBlur takes two 1-D kernels, got shapes {tuple(kr.shape)}, {tuple(kc.shape)}")
        if kr.dtype != kc.dtype:
            raise TypeError(f"SeparableBlur kernels differ in dtype: {kr.dtype} and {kc.dtype}")
        in_shape = as_shape(in_shape, "in_shape")
        _check_kernel(torch.outer(kr, kc), in_shape, "SeparableBlur")
        super().__init__(in_shape, in_shape, dtype=kr.dtype, device=kr.device)
        self.kernel_rows, self.kernel_cols = kr, kc
        self.boundary = Boundary.coerce(boundary)
        kh, kw = len(kr), len(kc)
        self.pad = Pad(
            in_shape,
            ((kh - 1 - kh // 2, kh // 2), (kw - 1 - kw // 2, kw // 2)),
            self.boundary,
            dtype=kr.dtype,
            device=kr.device,
        )
        self.weight_rows = kr.flip(0).reshape(1, 1, kh, 1)
        self.weight_cols = kc.flip(0).reshape(1, 1, 1, kw)

    @property
    def kernel(self) -> torch.Tensor:
        return torch.outer(self.kernel_rows, self.kernel_cols)

    def _apply(self, x):
        if kernel := kernels.lookup(self, x):
            return kernel.forward(self, x)
        n = x.shape[0]
        xp = self.pad._apply(x).reshape(-1, 1, *self.pad.out_shape[-2:])
        y = _depthwise(_depthwise(xp, self.weight_rows), self.weight_cols)
        return y.reshape(n, *self.in_shape)

    def _adjoint(self, y):
        if kernel := kernels.lookup(self, y, operation="adjoint"):
            return kernel.adjoint(self, y)
        n = y.shape[0]
        kh, kw = len(self.kernel_rows), len(self.kernel_cols)
        yp = y.reshape(-1, 1, *self.in_shape[-2:])
        xp = _depthwise(yp, self.weight_cols.flip(-1), padding=(0, kw - 1))
        xp = _depthwise(xp, self.weight_rows.flip(-2), padding=(kh - 1, 0))
        return self.pad._adjoint(xp.reshape(n, *self.pad.out_shape))

    def __repr__(self):
        return (
            f"SeparableBlur({len(self.kernel_rows)}x{len(self.kernel_cols)}, in_shape={self.in_shape}, "
            f"{self.boundary.value})"
        )


@svd_rules.register(SeparableBlur)
def _separable_blur_svd(op, child):
    """(B_r ⊗ B_c) = (U_r ⊗ U_c) diag(s_r ⊗ s_c) (V_r ⊗ V_c)^H from the SVDs of the two 1-D padded
    convolution matrices (`blur_matrices`, built and factored in float64), acting on every leading plane."""
    factors = []
    for kernel, n in ((op.kernel_rows, op.in_shape[-2]), (op.kernel_cols, op.in_shape[-1])):
        matrix = blur_matrices(kernel.flip(0).double()[None], n, op.boundary)[0]
        Ud, sd, Vhd = torch.linalg.svd(matrix)
        factors.append((Matrix(Ud.to(op.dtype), (n,), (n,)), sd.to(op.dtype), Matrix(Vhd.mH.to(op.dtype), (n,), (n,))))
    (Ur, sr, Vr), (Uc, sc, Vc) = factors
    U, V = Kron(Ur, Uc), Kron(Vr, Vc)
    lead = op.in_shape[:-2]
    if lead:
        eye = identity_like(lead, op)
        U, V = Kron(eye, U), Kron(eye, V)
    s = torch.outer(sr, sc).expand(op.in_shape).clone()
    return SVD(U, s, V, complete=True, range_complete=True, structured=True)


def gaussian_blur(
    in_shape,
    sigma: float | tuple[float, float],
    boundary: Boundary | str = Boundary.ZERO,
    *,
    size=None,
    dtype=torch.float32,
) -> LinearOperator:
    """Gaussian blur of standard deviation `sigma` (pixels): circular if the boundary is CIRCULAR,
    else a `SeparableBlur` with the given boundary."""
    sy, sx = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
    hy, hx = (size, size) if size is None or isinstance(size, int) else size
    rows, cols = gaussian_kernel_1d(sy, hy, dtype=dtype), gaussian_kernel_1d(sx, hx, dtype=dtype)
    if Boundary.coerce(boundary) is Boundary.CIRCULAR:
        return CircularBlur(torch.outer(rows, cols), in_shape)
    return SeparableBlur(rows, cols, in_shape, boundary)
