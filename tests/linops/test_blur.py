"""Blur operators: the computation methods agree, separable equals 2-D, circular equals padded-circular,
kernels are centred and normalised, and independent references (scipy) agree."""

import numpy as np
import pytest
import scipy.signal
import torch

import linops
from linops.operators.blur import good_fft_size


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


f64 = torch.float64


def rand(*shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=f64)


@pytest.mark.parametrize("boundary", list(linops.Boundary))
@pytest.mark.parametrize("kernel_shape", [(5, 5), (4, 6), (1, 3), (7, 2)])
def test_direct_and_fft_methods_agree(boundary, kernel_shape):
    k, x = rand(*kernel_shape), rand(3, 2, 11, 12, seed=1)
    direct = linops.Blur(k, (2, 11, 12), boundary, method=linops.ConvolutionMethod.DIRECT)
    fft = linops.Blur(k, (2, 11, 12), boundary, method=linops.ConvolutionMethod.FFT)
    torch.testing.assert_close(direct @ x, fft @ x)
    torch.testing.assert_close(direct.H @ x, fft.H @ x)


@pytest.mark.parametrize("boundary", [b for b in linops.Boundary])
def test_separable_equals_two_dimensional(boundary):
    rows, cols = rand(5), rand(3, seed=2)
    x = rand(2, 1, 10, 9, seed=3)
    sep = linops.SeparableBlur(rows, cols, (1, 10, 9), boundary)
    full = linops.Blur(torch.outer(rows, cols), (1, 10, 9), boundary)
    torch.testing.assert_close(sep @ x, full @ x)
    torch.testing.assert_close(sep.H @ x, full.H @ x)


def test_circular_blur_equals_padded_blur_with_circular_boundary():
    k, x = rand(5, 4), rand(2, 3, 9, 10, seed=1)
    torch.testing.assert_close(linops.CircularBlur(k, (3, 9, 10)) @ x, linops.Blur(k, (3, 9, 10), "circular") @ x)
    op = linops.CircularBlur(k, (3, 9, 10))
    periodic = torch.zeros(9, 10, dtype=f64)
    periodic[:5, :4] = k
    torch.testing.assert_close(op.kernel, torch.roll(periodic, (-2, -2), (0, 1)))


