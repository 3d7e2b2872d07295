"""Matrix-free CuPy kernels for CUDA tensors, with the torch operators as the reference.

    linops.cuda.choose_backend(x)              # BackendChoice(backend=Backend.TORCH, reason='tensor on cpu')
    with linops.cuda.backend(Backend.TORCH):   # force the torch path (or Backend.CUPY)
        ...
    linops.normal_residual(A, x, y)            # A^H (A x - y), fused where a kernel exists (residual.py)

The operators import nothing from here: importing this package registers the kernels in the kernel table
(linops/backends.py) for device type "cuda", and an operator's `_apply` / `_adjoint` asks the table. Operators
with kernels, used automatically for float32/float64 CUDA tensors when CuPy imports and torch sees a device:

    Radon, FanBeamRadon        radon.py     forward (ray-driven gather) and its exact transpose (pixel-driven
                                            gather, or atomic scatter), Joseph's weights without a stored matrix
    Blur, SeparableBlur,       blur.py      direct summation for small kernels, cuFFT for large ones
    CircularBlur
    Mask, Diagonal             diagonal.py  fused with the data residual (normal_residual)

The CUDA sources are kernels/*.cu (float32 and float64 extern "C" kernels, one macro per file), compiled once per
device by NVRTC and cached (runtime.py); tensors cross to CuPy with DLPack on torch's current stream.
"""

from . import blur, diagonal, radon  # registers the kernels (CuPy is imported on first use)
from .dispatch import Backend, BackendChoice, backend, choose_backend, forced_backend, use_cupy
from .radon import AdjointMethod

__all__ = [
    "AdjointMethod", "Backend", "BackendChoice", "backend", "blur", "choose_backend", "diagonal", "forced_backend",
    "radon", "use_cupy",
]  # fmt: skip
