"""The CuPy kernels on a CUDA device against the torch path and peers (the whole module is skipped without CUDA):

    python -m pytest benchmarks/test_gpu.py --benchmark-only --benchmark-group-by=group --benchmark-json=gpu.json

Radon, float32 parallel beam with n_detector = n, batch 1 and 32, forward and adjoint:

    radon128  128 x 128, 128 views over [0, 180)          radon512  512 x 512, 720 views over [0, 180)

  linops-cupy          the CuPy kernels: ray-driven gather forward, pixel-driven gather adjoint
  linops-cupy-scatter  the adjoint by atomic scatter (forward as linops-cupy)
  linops-torch         the stored CSR matrix on the GPU (torch.sparse.mm); radon128 only, since radon512's matrix has
                       ~377 M entries (6 GB in float32) and takes minutes to build on the host
  deepinv              physics.Tomography(circle=True, normalize=False) on the GPU: grid_sample rotations, adjoint by
                       autograd (its default)
  astra-cuda3d         ASTRA's cuda3d projector, parallel3d geometry with the batch as slices, data left on the GPU
                       (astra.experimental.direct_FP3D / direct_BP3D on DLPack tensors)
  astra-cuda2d         ASTRA's 2-D cuda projector (direct_FP2D / direct_BP2D on DLPack tensors), one image at a time

Blur, float32 512 x 512, Gaussian kernels 7 x 7 (sigma 1) and 25 x 25 (sigma 4), batch 1 and 32:

  circular  linops CircularBlur (cupy: direct for 7 x 7, cuFFT for 25 x 25; torch: torch.fft) vs deepinv BlurFFT
  reflect   linops Blur (cupy: direct / cuFFT; torch), SeparableBlur (cupy, torch) vs deepinv Blur (direct, use_fft)

Every result records in extra_info: the device, its peak memory bandwidth (memory clock x bus width, else a table
by name), the compulsory traffic `bytes` (input read once, output written once, plus our ray tables for Radon), the
achieved `GBps` = bytes / mean time, and `fraction_of_peak`. The issue's goal: Radon forward within 2x of the
bandwidth roofline (fraction_of_peak >= 0.5) and faster than ASTRA CUDA. Each call is followed by
torch.cuda.synchronize(); warm-up rounds absorb compilation, table and cuFFT-plan construction. Peers that are
not installed (or, for ASTRA, built without CUDA) are skipped. Our construction time is the group "gpu radon
construction".
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import linops
from linops.cuda import Backend, dispatch
from linops.cuda import blur as blur_kernels
from linops.cuda import radon as radon_kernels

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

RADON_CASES = {"radon128": (128, 128), "radon512": (512, 720)}
BATCHES = [1, 32]
DIRECTIONS = ["forward", "adjoint"]
RADON_PEERS = ["linops-cupy", "linops-cupy-scatter", "linops-torch", "deepinv", "astra-cuda3d", "astra-cuda2d"]
BLUR_KERNELS = {"7x7": (1.0, 7), "25x25": (4.0, 25)}
BLUR_SIZE = 512
ITEM = 4  # float32

#: peak memory bandwidth in GB/s (NVIDIA data sheets) by device name, where the driver reports no clock and bus width
PEAK_GBPS = {
    "H100 SXM": 3350,
    "H100 PCIe": 2000,
    "H100 NVL": 3900,
    "H200": 4800,
    "A100-SXM4-80GB": 2039,
    "A100-SXM4-40GB": 1555,
    "A100 80GB PCIe": 1935,
}


def _device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())


@functools.cache
def peak_bandwidth_gbps() -> float | None:
    """Peak DRAM bandwidth: 2 (double data rate) x memory clock x bus width, else the table, else None."""
    index = torch.cuda.current_device()
    try:
        rt = dispatch.cupy_module().cuda.runtime
        clock_khz = rt.deviceGetAttribute(rt.cudaDevAttrMemoryClockRate, index)
        bus_bits = rt.deviceGetAttribute(rt.cudaDevAttrGlobalMemoryBusWidth, index)
        if clock_khz > 0 and bus_bits > 0:
            return 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9
    except Exception:
        pass
    name = torch.cuda.get_device_name(index)
    return next((value for key, value in PEAK_GBPS.items() if key in name), None)


def _timed(benchmark, run, bytes_moved: int, rounds: int = 20):
    """Benchmark run() followed by a synchronisation and record the achieved bandwidth."""

    def synchronised():
        run()
        torch.cuda.synchronize()

    benchmark.pedantic(synchronised, rounds=rounds, iterations=1, warmup_rounds=3)
    if benchmark.stats is None:  # --benchmark-disable: ran once, nothing timed
        return
    mean = benchmark.stats.stats.mean
    peak = peak_bandwidth_gbps()
    gbps = bytes_moved / mean / 1e9
    benchmark.extra_info.update(
        device=torch.cuda.get_device_name(),
        bytes=bytes_moved,
        GBps=round(gbps, 1),
        peak_GBps=peak,
        fraction_of_peak=None if peak is None else round(gbps / peak, 3),
    )


# ----------------------------------------------------------------------------------------------
# Radon


def _angles(case) -> np.ndarray:
    n_angles = RADON_CASES[case][1]
    return linops.operators.tomography.full_range_angles_deg(n_angles)


@functools.lru_cache(maxsize=2)
def _radon(case) -> linops.Radon:
    n, _ = RADON_CASES[case]
    return linops.Radon((1, n, n), angles_deg=_angles(case), n_detector=n, device=_device())


def _radon_data(case, batch):
    n, n_angles = RADON_CASES[case]
    g = torch.Generator(device=_device()).manual_seed(0)
    x = torch.rand(batch, 1, n, n, generator=g, device=_device())
    y = torch.rand(batch, 1, n_angles, n, generator=g, device=_device())
    return x, y


def _radon_bytes(case, batch, peer) -> int:
    n, n_angles = RADON_CASES[case]
    data = batch * (n * n + n_angles * n) * ITEM
    if peer.startswith("linops-cupy"):
        data += radon_kernels.table_bytes(_radon(case))
    return data


def _linops_radon(case, direction, x, y, method=radon_kernels.AdjointMethod.GATHER):
    if dispatch.cupy_status().startswith("cupy not importable"):
        pytest.skip(dispatch.cupy_status())
    op = _radon(case)

    def run(fn, arg):
        with linops.cuda.backend(Backend.CUPY):
            return fn(arg)

    if direction == "forward":
        return lambda: run(op.apply, x)
    if method is radon_kernels.AdjointMethod.SCATTER:
        return lambda: radon_kernels.adjoint(op, y, method)
    return lambda: run(op.H.apply, y)


def _linops_torch_radon(case, direction, x, y):
    if case != "radon128":
        pytest.skip("the CSR matrix of radon512 (~377 M entries) is too large to build for a benchmark")
    op = _radon(case)

    def run(fn, arg):
        with linops.cuda.backend(Backend.TORCH):
            return fn(arg)

    if direction == "forward":
        return lambda: run(op.apply, x)
    return lambda: run(op.H.apply, y)


def _deepinv_radon(case, direction, x, y):
    dinv = pytest.importorskip("deepinv")
    n, _ = RADON_CASES[case]
    angles = torch.tensor(_angles(case), dtype=torch.float32)
    physics = dinv.physics.Tomography(angles, n, circle=True, normalize=False, device=_device())
    if direction == "forward":
        return lambda: physics.A(x)
    sinogram = physics.A(x)  # deepinv's layout (detector x angles)
    return lambda: physics.A_adjoint(sinogram)


def _astra_cuda():
    astra = pytest.importorskip("astra")
    if not astra.use_cuda():
        pytest.skip("ASTRA has no CUDA here")
    import astra.experimental

    return astra


def _astra3d_radon(case, direction, x, y):
    astra = _astra_cuda()
    n, _ = RADON_CASES[case]
    batch = x.shape[0]
    volume = astra.create_vol_geom(n, n, batch)  # rows, columns, slices: arrays (slices, rows, columns)
    projection = astra.create_proj_geom("parallel3d", 1.0, 1.0, batch, n, np.deg2rad(_angles(case)))
    projector = astra.create_projector("cuda3d", projection, volume)
    vol = x.reshape(batch, n, n).contiguous()
    proj = torch.empty(batch, len(_angles(case)), n, device=x.device)  # (detector rows, angles, columns)
    if direction == "forward":
        return lambda: astra.experimental.direct_FP3D(projector, vol, proj)
    return lambda: astra.experimental.direct_BP3D(projector, vol, proj)


def _astra2d_radon(case, direction, x, y):
    astra = _astra_cuda()
    n, _ = RADON_CASES[case]
    volume = astra.create_vol_geom(n, n)
    projection = astra.create_proj_geom("parallel", 1.0, n, np.deg2rad(_angles(case)))
    projector = astra.create_projector("cuda", projection, volume)
    images = [im[0].contiguous() for im in x]
    sinograms = [s[0].contiguous() for s in y]

    def forward():
        for image, sinogram in zip(images, sinograms):
            astra.experimental.direct_FP2D(projector, image, sinogram)

    def adjoint():
        for image, sinogram in zip(images, sinograms):
            astra.experimental.direct_BP2D(projector, image, sinogram)

    return forward if direction == "forward" else adjoint


RADON_MAKERS = {
    "linops-cupy": _linops_radon,
    "linops-cupy-scatter": lambda case, direction, x, y: _linops_radon(
        case, direction, x, y, radon_kernels.AdjointMethod.SCATTER
    ),
    "linops-torch": _linops_torch_radon,
    "deepinv": _deepinv_radon,
    "astra-cuda3d": _astra3d_radon,
    "astra-cuda2d": _astra2d_radon,
}


@pytest.mark.parametrize("peer", RADON_PEERS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("case", sorted(RADON_CASES))
def test_gpu_radon(benchmark, case, batch, direction, peer):
    if peer == "linops-cupy-scatter" and direction == "forward":
        pytest.skip("the scatter variant differs only in the adjoint")
    benchmark.group = f"gpu {case} batch={batch} {direction}"
    x, y = _radon_data(case, batch)
    run = RADON_MAKERS[peer](case, direction, x, y)
    _timed(benchmark, run, _radon_bytes(case, batch, peer), rounds=10 if case == "radon512" else 30)


@pytest.mark.parametrize("case", sorted(RADON_CASES))
def test_gpu_radon_construction(benchmark, case):
    """Operator construction (the CSR matrix, built on the host) plus the kernels' ray tables."""
    benchmark.group = "gpu radon construction"
    n, _ = RADON_CASES[case]

    def build():
        op = linops.Radon((1, n, n), angles_deg=_angles(case), n_detector=n, device=_device())
        radon_kernels.ray_tables(op.geometry, op.image_shape, op.dtype, op.device)
        torch.cuda.synchronize()

    benchmark.pedantic(build, rounds=1 if case == "radon512" else 3, iterations=1)


