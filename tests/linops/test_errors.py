"""Bad input raises ValueError/TypeError whose message names what was expected and what was got."""

import numpy as np
import pytest
import torch

import linops


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


SHAPE = (1, 8, 8)


def blur(dtype=torch.float32, device="cpu"):
    return linops.Blur(torch.rand(3, 3, dtype=dtype, generator=gen(99)).to(device), SHAPE, "reflect")


def test_wrong_input_shape_names_both_shapes():
    with pytest.raises(ValueError, match=r"expects input of shape \(\*batch, 1, 8, 8\), got \(2, 1, 8, 9\)"):
        blur() @ torch.rand(2, 1, 8, 9, generator=gen(100))
    with pytest.raises(ValueError, match=r"got \(8, 8\)"):
        blur() @ torch.rand(8, 8, generator=gen(101))


def test_composing_mismatched_operators_names_both():
    small = linops.Downsample(SHAPE, 2)
    with pytest.raises(ValueError) as err:
        blur() @ small
    message = str(err.value)
    assert "Blur" in message and "Downsample" in message
    assert "(1, 8, 8)" in message and "(1, 4, 4)" in message


def test_adding_mismatched_operators():
    with pytest.raises(ValueError, match=r"shapes differ"):
        blur() + linops.Downsample(SHAPE, 2)


def test_mixing_precisions():
    with pytest.raises(TypeError, match=r"float32.*float64"):
        blur() @ torch.rand(1, *SHAPE, dtype=torch.float64, generator=gen(102))
    with pytest.raises(TypeError, match=r"precisions differ"):
        blur() @ blur(torch.float64)
    with pytest.raises(TypeError, match=r"precisions differ"):
        blur() + blur(torch.float64)


def test_integer_input():
    with pytest.raises(TypeError, match=r"floating or complex tensor, got torch.int64"):
        blur() @ torch.ones(1, *SHAPE, dtype=torch.int64)


def test_mixing_devices():
    on_meta = linops.Identity(SHAPE, device="meta")
    with pytest.raises(ValueError, match=r"lives on meta but got a tensor on cpu"):
        on_meta @ torch.rand(SHAPE, generator=gen(103))
    with pytest.raises(ValueError, match=r"on meta .* on cpu|on cpu .* on meta"):
        on_meta @ blur()


def test_numpy_input_of_wrong_dtype():
    with pytest.raises(TypeError, match=r"float32.*float64"):
        blur() @ np.zeros((1, *SHAPE))


def test_operator_times_operator_asks_for_matmul():
    with pytest.raises(TypeError, match=r"compose operators with `@`"):
        blur() * blur()
    with pytest.raises(TypeError, match=r"scaled by scalars"):
        blur() * torch.ones(3)
    with pytest.raises(TypeError, match=r"expected a torch tensor, numpy array or CuPy array, got list"):
        blur() @ [1, 2, 3]


def test_power_needs_square_operator_and_natural_exponent():
    with pytest.raises(ValueError, match=r"in_shape == out_shape"):
        linops.Downsample(SHAPE, 2) ** 2
    with pytest.raises(ValueError, match=r"integer k >= 0"):
        blur() ** -1
    with pytest.raises(ValueError, match=r"integer k >= 0"):
        blur() ** 1.5


def test_constructor_checks():
    with pytest.raises(ValueError, match=r"entries must be 0 or 1"):
        linops.Mask(torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match=r"larger than the image"):
        linops.Blur(torch.rand(9, 9, generator=gen(104)), SHAPE)
    with pytest.raises(ValueError, match=r"unknown boundary 'mirror'; choose one of zero, reflect"):
        linops.Blur(torch.rand(3, 3, generator=gen(105)), SHAPE, "mirror")
    with pytest.raises(ValueError, match=r"divisible by 3"):
        linops.Downsample(SHAPE, 3)
    with pytest.raises(ValueError, match=r"do not broadcast to in_shape"):
        linops.Diagonal(torch.rand(2, 8, 8, generator=gen(106)), SHAPE)
    with pytest.raises(ValueError, match=r"cannot map"):
        linops.Matrix(torch.rand(3, 4, generator=gen(107)), (5,))
    with pytest.raises(ValueError, match=r"per-channel kernel of shape \(3, 3, 3\) needs in_shape"):
        linops.Blur(torch.rand(3, 3, 3, generator=gen(108)), SHAPE)
    with pytest.raises(ValueError, match=r"positive ints"):
        linops.Identity((0, 4))


