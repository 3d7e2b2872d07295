"""The matrix-free Joseph projector (numba kernels and the torch fallback) against the stored sparse matrix,
the cost model that chooses between them, and the sizes answered without building anything.

Exactness: a matrix-free apply to the identity (one image per pixel, all in one batch) is the dense A, and
the adjoint applied to the identity of the sinogram space is the dense A^T; both must equal the dense CSR
matrix bit for bit (every output entry is a single weight, computed by the same float64 operations and
rounded to the same dtype).
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import linops
from linops.backends import Kernel, KernelTable, kernels
from linops.operators.tomography import FanBeamRadon, ProjectorMethod, Radon, projector
from linops.testing import dottest

FREE, SPARSE, AUTO = ProjectorMethod.MATRIX_FREE, ProjectorMethod.SPARSE, ProjectorMethod.AUTO

GEOMETRIES = {
    # parallel beam: odd/even and non-square grids, exact ties (0, 45, 90 degrees), coarse and fine detectors
    "parallel-odd": lambda **k: Radon((1, 9, 7), angles_deg=np.arange(13) * 180 / 13, n_detector=11, **k),
    "parallel-even-ties": lambda **k: Radon((1, 8, 8), angles_deg=[0, 45, 90, 135, 180, 225, -45, 30], **k),
    "parallel-coarse-spacing": lambda **k: Radon(
        (1, 10, 13), angles_deg=np.arange(11) * 16.3, n_detector=6, detector_spacing=2.3, pixel_size=0.9, **k
    ),
    "parallel-fine-spacing": lambda **k: Radon(
        (1, 6, 11), angles_deg=np.arange(9) * 20.0 + 3, n_detector=40, detector_spacing=0.35, **k
    ),
    "parallel-single-row": lambda **k: Radon((1, 1, 9), angles_deg=[0.0, 20.0, 60.0, 90.0, 110.0], n_detector=12, **k),
    "tilt-series": lambda **k: Radon.tilt_series((1, 12, 9), 15, 60.0, detector_spacing=0.7, n_detector=18, **k),
    "fan": lambda **k: FanBeamRadon(
        (1, 11, 13), angles_deg=np.arange(17) * 360 / 17, source_distance=30.0, detector_distance=20.0,
        detector_spacing=1.3, **k
    ),  # fmt: skip
    "fan-close-source": lambda **k: FanBeamRadon(
        (1, 10, 10), angles_deg=np.arange(12) * 30 + 7, source_distance=7.2, detector_distance=0.0, n_detector=25, **k
    ),
}
DTYPES = [torch.float32, torch.float64]


def dense_rows(op, adjoint=False, one_at_a_time=False):
    """The dense A (or A^T) from applying op (or op.H) to every basis image: in one batch (the kernels' batched
    path), or one image per call (their single-image path)."""
    in_shape = op.out_shape if adjoint else op.in_shape
    n = math.prod(in_shape)
    eye = torch.eye(n, dtype=op.dtype).reshape(n, *in_shape)
    apply = (op.H if adjoint else op).apply
    with torch.no_grad():
        columns = torch.stack([apply(e) for e in eye]) if one_at_a_time else apply(eye)
    return columns.reshape(n, -1).T


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_matrix_free_entries_equal_the_sparse_matrix_bit_for_bit(name, dtype):
    free = GEOMETRIES[name](method=FREE, dtype=dtype)
    dense = free.to(dtype).matrix.to_dense()  # a copy of the same operator: builds the CSR matrix
    assert not free.has_matrix
    assert torch.equal(dense_rows(free), dense)
    assert torch.equal(dense_rows(free, adjoint=True), dense.T)
    assert torch.equal(dense_rows(free, one_at_a_time=True), dense)
    assert torch.equal(dense_rows(free, adjoint=True, one_at_a_time=True), dense.T)
    assert not free.has_matrix


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_torch_fallback_equals_the_sparse_matrix(name, monkeypatch):
    """Without numba (no kernel in the table) the chunked torch path computes the same entries."""
    monkeypatch.setattr(kernels, "_kernels", {})
    free = GEOMETRIES[name](method=FREE, dtype=torch.float64)
    dense = free.to(torch.float64).matrix.to_dense()
    assert torch.equal(dense_rows(free), dense)
    assert torch.equal(dense_rows(free, adjoint=True), dense.T)


STACKS = {
    "parallel-stack": lambda **k: Radon((2, 3, 12, 10), angles_deg=np.arange(7) * 26.0, detector_spacing=0.8, **k),
    "tilt-stack": lambda **k: Radon.tilt_series((1, 4, 11, 11), 9, 65.0, **k),
    "fan-stack": lambda **k: FanBeamRadon.full_range(
        (2, 2, 9, 12), 10, source_distance=25.0, detector_distance=9.0, **k
    ),
}


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-5), (torch.float64, 1e-13)], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(STACKS))
def test_batched_stacks_agree_with_the_sparse_matrix(name, dtype, rtol):
    free, sparse = STACKS[name](method=FREE, dtype=dtype), STACKS[name](method=SPARSE, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    for batch in [(), (1,), (3,), (2, 2)]:  # with C D > 1 every call has several columns; see the bit test for one
        x = torch.randn(*batch, *free.in_shape, generator=g, dtype=dtype)
        y = torch.randn(*batch, *free.out_shape, generator=g, dtype=dtype)
        torch.testing.assert_close(free @ x, sparse @ x, rtol=rtol, atol=rtol * float(x.abs().max()) * 10)
        torch.testing.assert_close(free.H @ y, sparse.H @ y, rtol=rtol, atol=rtol * float(y.abs().max()) * 10)
    assert not free.has_matrix and sparse.has_matrix


def test_matrix_free_dot_test_to_1e_12_in_float64():
    for op in (
        Radon.tilt_series((1, 64, 64), 64, 60.0, method=FREE, dtype=torch.float64),
        Radon.full_range((2, 3, 48, 40), 30, method=FREE, detector_spacing=0.9, dtype=torch.float64),
        FanBeamRadon.full_range((1, 50, 46), 40, source_distance=80.0, detector_distance=40.0, method=FREE,
                                dtype=torch.float64),  # fmt: skip
    ):
        assert dottest(op, batch=3) < 1e-12
        assert not op.has_matrix


def test_adjoint_does_not_depend_on_the_thread_count(monkeypatch):
    """Each pixel sums its rays in a fixed order (steep rays, then flat rays, each in ray order)."""
    from linops.cpu import radon as numba_radon

    monkeypatch.setattr(numba_radon, "MIN_SAMPLES_PER_THREAD", 1)  # two threads even for a small problem
    op = FanBeamRadon.full_range((1, 33, 30), 24, source_distance=40.0, detector_distance=20.0, method=FREE)
    y = torch.randn(2, *op.out_shape, generator=torch.Generator().manual_seed(1))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = op.H @ y
        torch.set_num_threads(2)
        two = op.H @ y
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


# ----------------------------------------------------------------------------------------------
# sizes without building


def test_step_ranges_equal_a_brute_force_scan_including_near_axis_rays():
    """touch / inner ranges of the ray table against evaluating lower(i) at every step; the views at
    (almost) 0 and 90 degrees have zero or tiny rates, where the estimate falls back to bisection."""
    angles = [0.0, 1e-12, 45.0, 90.0 - 1e-11, 90.0, 180.0 - 1e-13, 33.3, -71.0]
    for op in (
        Radon((1, 23, 17), angles_deg=angles, n_detector=41, detector_spacing=0.5),
        FanBeamRadon.full_range((1, 15, 20), 23, source_distance=15.0, detector_distance=3.0, n_detector=37),
    ):
        table = op.ray_table
        H, W = op.image_shape
        n_steps = torch.where(table.steep, H, W)[:, None]
        n_across = torch.where(table.steep, W, H)[:, None]
        steps = torch.arange(max(H, W))
        position = table.rate[:, None] * steps.double()
        position += table.offset[:, None]
        lower = torch.floor(position).long()
        valid = steps < n_steps
        for (start, stop), (a, b) in (
            ((table.touch_start, table.touch_stop), (-1, n_across - 1)),
            ((table.inner_start, table.inner_stop), (0, n_across - 2)),
        ):
            scan = valid & (lower >= a) & (lower <= b)
            in_range = (steps >= start[:, None]) & (steps < stop[:, None])
            assert torch.equal(scan, in_range)


@pytest.mark.parametrize("name", sorted(GEOMETRIES) + sorted(STACKS))
def test_nnz_and_memory_bytes_are_exact_without_building(name):
    factory = {**GEOMETRIES, **STACKS}[name]
    op = factory(dtype=torch.float64)
    nnz, memory = op.nnz, op.memory_bytes
    assert not op.has_matrix
    built = factory(method=SPARSE, dtype=torch.float64)
    assert built.matrix.values().numel() == nnz == built.matrix_t.values().numel()
    m, n = built.matrix.shape
    assert memory == 2 * nnz * (8 + 4) + (m + n + 2) * 4
    assert op.to(torch.float32).memory_bytes == 2 * nnz * (4 + 4) + (m + n + 2) * 4


def test_nnz_of_a_large_geometry_is_counted_without_building():
    """1024 x 1024 with 720 views: the count takes a fraction of a second and allocates O(rays)."""
    op = Radon.full_range((1, 1024, 1024), 720)
    assert 1.2e9 < op.nnz < 2 * 720 * 1024 * 1024
    assert op.memory_bytes > 8 * op.nnz and not op.has_matrix


# ----------------------------------------------------------------------------------------------
# the choice of method


def test_forced_methods():
    x = torch.rand(1, 16, 16)
    free, sparse = Radon.full_range((1, 16, 16), 10, method=FREE), Radon.full_range((1, 16, 16), 10, method=SPARSE)
    for _ in range(50):
        free.H @ (free @ x)
    assert not free.has_matrix and free.method_for(1) is FREE
    assert sparse.method_for(1) is SPARSE and not sparse.has_matrix
    sparse @ x
    assert sparse.has_matrix


def _model(monkeypatch, free, sparse, build_ns):
    """Cost constants for the test: the torch fallback (no kernel in the table) with the given costs."""
    monkeypatch.setattr(kernels, "_kernels", {})
    monkeypatch.setattr(projector, "TORCH_MATRIX_FREE_COST", projector.ApplyCost(*free))
    monkeypatch.setattr(projector, "SPARSE_COST", projector.ApplyCost(*sparse))
    monkeypatch.setattr(projector, "BUILD_NS_PER_ENTRY", build_ns)


def test_auto_builds_once_the_matrix_free_extra_time_reaches_the_build_time(monkeypatch):
    """Rent or buy: AUTO builds at the first apply at which the modelled extra time of the matrix-free applies
    so far, plus this one's, reaches the modelled build time (matrix-free minus sparse, ns per entry)."""
    _model(monkeypatch, free=((3.0, 2.0), (6.0, 2.0)), sparse=((1.0, 1.0), (2.0, 1.0)), build_ns=25.0)
    op = Radon.full_range((1, 12, 12), 8)
    # extra per apply to one image: forward (3 + 2) - (1 + 1) = 3, adjoint (6 + 2) - (2 + 1) = 5
    regret, built_at = 0, None
    for step in range(10):
        adjoint = step % 2 == 1
        extra = 5 if adjoint else 3
        expected = SPARSE if op.has_matrix or regret + extra >= 25 else FREE
        assert op.method_for(1, adjoint) is expected
        op.H @ torch.rand(*op.out_shape) if adjoint else op @ torch.rand(*op.in_shape)
        assert op.has_matrix == (expected is SPARSE)
        if expected is FREE:
            regret += extra
        elif built_at is None:
            built_at = step
    assert built_at == 6  # 3 + 5 + 3 + 5 + 3 + 5 = 24, and 24 + 3 >= 25