# ----------------------------------------------------------------------------------------------
# blur


@functools.lru_cache(maxsize=8)
def _blur(variant, size):
    sigma, taps = BLUR_KERNELS[size]
    kernel = linops.gaussian_kernel(sigma, size=taps).to(_device())
    shape = (1, BLUR_SIZE, BLUR_SIZE)
    if variant == "circular":
        return linops.CircularBlur(kernel, shape)
    if variant == "reflect":
        return linops.Blur(kernel, shape, "reflect")
    if variant == "reflect-separable":
        rows = linops.gaussian_kernel_1d(sigma, taps).to(_device())
        return linops.SeparableBlur(rows, rows, shape, "reflect")
    raise ValueError(variant)


def _deepinv_blur(variant, size, direction):
    dinv = pytest.importorskip("deepinv")
    sigma, taps = BLUR_KERNELS[size]
    kernel = linops.gaussian_kernel(sigma, size=taps).reshape(1, 1, taps, taps).to(_device())
    if variant == "circular":
        physics = dinv.physics.BlurFFT(img_size=(1, BLUR_SIZE, BLUR_SIZE), filter=kernel, device=_device())
    else:
        physics = dinv.physics.Blur(filter=kernel, padding="reflect", use_fft=variant == "reflect-fft",
                                    device=_device())  # fmt: skip
    return physics.A if direction == "forward" else physics.A_adjoint


