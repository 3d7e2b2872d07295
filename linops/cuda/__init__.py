"""Matrix-free CuPy kernels for CUDA tensors, with the torch operators as the reference.

    linops.cuda.choose_backend(x)              # BackendChoice(backend=Backend.TORCH, reason='tensor on cpu')
    with linops.cuda.backend(Backend.TORCH):   # force the torch path (or Backend.CUPY)
        ...
    linops.normal_residual(A, x, y)            # A^H (A x - y), fused where a rule exists (residual.py)

Operators with kernels, used automatically for float32/float64 CUDA tensors when CuPy imports:

    Radon, FanBeamRadon        radon.py     forward (ray-driven gather) and its exact transpose (pixel-driven
                                            gather, or atomic scatter), Joseph's weights without a stored matrix
    Blur, SeparableBlur,       blur.py      direct summation for small kernels, cuFFT for large ones
    CircularBlur
    Mask, Diagonal             diagonal.py  fused with the data residual (normal_residual)

The CUDA sources are kernels/*.cu (float32 and float64 extern "C" kernels, one macro per file), compiled once per
device by NVRTC and cached (runtime.py); tensors cross to CuPy with DLPack on torch's current stream.
"""

from .dispatch import Backend, BackendChoice, backend, choose_backend, forced_backend, use_cupy
from .radon import AdjointMethod

__all__ = ["AdjointMethod", "Backend", "BackendChoice", "backend", "choose_backend", "forced_backend", "use_cupy"]