def test_to_dense_refuses_huge_operators():
    with pytest.raises(ValueError, match=r"refuses more than"):
        linops.Identity((1, 512, 512)).to_dense()


# ----------------------------------------------------------------------------------------------
# inputs that used to give silent wrong answers or unhelpful errors (issue 12)


@pytest.mark.parametrize("cls", [linops.Blur, linops.CircularBlur])
def test_blur_kernel_must_be_finite_real_and_non_empty(cls):
    name = cls.__name__
    k = torch.full((3, 3), 1 / 9)
    for bad, count in ((float("nan"), "1 NaN and 0 infinite"), (float("inf"), "0 NaN and 1 infinite")):
        kernel = k.clone()
        kernel[1, 1] = bad
        with pytest.raises(ValueError, match=rf"{name} kernel must be finite, got {count} entries among 9"):
            cls(kernel, SHAPE)
    with pytest.raises(TypeError, match=rf"{name} kernel must be real.*complex64"):
        cls(k.to(torch.complex64), SHAPE)  # used to drop the imaginary part with a warning
    with pytest.raises(TypeError, match=rf"{name} kernel must be real.*complex128"):
        cls(k, SHAPE, dtype=torch.complex128)
    empty = rf"{name} kernel must have at least one tap along each axis, got shape \(0, 3\)"
    with pytest.raises(ValueError, match=empty):
        cls(torch.ones(0, 3), SHAPE)  # Blur failed on a negative pad width, CircularBlur was silently 0
    with pytest.raises(ValueError, match=r"SeparableBlur kernel must be finite"):
        linops.SeparableBlur(torch.tensor([0.5, float("nan")]), torch.ones(2), SHAPE)


def test_half_precision_blur_convolves_directly():
    """float16: Blur picks the direct convolution (torch's FFT has no half precision on the CPU) and agrees
    with the float32 blur to half precision; an explicit FFT method and the FFT-only CircularBlur refuse
    with an error that says what to do."""
    k = torch.rand(3, 3, generator=gen(1))
    k = k / k.sum()
    x = torch.rand(2, *SHAPE, generator=gen(2))
    for boundary in ("zero", "reflect", "circular"):
        half = linops.Blur(k.half(), SHAPE, boundary)
        assert half.method is linops.ConvolutionMethod.DIRECT and half.method_for(64) is linops.ConvolutionMethod.DIRECT
        y = half @ x.half()
        assert y.dtype == torch.float16
        single = linops.Blur(k, SHAPE, boundary)
        torch.testing.assert_close(y.float(), single @ x, rtol=0, atol=2e-3)
        torch.testing.assert_close((half.H @ x.half()).float(), single.H @ x, rtol=0, atol=2e-3)
    with pytest.raises(ValueError, match=r"ConvolutionMethod.FFT needs a float32 or float64 kernel, got .*float16"):
        linops.Blur(k.half(), SHAPE, method=linops.ConvolutionMethod.FFT)
    with pytest.raises(TypeError, match=r"CircularBlur kernel dtype torch.float16 is not supported.*float32"):
        linops.CircularBlur(k.half(), SHAPE)


def test_diagonal_weights_must_be_finite():
    w = torch.ones(*SHAPE)
    w[0, 2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"Diagonal weights must be finite, got 1 NaN and 0 infinite entries among 64"):
        linops.Diagonal(w)
    with pytest.raises(ValueError, match=r"Diagonal weights must be finite, got 0 NaN and 1 infinite"):
        linops.Diagonal(torch.tensor([1.0, float("-inf")]))


def test_scaling_needs_a_finite_scalar_and_division_a_nonzero_one():
    A = blur()
    for c in (float("nan"), float("inf"), -float("inf"), complex(1, float("nan"))):
        with pytest.raises(ValueError, match=r"Cannot scale Blur.* by .*: the scalar must be a finite number"):
            c * A
        with pytest.raises(ValueError, match=r"the scalar must be a finite number"):
            A * torch.tensor(c)
    for c in (0, 0.0, torch.tensor(0.0), np.float64(0.0)):
        with pytest.raises(ZeroDivisionError, match=r"Cannot divide Blur.* by zero: the divisor must be a nonzero"):
            A / c
    for c in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match=r"Cannot divide Blur.* by (inf|nan): the divisor must be a nonzero"):
            A / c
    x = torch.rand(1, *SHAPE, generator=gen(3))
    torch.testing.assert_close((A / 4) @ x, (A @ x) / 4)