def test_auto_builds_at_once_for_a_large_batch(monkeypatch):
    _model(monkeypatch, free=((3.0, 2.0), (6.0, 2.0)), sparse=((1.0, 1.0), (2.0, 1.0)), build_ns=25.0)
    op = Radon.full_range((1, 12, 12), 8)
    # the extra of a forward on B images is (3 + 2 B) - (1 + B) = 2 + B: 25 from B = 23 on
    assert op.method_for(22) is FREE and op.method_for(23) is SPARSE
    op @ torch.rand(23, 1, 12, 12)
    assert op.has_matrix


def test_auto_never_builds_what_does_not_fit_its_memory_budget(monkeypatch):
    _model(monkeypatch, free=((3.0, 0.0), (3.0, 0.0)), sparse=((1.0, 0.0), (1.0, 0.0)), build_ns=0.0)
    op = Radon.full_range((1, 16, 16), 10)
    budget = int(op.build_bytes / projector.AUTO_MEMORY_FRACTION)
    monkeypatch.setattr(projector, "available_memory", lambda: budget - 1)
    x = torch.rand(1, 16, 16)
    for _ in range(3):
        op @ x
    assert not op.has_matrix
    monkeypatch.setattr(projector, "available_memory", lambda: budget + 1)
    op @ x
    assert op.has_matrix


