"""Bad input raises ValueError/TypeError whose message names what was expected and what was got."""

import numpy as np
import pytest
import torch

import linops

SHAPE = (1, 8, 8)


def blur(dtype=torch.float32, device="cpu"):
    return linops.Blur(torch.rand(3, 3, dtype=dtype, device=device), SHAPE, "reflect")


def test_wrong_input_shape_names_both_shapes():
    with pytest.raises(ValueError, match=r"expects input of shape \(\*batch, 1, 8, 8\), got \(2, 1, 8, 9\)"):
        blur() @ torch.rand(2, 1, 8, 9)
    with pytest.raises(ValueError, match=r"got \(8, 8\)"):
        blur() @ torch.rand(8, 8)


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
        blur() @ torch.rand(1, *SHAPE, dtype=torch.float64)
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
        on_meta @ torch.rand(SHAPE)
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
        linops.Blur(torch.rand(9, 9), SHAPE)
    with pytest.raises(ValueError, match=r"unknown boundary 'mirror'; choose one of zero, reflect"):
        linops.Blur(torch.rand(3, 3), SHAPE, "mirror")
    with pytest.raises(ValueError, match=r"divisible by 3"):
        linops.Downsample(SHAPE, 3)
    with pytest.raises(ValueError, match=r"do not broadcast to in_shape"):
        linops.Diagonal(torch.rand(2, 8, 8), SHAPE)
    with pytest.raises(ValueError, match=r"cannot map"):
        linops.Matrix(torch.rand(3, 4), (5,))
    with pytest.raises(ValueError, match=r"per-channel kernel of shape \(3, 3, 3\) needs in_shape"):
        linops.Blur(torch.rand(3, 3, 3), SHAPE)
    with pytest.raises(ValueError, match=r"positive ints"):
        linops.Identity((0, 4))


def test_to_dense_refuses_huge_operators():
    with pytest.raises(ValueError, match=r"refuses more than"):
        linops.Identity((1, 512, 512)).to_dense()