@pytest.mark.parametrize("cls", ["Radon", "FanBeamRadon"])
def test_tomography_geometry_must_be_positive_and_finite(cls):
    def make(**kwargs):
        fan = {"source_distance": 20.0, "detector_distance": 10.0} if cls == "FanBeamRadon" else {}
        return getattr(linops, cls)((1, 8, 8), angles_deg=[0.0, 45.0, 90.0], **(fan | kwargs))

    for name, bad in (("detector_spacing", 0), ("detector_spacing", -1.0), ("pixel_size", float("nan")),
                      ("pixel_size", float("inf")), ("detector_spacing", float("nan"))):
        # detector_spacing=0 raised ZeroDivisionError, a NaN pixel_size "cannot convert float NaN to integer"
        with pytest.raises(ValueError, match=rf"{cls}: {name} must be positive and finite, got {bad}"):
            make(**{name: bad})
    with pytest.raises(TypeError, match=rf"{cls}: pixel_size must be a number"):
        make(pixel_size="1mm")
    make(pixel_size=0.5, detector_spacing=2)  # valid values still work
    if cls == "FanBeamRadon":
        with pytest.raises(ValueError, match=r"FanBeamRadon: source_distance must be positive and finite, got nan"):
            make(source_distance=float("nan"))


def test_sizes_must_be_integers():
    for bad in ((8.5, 2), 8.5, (2, 8.0), (True, 3)):
        with pytest.raises(TypeError, match=r"must be an int or a sequence of ints"):
            linops.Identity(bad)  # (8.5, 2) silently became (8, 2)
    with pytest.raises(TypeError, match=r"in_shape must be an int or a sequence of ints, got \(1, 8.5, 8\)"):
        linops.Blur(torch.ones(3, 3), (1, 8.5, 8))
    assert linops.Identity((np.int64(2), torch.tensor(3))).in_shape == (2, 3)
    assert linops.Identity(np.int32(4)).in_shape == (4,)


def test_mask_dtype_follows_the_mask_or_the_argument():
    with pytest.raises(TypeError, match=r"Mask: dtype must be a floating or complex torch.dtype, got torch.int32"):
        linops.Mask(torch.ones(4), dtype=torch.int32)  # was silently float32
    assert linops.Mask(torch.ones(4, dtype=torch.float64)).dtype == torch.float64  # was float32
    assert linops.Mask(np.ones(4)).dtype == torch.float64
    assert linops.Mask(torch.ones(4, dtype=torch.float64), dtype=torch.float32).dtype == torch.float32
    assert linops.Mask(torch.ones(4, dtype=torch.bool)).dtype == torch.float32
    assert linops.Mask(torch.ones(4, dtype=torch.int64)).dtype == torch.float32


def test_empty_batch_gives_an_empty_result():
    """An empty batch returns an empty result of the right shape (the FFT used to fail inside MKL)."""
    k = torch.full((3, 3), 1 / 9)
    for A in (linops.Blur(k, SHAPE), linops.Blur(k, SHAPE, method=linops.ConvolutionMethod.FFT),
              linops.CircularBlur(k, SHAPE), linops.Radon((1, 8, 8), angles_deg=[0.0, 90.0])):
        for batch in ((0,), (3, 0), (0, 2)):
            x = torch.zeros(*batch, *A.in_shape, requires_grad=True)
            y = A @ x
            assert y.shape == (*batch, *A.out_shape) and y.dtype == A.dtype
            assert (A.H @ torch.zeros(*batch, *A.out_shape)).shape == x.shape
            y.sum().backward()
            assert x.grad.shape == x.shape
    F = linops.FourierSampling(torch.ones(8, 8, dtype=torch.bool), SHAPE)
    assert (F @ torch.zeros(0, *SHAPE)).dtype == torch.complex64  # a real input promoted, as for N > 0


def test_numpy_input_never_shares_memory_with_the_result():
    for A in (linops.Identity(SHAPE, dtype=torch.float64), linops.Reshape(SHAPE, (64,), dtype=torch.float64)):
        x = np.ones((2, *A.in_shape))
        y = A @ x
        assert not np.shares_memory(x, y)  # Identity returned its input
        y[...] = 5
        np.testing.assert_array_equal(x, 1)