def test_building_what_does_not_fit_raises_and_names_the_size_and_the_matrix_free_option(monkeypatch):
    op = Radon.full_range((1, 32, 32), 20, method=SPARSE)
    monkeypatch.setattr(projector, "available_memory", lambda: op.build_bytes - 1)
    with pytest.raises(MemoryError, match=r"need .* MB to build \(\d+ entries.*ProjectorMethod\.MATRIX_FREE"):
        op @ torch.rand(1, 32, 32)
    with pytest.raises(MemoryError, match="is available"):
        _ = op.matrix
    assert not op.has_matrix
    monkeypatch.setattr(projector, "available_memory", lambda: op.build_bytes)
    op @ torch.rand(1, 32, 32)
    assert op.has_matrix


def test_method_must_be_a_projector_method():
    with pytest.raises(TypeError, match=r"method must be one of ProjectorMethod.AUTO, .*, got 'sparse'"):
        Radon.full_range((1, 8, 8), 4, method="sparse")


def test_conversions_drop_derived_state_and_keep_the_method():
    op = Radon.full_range((1, 12, 12), 6, method=SPARSE)
    op @ torch.rand(1, 12, 12)
    assert op.has_matrix and "ray_table" in vars(op)
    converted = op.to(torch.float64)
    assert converted.method is SPARSE and not converted.has_matrix and "ray_table" not in vars(converted)
    assert converted.matrix.dtype == torch.float64


