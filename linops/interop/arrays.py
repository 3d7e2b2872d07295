"""numpy and CuPy arrays in, the same kind out: zero-copy through the buffer protocol and DLPack."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def is_cupy_array(x) -> bool:
    """True for a cupy.ndarray, detected without importing CuPy."""
    return type(x).__module__.split(".")[0] == "cupy" and hasattr(x, "__dlpack__")


def call_on_tensor(fn: Callable[[torch.Tensor], torch.Tensor], x):
    """Run a tensor function on x, converting numpy/CuPy input to torch and the result back."""
    if isinstance(x, torch.Tensor):
        return fn(x)
    if isinstance(x, np.ndarray):
        out = fn(torch.from_numpy(np.ascontiguousarray(x)))
        return out.detach().cpu().resolve_conj().resolve_neg().numpy()
    if is_cupy_array(x):
        import cupy

        out = fn(torch.from_dlpack(x))
        return cupy.from_dlpack(out.detach().resolve_conj().resolve_neg().contiguous())
    raise TypeError(f"expected a torch tensor, numpy array or CuPy array, got {type(x).__name__}")
