"""The matrix-free Radon projector against ASTRA CPU, deepinv and scikit-image, float32, one image:

    full256   256 x 256,   180 views over [0, 180), 256 bins
    full512   512 x 512,   360 views over [0, 180), 512 bins
    full1024  1024 x 1024, 720 views over [0, 180), 1024 bins  (ours matrix-free and ASTRA only)

    python -m pytest benchmarks/test_radon_matrix_free.py --benchmark-only --benchmark-group-by=group \
        --benchmark-json=benchmarks/results/radon_matrix_free_run1.json
    python benchmarks/radon_matrix_free_report.py   # the table over several runs (min and spread)

Groups ("radon <case> <what>"):
  first forward   ours: a fresh `Radon` (default method AUTO) applied once: construction, ray table and the
                  matrix-free forward, everything a user waits for before the first sinogram; numba's kernels
                  are compiled (or loaded from numba's cache) beforehand, their one-time cost is the group
                  "numba compile". Peers: one forward each (ASTRA with its projector created beforehand, as in
                  the issue's table), as the peer is normally used.
  forward / adjoint   later applies: ours matrix-free (warm) and, where the matrix fits, ours through the
                  stored sparse matrix (SPARSE, built beforehand: what AUTO settles on after enough applies).
Threads: "-1t" runs under torch.set_num_threads(1) (numba follows torch's setting), "-2t" under 2. ASTRA CPU
and scikit-image are single-threaded; deepinv uses torch's threads (2). The machine is shared with other jobs:
run the file several times, interleaved with other work, and report the minimum with the spread.

Peak memory: the group "peak rss" runs a first forward and adjoint of full1024 (and of full512 for the old
always-sparse behaviour) in a fresh process and records VmHWM from /proc/self/status in extra_info["peak_rss_mb"]
(not getrusage's ru_maxrss, which a child started by fork + exec inherits from its parent). Its first forward
includes importing numba and loading the compiled kernels from numba's cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from linops.operators.tomography import ProjectorMethod, Radon, full_range_angles_deg

CASES = {"full256": (256, 180), "full512": (512, 360), "full1024": (1024, 720)}
ROOT = Path(__file__).resolve().parents[1]


def _image(n):
    return torch.rand(1, 1, n, n, generator=torch.Generator().manual_seed(0))


def _sinogram(n, views):
    return torch.rand(1, 1, views, n, generator=torch.Generator().manual_seed(1))


def _radon(n, views, method=ProjectorMethod.AUTO):
    return Radon((1, n, n), angles_deg=full_range_angles_deg(views), n_detector=n, method=method)


@pytest.fixture(scope="module", autouse=True)
def compiled():
    """Compile (or load from numba's cache) the kernels once, outside every timing."""
    op = _radon(16, 8, ProjectorMethod.MATRIX_FREE)
    with torch.no_grad():
        op.H @ (op @ torch.rand(1, 1, 16, 16))
        op.H @ (op @ torch.rand(2, 1, 16, 16))


class Threads:
    def __init__(self, n):
        self.n, self.saved = n, torch.get_num_threads()

    def __enter__(self):
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved)


# ----------------------------------------------------------------------------------------------
# first forward


@pytest.mark.parametrize("threads", [1, 2], ids=["1t", "2t"])
@pytest.mark.parametrize("case", list(CASES))
def test_first_forward_ours(benchmark, case, threads):
    n, views = CASES[case]
    x = _image(n)
    benchmark.group = f"radon {case} first forward"
    benchmark.extra_info.update(peer=f"linops-first-{threads}t", n=n, views=views, threads=threads)

    def first():
        with torch.no_grad():
            return _radon(n, views) @ x

    with Threads(threads):
        benchmark.pedantic(first, rounds=3 if n < 1024 else 2, iterations=1)


def _astra_forward(kind, n, views):
    astra = pytest.importorskip("astra")
    volume = astra.create_vol_geom(n, n)
    projection = astra.create_proj_geom("parallel", 1.0, n, np.deg2rad(full_range_angles_deg(views)))
    projector = astra.create_projector(kind, projection, volume)

    def forward(image):
        data_id, sinogram = astra.create_sino(image, projector)
        astra.data2d.delete(data_id)
        return sinogram

    def adjoint(sinogram):
        data_id, image = astra.create_backprojection(sinogram, projector)
        astra.data2d.delete(data_id)
        return image

    return forward, adjoint


def _peer(peer, n, views):
    """(forward(image numpy or tensor), adjoint(...), input for forward, input for adjoint) of a peer."""
    x, y = _image(n), _sinogram(n, views)
    if peer.startswith("astra"):
        forward, adjoint = _astra_forward(peer.split("-")[1], n, views)
        return forward, adjoint, x[0, 0].numpy(), y[0, 0].numpy()
    if peer == "deepinv":
        dinv = pytest.importorskip("deepinv")
        angles = torch.tensor(full_range_angles_deg(views), dtype=torch.float32)
        physics = dinv.physics.Tomography(angles, n, circle=True, normalize=False)
        return physics.A, physics.A_adjoint, x, physics.A(x)
    if peer == "skimage":
        transform = pytest.importorskip("skimage.transform")
        angles = full_range_angles_deg(views)
        return (
            lambda im: transform.radon(im, theta=angles, circle=True),
            lambda s: transform.iradon(s, theta=angles, filter_name=None, circle=True),
            x[0, 0].numpy(),
            y[0, 0].numpy().T.copy(),
        )
    raise ValueError(peer)


