"""numpy and CuPy arrays in, the same kind out: zero-copy through the buffer protocol and DLPack."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def is_cupy_array(x) -> bool:
    """True for a cupy.ndarray, detected without importing CuPy."""
    return type(x).__module__.split(".")[0] == "cupy" and hasattr(x, "__dlpack__")


def _unaliased(out: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """out, copied when it shares memory with `source` (an identity or a reshape returns its input)."""
    out = out.detach().resolve_conj().resolve_neg()
    if out.device == source.device and out.untyped_storage().data_ptr() == source.untyped_storage().data_ptr():
        out = out.clone()
    return out


def call_on_tensor(fn: Callable[[torch.Tensor], torch.Tensor], x):
    """Run a tensor function on x, converting numpy/CuPy input to torch and the result back.

    The input array is read without a copy; the returned array never shares memory with it, so
    writing to one never changes the other (as for any numpy function that returns a new array)."""
    if isinstance(x, torch.Tensor):
        return fn(x)
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
        return _unaliased(fn(t), t).cpu().numpy()
    if is_cupy_array(x):
        import cupy

        t = torch.from_dlpack(x)
        return cupy.from_dlpack(_unaliased(fn(t), t).contiguous())
    raise TypeError(f"expected a torch tensor, numpy array or CuPy array, got {type(x).__name__}")
