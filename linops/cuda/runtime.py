"""Compiling the kernel sources once and launching them on torch's current stream, zero-copy.

The CUDA sources are package data (`linops/cuda/kernels/*.cu`, sharing `common.cuh`). `function(name, kernel,
dtype, device)` returns the extern "C" kernel `<kernel>_f32` or `<kernel>_f64` of `<name>.cu`, compiled by NVRTC
through `cupy.RawModule` with `NVRTC_OPTIONS` the first time it is asked for on a device and cached (in
memory per process, and by CuPy on disk across processes); later calls never compile.

Inside `on_torch_stream(device)` CuPy works on torch's current stream of that device and allocates through
torch's caching allocator, so tensors cross with `cupy.from_dlpack` / `torch.from_dlpack` without copies and
without synchronisation, and no host round trip happens between kernels.
"""

from __future__ import annotations

import contextlib
import functools
import re
from pathlib import Path

import numpy as np
import torch

from ..interop import arrays
from .dispatch import cupy_module

KERNEL_DIR = Path(__file__).parent / "kernels"
#: NVRTC options of every module: no floating-point contraction, so device arithmetic is what the source says
#: (the host harness in tests/linops/cuda_host compiles the same bodies with the same rule)
NVRTC_OPTIONS = ("--std=c++17", "--fmad=false")
SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
NUMPY_SCALAR = {torch.float32: np.float32, torch.float64: np.float64}
THREADS_PER_BLOCK = 256
#: kernels index threads with a 32-bit int; larger launches are split by the callers
MAX_THREADS = 2**31 - 1

_INCLUDE = re.compile(r'^#include "([^"]+)"\s*$', re.MULTILINE)


def kernel_sources() -> list[Path]:
    """Every CUDA source of the package (the files the compile checks cover)."""
    return sorted(KERNEL_DIR.glob("*.cu"))


def source(name: str) -> str:
    """The text of kernels/<name>.cu with its local includes inlined, so CuPy's cache key covers them."""
    text = (KERNEL_DIR / f"{name}.cu").read_text()
    return _INCLUDE.sub(lambda m: (KERNEL_DIR / m.group(1)).read_text(), text)


def device_index(device: torch.device) -> int:
    device = torch.device(device)
    return device.index if device.index is not None else torch.cuda.current_device()


@functools.cache
def _module(name: str, index: int):
    cp = cupy_module()
    with cp.cuda.Device(index):
        return cp.RawModule(code=source(name), options=NVRTC_OPTIONS)


def function(name: str, kernel: str, dtype: torch.dtype, device: torch.device):
    """The compiled kernel `<kernel>_<f32|f64>` of kernels/<name>.cu on `device` (a cupy.RawKernel)."""
    return _module(name, device_index(device)).get_function(f"{kernel}_{SUFFIX[dtype]}")


@functools.lru_cache(maxsize=32)
def _stream(index: int, handle: int):
    cp = cupy_module()
    torch_stream = torch.cuda.current_stream(index)
    if hasattr(cp.cuda.Stream, "from_external"):
        return cp.cuda.Stream.from_external(torch_stream)
    return cp.cuda.ExternalStream(handle, index)


def _torch_allocator(index: int):
    cp = cupy_module()
    device = torch.device("cuda", index)

    def allocate(size: int):
        buffer = torch.empty(size, dtype=torch.uint8, device=device)
        return cp.cuda.MemoryPointer(cp.cuda.UnownedMemory(buffer.data_ptr(), size, buffer, index), 0)

    return allocate


@contextlib.contextmanager
def on_torch_stream(device: torch.device):
    """CuPy on `device`, on torch's current stream there, allocating from torch's caching allocator."""
    cp = cupy_module()
    index = device_index(device)
    stream = _stream(index, torch.cuda.current_stream(index).cuda_stream)
    with cp.cuda.Device(index), stream, cp.cuda.using_allocator(_torch_allocator(index)):
        yield


def as_cupy(tensor: torch.Tensor):
    """A CuPy view of a CUDA tensor (DLPack, no copy); call inside `on_torch_stream`."""
    return cupy_module().from_dlpack(tensor.detach())


def _argument(value):
    if isinstance(value, torch.Tensor):
        if not value.is_contiguous():
            raise ValueError(f"kernel arguments must be contiguous, got a tensor with strides {value.stride()}")
        return as_cupy(value)
    if arrays.is_cupy_array(value):
        return value
    if isinstance(value, (bool, int)):
        return np.int32(value)
    if isinstance(value, np.generic):
        return value
    raise TypeError(f"kernel arguments are tensors, ints or numpy scalars, got {type(value).__name__}")


def launch(kernel, total: int, *args) -> None:
    """Run `kernel(total, *args)` with one thread per index 0 <= idx < total (inside `on_torch_stream`)."""
    if total > MAX_THREADS:
        raise ValueError(f"a launch of {total} threads exceeds the 32-bit thread index; split the batch")
    if total == 0:
        return
    blocks = (total + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
    kernel((blocks,), (THREADS_PER_BLOCK,), (np.int32(total), *(_argument(a) for a in args)))


def batch_chunks(n: int, threads_per_item: int, tile: int = 1):
    """Slices of range(n) whose launches stay within MAX_THREADS threads, when a thread serves `tile` items
    (ceil(len / tile) threads_per_item threads); every slice but the last has a multiple of `tile` items."""
    step = max(1, MAX_THREADS // max(1, threads_per_item)) * tile
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def tiles(n: int, tile: int) -> int:
    """ceil(n / tile)."""
    return -(-n // tile)