@pytest.mark.parametrize("kernel_shape", [(3, 3), (4, 4), (5, 2)])
@pytest.mark.parametrize("boundary", list(linops.Boundary))
def test_centred_delta_is_identity(kernel_shape, boundary):
    delta = torch.zeros(kernel_shape, dtype=f64)
    delta[kernel_shape[0] // 2, kernel_shape[1] // 2] = 1
    x = rand(2, 1, 8, 7)
    torch.testing.assert_close(linops.Blur(delta, (1, 8, 7), boundary) @ x, x)
    torch.testing.assert_close(linops.CircularBlur(delta, (1, 8, 7)) @ x, x)


def test_zero_boundary_matches_scipy_same_convolution():
    k, x = rand(5, 3), rand(12, 11, seed=4)
    expected = scipy.signal.convolve2d(x.numpy(), k.numpy(), mode="same")
    got = linops.Blur(k, (12, 11), "zero") @ x
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_reflect_boundary_matches_scipy_ndimage():
    import scipy.ndimage

    k, x = rand(5, 5), rand(12, 11, seed=4)
    # ndimage 'mirror' is numpy/torch 'reflect' (edge sample not repeated); ndimage correlates with
    # the kernel centred at size // 2, so convolving means correlating with the flipped kernel
    expected = scipy.ndimage.convolve(x.numpy(), k.numpy(), mode="mirror")
    np.testing.assert_allclose((linops.Blur(k, (12, 11), "reflect") @ x).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_per_channel_kernels_blur_each_channel_with_its_own():
    k = rand(3, 3, 3)
    x = rand(2, 3, 8, 8, seed=5)
    op = linops.Blur(k, (3, 8, 8), "reflect")
    for c in range(3):
        single = linops.Blur(k[c], (8, 8), "reflect")
        torch.testing.assert_close((op @ x)[:, c], single @ x[:, c])


def test_gaussian_kernel():
    g = linops.gaussian_kernel(2.0, dtype=f64)
    assert g.shape == (13, 13)
    torch.testing.assert_close(g.sum(), torch.tensor(1.0, dtype=f64))
    torch.testing.assert_close(g, g.flip(0))
    torch.testing.assert_close(g, g.T)
    g1 = linops.gaussian_kernel_1d(3.0, 61, dtype=f64)
    a = torch.arange(61, dtype=f64) - 30
    assert float((g1 * a**2).sum()) == pytest.approx(9.0, rel=1e-6)
    with pytest.raises(ValueError):
        linops.gaussian_kernel_1d(0.0)


def test_gaussian_blur_factory():
    op = linops.gaussian_blur((1, 32, 32), 1.5, "reflect")
    assert isinstance(op, linops.SeparableBlur)
    assert isinstance(linops.gaussian_blur((1, 32, 32), 1.5, "circular"), linops.CircularBlur)
    x = torch.ones(1, 1, 32, 32)
    torch.testing.assert_close(op @ x, x)  # reflect boundary and a normalised kernel preserve constants


def test_good_fft_size():
    for n in range(1, 600):
        m = good_fft_size(n)
        assert m >= n and m % 2 == 0
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        assert r == 1
    assert good_fft_size(258) == 270 and good_fft_size(256) == 256


def test_method_is_chosen_by_cost():
    direct, fft = linops.ConvolutionMethod.DIRECT, linops.ConvolutionMethod.FFT
    assert linops.Blur(torch.rand(3, 3, generator=gen(100)), (1, 256, 256)).method is direct
    assert linops.Blur(torch.rand(31, 31, generator=gen(101)), (1, 256, 256)).method is fft
    assert linops.Blur(torch.rand(9, 9, dtype=f64, generator=gen(102)), (1, 256, 256)).method is fft
    # the depthwise conv vectorises across planes, the FFT pays per plane: 15 x 15 is an FFT for one
    # image and direct for a batch of 16 (measured at 13 x 13, FFT vs direct, forward + adjoint:
    # 0.48 vs 1.84 ms for one image, 7.2 vs 4.1 ms for 16; benchmarks/blur_method_calibration.py)
    medium = linops.Blur(torch.rand(15, 15, generator=gen(103)), (1, 256, 256))
    assert medium.method is fft and medium.method_for(1) is fft and medium.method_for(16) is direct
    per_channel = linops.Blur(torch.rand(3, 16, 16, generator=gen(104)), (3, 64, 64))
    assert per_channel.method is per_channel.method_for(3)
    fixed = linops.Blur(torch.rand(15, 15, generator=gen(105)), (1, 256, 256), method=direct)
    assert fixed.method_for(1) is direct and "direct" in repr(fixed) and "auto" in repr(medium)


def test_batched_and_single_calls_agree_whatever_path_they_take():
    k = torch.rand(15, 15, generator=torch.Generator().manual_seed(1))
    A = linops.Blur(k / k.sum(), (1, 64, 64), "reflect")
    assert A.method_for(1) is not A.method_for(32)  # float32: FFT for one plane, direct for 32
    x = torch.rand(32, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    batched, adjoint = A @ x, A.H @ x
    for i in (0, 17):
        torch.testing.assert_close(batched[i : i + 1], A @ x[i : i + 1], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(adjoint[i : i + 1], A.H @ x[i : i + 1], rtol=1e-5, atol=1e-5)
    # converted to float64, both paths work from the float64 kernel: agreement to float64 rounding
    small = linops.Blur(k[:3, :3] / k[:3, :3].sum(), (1, 64, 64)).to(f64)
    assert small.method_for(1) is not small.method_for(64)
    x64 = x.to(f64).repeat(2, 1, 1, 1)
    torch.testing.assert_close(small @ x64[:1], (small @ x64)[:1], rtol=1e-12, atol=1e-12)