PEERS = ["astra-linear", "astra-line", "deepinv", "skimage"]


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("case", list(CASES))
def test_first_forward_peer(benchmark, case, peer):
    n, views = CASES[case]
    if n > 512 and peer in ("deepinv", "skimage", "astra-line"):
        pytest.skip("1024 x 1024 compares with ASTRA linear only (the others take tens of seconds per call)")
    forward, _, x, _ = _peer(peer, n, views)
    benchmark.group = f"radon {case} first forward"
    benchmark.extra_info.update(peer=peer, n=n, views=views, threads=1 if peer != "deepinv" else 2)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        benchmark.pedantic(forward, args=(x,), rounds=3 if n < 1024 else 2, iterations=1, warmup_rounds=1)


# ----------------------------------------------------------------------------------------------
# later applies


@pytest.mark.parametrize("direction", ["forward", "adjoint"])
@pytest.mark.parametrize("method", ["matrix-free-1t", "matrix-free-2t", "sparse-1t", "sparse-2t"])
@pytest.mark.parametrize("case", list(CASES))
def test_later_ours(benchmark, case, method, direction):
    n, views = CASES[case]
    kind, threads = method.rsplit("-", 1)
    if kind == "sparse" and n > 512:
        pytest.skip("the matrix (20.5 GB) does not fit this machine's memory")
    op = _radon(n, views, ProjectorMethod.MATRIX_FREE if kind == "matrix-free" else ProjectorMethod.SPARSE)
    data = _image(n) if direction == "forward" else _sinogram(n, views)
    apply = op.apply if direction == "forward" else op.H.apply
    benchmark.group = f"radon {case} {direction}"
    benchmark.extra_info.update(peer=f"linops-{method}", n=n, views=views, nnz=op.nnz)
    with Threads(int(threads[0])), torch.no_grad():
        apply(data)  # builds the matrix (sparse) or the ray table
        benchmark.pedantic(apply, args=(data,), rounds=5 if n < 1024 else 2, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("direction", ["forward", "adjoint"])
@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("case", ["full256", "full512"])
def test_later_peer(benchmark, case, peer, direction):
    n, views = CASES[case]
    forward, adjoint, x, y = _peer(peer, n, views)
    benchmark.group = f"radon {case} {direction}"
    benchmark.extra_info.update(peer=peer, n=n, views=views)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        fn, arg = (forward, x) if direction == "forward" else (adjoint, y)
        benchmark.pedantic(fn, args=(arg,), rounds=5, iterations=1, warmup_rounds=1)


# ----------------------------------------------------------------------------------------------
# one-time costs and peak memory, in fresh processes


def _run(code: str, env: dict | None = None) -> dict:
    """Run `code` in a fresh interpreter with this checkout first on the path; it prints one JSON line."""
    full_env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **(env or {})}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env=full_env, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


COMPILE = """
import json, time, torch
from linops.operators.tomography import ProjectorMethod, Radon
op = Radon.full_range((1, 32, 32), 16, method=ProjectorMethod.MATRIX_FREE)
x = torch.rand(1, 1, 32, 32)
times = {}
for dtype in (torch.float32, torch.float64):
    a = op.to(dtype)
    xd, yd = x.to(dtype), torch.rand(1, *a.out_shape, dtype=dtype)
    start = time.perf_counter(); a @ xd; a.H @ yd; first = time.perf_counter() - start
    start = time.perf_counter(); a @ xd; a.H @ yd; second = time.perf_counter() - start
    times[str(dtype)] = first - second
print(json.dumps(times))
"""


@pytest.mark.parametrize("cache", ["cold", "cached"])
def test_numba_compile(benchmark, cache, tmp_path):
    """The kernels' one-time cost per process: compiling (cold: an empty numba cache) or loading the cache."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path)} if cache == "cold" else {}
    if cache == "cached":
        _run(COMPILE)  # make sure the cache exists
    benchmark.group = "numba compile"
    result = {}

    def run():
        result.update(_run(COMPILE, env))

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(peer=f"numba-{cache}", seconds_by_dtype=result)


PEAK = """
import json, time, torch
from linops.operators.tomography import ProjectorMethod, Radon, full_range_angles_deg
n, views, method = {n}, {views}, ProjectorMethod.{method}
torch.set_num_threads(2)
op = Radon((1, n, n), angles_deg=full_range_angles_deg(views), n_detector=n, method=method)
x = torch.rand(1, 1, n, n)
start = time.perf_counter(); y = op @ x; first = time.perf_counter() - start
start = time.perf_counter(); op.H @ y; adjoint = time.perf_counter() - start
status = open("/proc/self/status").read()
hwm = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")][0]
print(json.dumps({{"first_forward_s": first, "adjoint_s": adjoint, "peak_rss_mb": hwm / 1024,
                  "nnz": op.nnz, "matrix_gb": op.memory_bytes / 1e9, "has_matrix": op.has_matrix}}))
"""


@pytest.mark.parametrize(
    "case, method", [("full1024", "AUTO"), ("full512", "AUTO"), ("full512", "SPARSE")], ids=lambda v: str(v)
)
def test_peak_rss(benchmark, case, method):
    n, views = CASES[case]
    benchmark.group = "peak rss (first forward + adjoint, fresh process)"
    result = {}

    def run():
        result.update(_run(PEAK.format(n=n, views=views, method=method)))

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(peer=f"linops-{method.lower()}-{case}", **result)