def test_an_operator_in_use_pickles():
    """Workers (Dask) receive operators by pickle: the derived state holds no lock or compiled object."""
    import pickle

    op = FanBeamRadon.full_range((1, 10, 9), 6, source_distance=20.0, detector_distance=4.0)
    x = torch.rand(1, 10, 9)
    y = op @ x
    op.H @ y
    assert "_usage" in vars(op) and "ray_table" in vars(op)
    torch.testing.assert_close(pickle.loads(pickle.dumps(op)) @ x, y, rtol=0, atol=0)
    assert op.matrix.shape == op.shape  # and once the matrix is built (a copy drops it: derived data is
    # rebuilt on demand, so the copy's adjoint may run matrix-free and sum in another order)
    torch.testing.assert_close(pickle.loads(pickle.dumps(op)).H @ y, op.H @ y, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# the kernel table


def test_kernel_table_looks_up_along_the_mro_with_availability_and_predicate():
    table = KernelTable()
    calls = []
    base = Kernel("base", lambda op, x: calls.append("base"), lambda op, y: None)
    missing = Kernel("missing", lambda op, x: None, lambda op, y: None, available=lambda: "pkg not importable")
    picky = Kernel("picky", lambda op, x: None, lambda op, y: None, accepts=lambda op, x: x.dtype == torch.float64)
    table.register(linops.LinearOperator, "cpu", base)
    table.register(Radon, "cpu", missing)
    table.register(Radon, "cpu", picky)
    op = Radon.full_range((1, 8, 8), 4)
    assert table.lookup(op, torch.zeros(1)) is base
    assert table.lookup(op, torch.zeros(1, dtype=torch.float64)) is picky
    assert table.lookup(op, torch.zeros(1, device="meta")) is None
    assert [k.backend for k in table.registered(Radon, "cpu")] == ["missing", "picky", "base"]
    assert table.explain(op)[0] == ("missing", "pkg not importable")
    with pytest.raises(TypeError, match="takes a class, a device type"):
        table.register("Radon", "cpu", base)


def test_the_numba_kernel_is_registered_for_projectors_on_the_cpu():
    op = FanBeamRadon.full_range((1, 8, 8), 4, source_distance=20.0, detector_distance=5.0)
    kernel = kernels.lookup(op, torch.zeros(1))
    assert kernel is linops.cpu.RADON and kernel.backend == "numba"
    assert linops.cpu.status().startswith("numba ")


@pytest.mark.slow
def test_importing_linops_and_counting_do_not_import_numba():
    """numba (and its compile or cache load) is paid on the first matrix-free apply, not on `import linops`."""
    code = (
        "import sys, torch, linops\n"
        "op = linops.Radon.full_range((1, 8, 8), 4)\n"
        "op.nnz, op.memory_bytes\n"
        "assert 'numba' not in sys.modules\n"
        "op @ torch.rand(1, 8, 8)\n"
        "assert 'numba' in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=root)


def test_a_kernel_keeps_the_callers_torch_thread_count():
    """numba's OpenMP layer shares the runtime with torch; its first parallel region used to reset torch's
    thread count (1 -> the core count), so a Dask worker set to one thread ran on all and its slices no
    longer matched the serial run bit for bit. Fresh process: the reset happens once per process."""
    import subprocess
    import sys

    pytest.importorskip("numba")
    code = (
        "import torch, linops\n"
        "torch.set_num_threads(1)\n"
        "A = linops.Radon((1, 20, 20), angles_deg=torch.linspace(-60, 60, 9, dtype=torch.float64),\n"
        "                 method=linops.ProjectorMethod.MATRIX_FREE)\n"
        "A.H @ (A @ torch.rand(1, 20, 20))\n"
        "print(torch.get_num_threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