BLUR_CASES = [
    ("circular", "linops-cupy", "circular"),
    ("circular", "linops-torch", "circular"),
    ("circular", "deepinv", "circular"),
    ("reflect", "linops-cupy", "reflect"),
    ("reflect", "linops-torch", "reflect"),
    ("reflect", "linops-cupy", "reflect-separable"),
    ("reflect", "linops-torch", "reflect-separable"),
    ("reflect", "deepinv", "reflect-direct"),
    ("reflect", "deepinv", "reflect-fft"),
]


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("size", sorted(BLUR_KERNELS))
@pytest.mark.parametrize(("group", "peer", "variant"), BLUR_CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_gpu_blur(benchmark, group, peer, variant, size, batch, direction):
    benchmark.group = f"gpu blur {group} {size} batch={batch} {direction}"
    x = torch.rand(batch, 1, BLUR_SIZE, BLUR_SIZE, generator=torch.Generator(device=_device()).manual_seed(0),
                   device=_device())  # fmt: skip
    bytes_moved = 2 * x.numel() * ITEM
    if peer == "deepinv":
        fn = _deepinv_blur(variant, size, direction)
        run = lambda: fn(x)
    else:
        if peer == "linops-cupy" and dispatch.cupy_status().startswith("cupy not importable"):
            pytest.skip(dispatch.cupy_status())
        op = _blur(variant, size)
        apply = op.apply if direction == "forward" else op.H.apply
        forced = Backend.CUPY if peer == "linops-cupy" else Backend.TORCH

        def run():
            with linops.cuda.backend(forced):
                return apply(x)

        if peer == "linops-cupy":
            run()
            benchmark.extra_info["plan"] = blur_kernels.plan_kind(op)
    _timed(benchmark, run, bytes_moved)
