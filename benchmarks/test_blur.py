"""Blur operators against deepinv's BlurFFT and Blur: same Gaussian 25 x 25 kernel, 256 x 256 float32
images, batch 1 and 16, forward and adjoint. Groups put the peers side by side:

    python -m pytest benchmarks/test_blur.py --benchmark-only --benchmark-group-by=group
"""

import pytest
import torch

import linops

H = W = 256
KERNEL = linops.gaussian_kernel(4.0, size=25)
BATCHES = [1, 16]
DIRECTIONS = ["forward", "adjoint"]


def _image(batch):
    return torch.rand(batch, 1, H, W, generator=torch.Generator().manual_seed(0))


def _ours(variant):
    shape = (1, H, W)
    if variant == "circular":
        return linops.CircularBlur(KERNEL, shape)
    if variant == "reflect-auto":
        return linops.Blur(KERNEL, shape, "reflect")
    if variant == "reflect-direct":
        return linops.Blur(KERNEL, shape, "reflect", method=linops.ConvolutionMethod.DIRECT)
    if variant == "reflect-separable":
        return linops.gaussian_blur(shape, 4.0, "reflect", size=25)
    raise ValueError(variant)


def _deepinv(variant):
    dinv = pytest.importorskip("deepinv")
    kernel = KERNEL.reshape(1, 1, 25, 25)
    if variant == "circular":
        physics = dinv.physics.BlurFFT(img_size=(1, H, W), filter=kernel)
    elif variant == "reflect-fft":
        physics = dinv.physics.Blur(filter=kernel, padding="reflect", use_fft=True)
    elif variant == "reflect-direct":
        physics = dinv.physics.Blur(filter=kernel, padding="reflect")
    else:
        raise ValueError(variant)
    return physics.A, physics.A_adjoint


CASES = [
    ("circular", "linops", "circular"),
    ("circular", "deepinv", "circular"),
    ("reflect", "linops", "reflect-auto"),
    ("reflect", "linops", "reflect-direct"),
    ("reflect", "linops", "reflect-separable"),
    ("reflect", "deepinv", "reflect-fft"),
    ("reflect", "deepinv", "reflect-direct"),
]


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(("family", "library", "variant"), CASES, ids=lambda v: v)
def test_blur(benchmark, family, library, variant, batch, direction):
    x = _image(batch)
    if library == "linops":
        op = _ours(variant)
        fn = op.apply if direction == "forward" else op.H.apply
    else:
        forward, adjoint = _deepinv(variant)
        fn = forward if direction == "forward" else adjoint
    benchmark.group = f"blur {family} batch={batch} {direction}"
    benchmark.extra_info.update(library=library, variant=variant)
    with torch.no_grad():
        out = benchmark(fn, x)
    assert out.shape == x.shape
