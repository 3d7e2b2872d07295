"""numpy arrays in -> numpy out; CuPy arrays in -> CuPy out, zero-copy (GPU only)."""

import numpy as np
import pytest
import torch

import linops


def test_numpy_round_trip_keeps_dtype_and_values():
    op = linops.gaussian_blur((1, 16, 16), 1.0, "reflect").to(torch.float64)
    x = np.random.default_rng(0).standard_normal((3, 1, 16, 16))
    y = op @ x
    assert isinstance(y, np.ndarray) and y.dtype == np.float64 and y.shape == x.shape
    np.testing.assert_allclose(y, (op @ torch.from_numpy(x)).numpy())
    assert isinstance(op.H(y), np.ndarray)


def test_numpy_input_is_not_modified():
    op = linops.Mask(torch.tensor([1.0, 0.0, 1.0]), dtype=torch.float64)
    x = np.array([1.0, 2.0, 3.0])
    op @ x
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])


@pytest.mark.gpu
def test_cupy_in_cupy_out_zero_copy():
    cupy = pytest.importorskip("cupy")
    op = linops.gaussian_blur((1, 16, 16), 1.0, "reflect").to("cuda")
    x = cupy.random.standard_normal((2, 1, 16, 16), dtype=cupy.float32)
    y = op @ x
    assert isinstance(y, cupy.ndarray)
    expected = op @ torch.from_dlpack(x)
    cupy.testing.assert_allclose(y, cupy.from_dlpack(expected), rtol=1e-6)
    # zero-copy on the way in: torch sees the CuPy buffer itself
    assert torch.from_dlpack(x).data_ptr() == x.data.ptr
