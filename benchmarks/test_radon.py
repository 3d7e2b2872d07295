"""Parallel-beam Radon transform against its peers, float32, batch 1 and 16, forward and adjoint:

    tilt128  128 x 128 image, 128 views uniformly over [-60, 60] degrees (ends included), 128 bins
    full256  256 x 256 image, 180 views over [0, 180) degrees, 256 bins

    python -m pytest benchmarks/test_radon.py --benchmark-only --benchmark-group-by=group

Groups put the peers side by side ("radon <case> batch=<b> <direction>"). Peers, as each is normally used:
  linops   Radon: Joseph's matrix and its transpose as CSR, one sparse product per call for the whole batch;
           "linops-1-thread" runs it under torch.set_num_threads(1): on a shared, oversubscribed machine
           MKL's two-thread sparse product waits on descheduled threads and is slower than one thread
  deepinv  physics.Tomography(circle=True, normalize=False): rotations by grid_sample; its default adjoint is
           autograd through the forward (exact)
  skimage  transform.radon(circle=True) and, as the adjoint, iradon(filter_name=None) (an unfiltered
           backprojection scaled by pi / (2 n_angles)), one image at a time
  pylops   signalprocessing.Radon2D (numba, linear interpolation) as a slant stack with slopes tan(theta):
           the projection is R.H, the backprojection R; it cannot express views near 90 degrees, so full256 skips it
  astra    CPU projectors 'linear' (Joseph-like) and 'line' (ray length) via create_sino / create_backprojection,
           one image at a time
Our construction time is the group "radon construction". Libraries that are not installed are skipped.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import torch

from linops.operators.tomography import Radon, full_range_angles_deg, tilt_series_angles_deg

CASES = {
    "tilt128": (128, tilt_series_angles_deg(128, 60.0)),
    "full256": (256, full_range_angles_deg(180)),
}
BATCHES = [1, 16]
DIRECTIONS = ["forward", "adjoint"]
PEERS = ["linops", "linops-1-thread", "deepinv", "skimage", "pylops", "astra-linear", "astra-line"]


def _images(n, batch):
    return torch.rand(batch, 1, n, n, generator=torch.Generator().manual_seed(0))


def _sinograms(n, n_angles, batch):
    return torch.rand(batch, 1, n_angles, n, generator=torch.Generator().manual_seed(1))


@functools.lru_cache(maxsize=2)
def _ours(case):
    n, angles = CASES[case]
    return Radon((1, n, n), angles_deg=angles, n_detector=n)


def _linops(case, direction, x, y):
    op = _ours(case)
    if direction == "forward":
        return lambda: op.apply(x)
    return lambda: op.H.apply(y)


def _deepinv(case, direction, x, y):
    dinv = pytest.importorskip("deepinv")
    n, angles = CASES[case]
    physics = dinv.physics.Tomography(torch.tensor(angles, dtype=torch.float32), n, circle=True, normalize=False)
    if direction == "forward":
        return lambda: physics.A(x)
    sinogram = physics.A(x)  # deepinv's own layout (detector x angles)
    return lambda: physics.A_adjoint(sinogram)


def _skimage(case, direction, x, y):
    transform = pytest.importorskip("skimage.transform")
    _, angles = CASES[case]
    images = [im[0].numpy() for im in x]
    sinograms = [sino[0].numpy().T.copy() for sino in y]  # skimage's layout: (n_detector, n_angles)

    def forward():
        return [transform.radon(im, theta=angles, circle=True) for im in images]

    def adjoint():
        return [transform.iradon(s, theta=angles, filter_name=None, circle=True) for s in sinograms]

    return forward if direction == "forward" else adjoint


def _pylops(case, direction, x, y):
    signalprocessing = pytest.importorskip("pylops.signalprocessing")
    pytest.importorskip("numba")
    n, angles = CASES[case]
    if np.max(np.abs(angles)) > 75:
        pytest.skip("pylops Radon2D is a slant stack t = t0 + tan(theta) h: views near 90 degrees are inexpressible")
    axis = np.arange(n, dtype=np.float64) - (n - 1) / 2
    slopes = np.tan(np.deg2rad(angles))
    op = signalprocessing.Radon2D(axis, axis, slopes, kind="linear", engine="numba", dtype="float32")
    images = [im[0].numpy() for im in x]
    sinograms = [sino[0].numpy() for sino in y]
    op.H @ images[0]  # numba compiles on first use
    op @ sinograms[0]

    def forward():
        return [op.H @ im for im in images]

    def adjoint():
        return [op @ s for s in sinograms]

    return forward if direction == "forward" else adjoint


def _astra(kind):
    def make(case, direction, x, y):
        astra = pytest.importorskip("astra")
        n, angles = CASES[case]
        volume = astra.create_vol_geom(n, n)
        projection = astra.create_proj_geom("parallel", 1.0, n, np.deg2rad(angles))
        projector = astra.create_projector(kind, projection, volume)
        images = [im[0].numpy() for im in x]
        sinograms = [sino[0].numpy() for sino in y]

        def forward():
            out = []
            for im in images:
                data_id, sinogram = astra.create_sino(im, projector)
                astra.data2d.delete(data_id)
                out.append(sinogram)
            return out

        def adjoint():
            out = []
            for s in sinograms:
                data_id, image = astra.create_backprojection(s, projector)
                astra.data2d.delete(data_id)
                out.append(image)
            return out

        return forward if direction == "forward" else adjoint

    return make


MAKERS = {
    "linops": _linops,
    "linops-1-thread": _linops,
    "deepinv": _deepinv,
    "skimage": _skimage,
    "pylops": _pylops,
    "astra-linear": _astra("linear"),
    "astra-line": _astra("line"),
}


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("peer", PEERS)
def test_radon(benchmark, peer, case, batch, direction):
    n, angles = CASES[case]
    x, y = _images(n, batch), _sinograms(n, len(angles), batch)
    threads = torch.get_num_threads()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        fn = MAKERS[peer](case, direction, x, y)
        benchmark.group = f"radon {case} batch={batch} {direction}"
        benchmark.extra_info.update(peer=peer, n=n, n_angles=len(angles))
        try:
            if peer == "linops-1-thread":
                torch.set_num_threads(1)
            fn()  # warm-up outside the timing
            benchmark(fn)
        finally:
            torch.set_num_threads(threads)


@pytest.mark.parametrize("case", list(CASES))
def test_radon_construction(benchmark, case):
    """Building Joseph's matrix and its transpose (float64 weights stored as float32)."""
    n, angles = CASES[case]
    benchmark.group = "radon construction"
    op = benchmark.pedantic(Radon, args=((1, n, n),), kwargs=dict(angles_deg=angles, n_detector=n), rounds=3)
    benchmark.extra_info.update(nnz=op.nnz, memory_mb=op.memory_bytes / 2**20)
