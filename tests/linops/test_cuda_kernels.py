"""The CuPy kernels (linops.cuda): compile checks, dispatch, host-harness numerics, and GPU parity.

Without a GPU:
  - every kernels/*.cu compiles with nvcc (-c, sm_80) and with NVRTC under the runtime's own options, and defines
    every kernel the Python side launches, in float32 and float64 (skipped when nvcc / NVRTC is absent);
  - the dispatch picks torch for CPU tensors and says why; forcing either backend works or says why not;
  - tests/linops/cuda_host/harness.cu compiles the same kernel bodies for the host (nvcc, a shared library loaded with
    ctypes). `host_kernels()` then runs the operators' whole CuPy code path on the CPU: the hooks take the kernel
    branch, the launcher calls the host library for every thread index, cupy.fft is played by torch.fft. So the
    Joseph weights, the gathers and scatters, the padding tables, the chunking and the argument order are all
    checked here against the torch reference, by dot tests, autograd and exact-transpose checks.
With a GPU (marked gpu): the CuPy path against the torch path, dot tests, autograd and gradgradcheck, float64,
CuPy arrays in and out, torch streams, no recompilation.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import linops
from linops.backends import kernels
from linops.cuda import blur as blur_kernels
from linops.cuda import dispatch, runtime
from linops.cuda import radon as radon_kernels
from linops.cuda.dispatch import Backend
from linops.operators.tomography.projector import JosephProjector
from linops.testing import dottest, entries, random_like_input, random_like_output


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


HARNESS = Path(__file__).parent / "cuda_host" / "harness.cu"
NVCC = shutil.which("nvcc")
ARCH = "80"
DTYPES = [torch.float32, torch.float64]
#: the extern "C" kernels (without the _f32 / _f64 suffix) each source must define: what the Python side launches
KERNELS = {
    "radon": ["radon_forward", "radon_adjoint_scatter", "radon_adjoint_gather"],
    "blur": ["conv_forward", "conv_adjoint", "pad_embed", "fold"],
    "diagonal": ["diagonal_residual", "mask_residual"],
}
KERNEL_TYPES = (JosephProjector, linops.Blur, linops.SeparableBlur, linops.CircularBlur)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|, in float64 (complex128 for complex tensors)."""
    wide = torch.complex128 if a.is_complex() or b.is_complex() else torch.float64
    a, b = a.to(wide), b.to(wide)
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def parity_tol(dtype) -> float:
    """Kernel versus torch reference: a few float32 roundings of the largest value, or float64's."""
    return 5e-6 if dtype == torch.float32 else 1e-12


# ----------------------------------------------------------------------------------------------
# compile checks


def _sources():
    return [p.stem for p in runtime.kernel_sources()]


def test_every_source_is_checked():
    assert sorted(_sources()) == sorted(KERNELS), "a kernels/*.cu file has no entry in KERNELS (or vice versa)"


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_compiles_with_nvcc(name, tmp_path):
    if NVCC is None:
        pytest.skip("nvcc not on PATH: cannot compile the CUDA sources here")
    source = runtime.KERNEL_DIR / f"{name}.cu"
    command = [NVCC, "-c", f"-arch=sm_{ARCH}", "-std=c++17", "--fmad=false", f"-I{runtime.KERNEL_DIR}"]
    done = subprocess.run([*command, str(source), "-o", str(tmp_path / f"{name}.o")], capture_output=True, text=True)
    assert done.returncode == 0, f"nvcc failed on {source.name}:\n{done.stderr}"


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_compiles_with_nvrtc(name):
    """The text CuPy compiles at run time (includes inlined), with the runtime's options, for compute_80."""
    nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc", reason="CuPy's NVRTC binding not importable")
    try:
        program = nvrtc.createProgram(runtime.source(name), f"{name}.cu", [], [])
    except Exception as error:  # the NVRTC library itself missing
        pytest.skip(f"NVRTC not usable: {error}")
    try:
        nvrtc.compileProgram(program, [*runtime.NVRTC_OPTIONS, f"-arch=compute_{ARCH}"])
    except Exception as error:
        pytest.fail(f"NVRTC failed on {name}.cu: {error}\n{nvrtc.getProgramLog(program)}")
    ptx = nvrtc.getPTX(program)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    entries_ = set(re.findall(r"\.entry\s+(\w+)", ptx))
    expected = {f"{kernel}_{suffix}" for kernel in KERNELS[name] for suffix in ("f32", "f64")}
    assert expected <= entries_, f"missing kernels in {name}.cu: {sorted(expected - entries_)}"


# ----------------------------------------------------------------------------------------------
# dispatch


def test_cpu_tensors_take_torch_and_say_why():
    choice = linops.cuda.choose_backend(torch.zeros(3))
    assert choice.backend is Backend.TORCH and choice.reason == "tensor on cpu"
    assert not linops.cuda.use_cupy(torch.zeros(3))
    complex_choice = linops.cuda.choose_backend(torch.zeros(3, dtype=torch.complex64))
    assert "tensor on cpu" in complex_choice.reason and "complex64" in complex_choice.reason


def test_forcing_a_backend():
    x = torch.zeros(3)
    with linops.cuda.backend(Backend.TORCH):
        assert linops.cuda.choose_backend(x) == dispatch.BackendChoice(Backend.TORCH, "forced torch")
        with linops.cuda.backend("cupy"):
            assert linops.cuda.forced_backend() is Backend.CUPY
            with pytest.raises(RuntimeError, match="forced but the CuPy kernels cannot run: tensor on cpu"):
                linops.cuda.choose_backend(x)
            with pytest.raises(RuntimeError, match="tensor on cpu"):
                linops.Radon.full_range((1, 8, 8), 4) @ torch.zeros(1, 8, 8)
        assert linops.cuda.forced_backend() is Backend.TORCH
    assert linops.cuda.forced_backend() is Backend.AUTO
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        with linops.cuda.backend("gpu"):
            pass


def test_cuda_tensors_report_cupy_state(monkeypatch):
    """A CUDA tensor (a stub: only device and dtype are read) takes CuPy when it imports, else says why not."""
    cuda_tensor = SimpleNamespace(device=torch.device("cuda", 0), dtype=torch.float32)
    monkeypatch.setattr(dispatch, "_cupy_import", lambda: (None, "cupy not importable: ImportError: no cupy"))
    choice = linops.cuda.choose_backend(cuda_tensor)
    assert choice == dispatch.BackendChoice(Backend.TORCH, "cupy not importable: ImportError: no cupy")
    assert not linops.cuda.use_cupy(cuda_tensor)
    monkeypatch.setattr(dispatch, "_cupy_import", lambda: (SimpleNamespace(__version__="14.2.0"), None))
    choice = linops.cuda.choose_backend(cuda_tensor)
    assert choice == dispatch.BackendChoice(Backend.CUPY, "CUDA tensor and cupy 14.2.0 importable")
    assert linops.cuda.use_cupy(cuda_tensor)
    with linops.cuda.backend(Backend.TORCH):
        assert not linops.cuda.use_cupy(cuda_tensor)


def test_cpu_use_never_imports_cupy():
    code = (
        "import sys, torch, linops\n"
        "A = linops.Radon.full_range((1, 8, 8), 4)\n"
        "B = linops.Blur(torch.ones(3, 3), (1, 8, 8), 'reflect')\n"
        "x = torch.rand(2, 1, 8, 8)\n"
        "A.H @ (A @ x); B.H @ (B @ x); linops.normal_residual(A, x, A @ x)\n"
        "assert 'cupy' not in sys.modules, 'cupy imported for CPU tensors'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


# ----------------------------------------------------------------------------------------------
# normal_residual on the torch path


def _residual_cases(dtype):
    g = torch.Generator().manual_seed(0)
    mask = linops.Mask(torch.rand(2, 6, 7, generator=g) > 0.4, dtype=dtype)
    diagonal = linops.Diagonal(torch.rand(1, 6, 7, generator=g, dtype=dtype), (2, 6, 7))
    radon = linops.Radon((1, 6, 7), angles_deg=[0.0, 30.0, 100.0], dtype=dtype)
    blur = linops.Blur(torch.rand(3, 3, generator=g, dtype=dtype), (2, 6, 7), "reflect")
    return {"mask": mask, "diagonal": diagonal, "radon": radon, "blur": blur, "composition": mask @ blur}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_normal_residual_matches_the_generic_expression(dtype):
    g = torch.Generator().manual_seed(1)
    for name, A in _residual_cases(dtype).items():
        x, y = random_like_input(A, (3,), g), random_like_output(A, (3,), g)
        expected = A.H @ (A @ x - y)
        assert linops.normal_residual(A, x, y).shape == x.shape
        assert rel_err(linops.normal_residual(A, x, y), expected) < parity_tol(dtype), name
        assert rel_err(linops.normal_residual(A, x[0], y[0]), expected[0]) < parity_tol(dtype), name


def test_normal_residual_is_differentiable_and_checks_shapes():
    A = _residual_cases(torch.float64)["diagonal"]
    x = torch.rand(2, *A.in_shape, dtype=torch.float64, requires_grad=True, generator=gen(100))
    y = torch.rand(2, *A.out_shape, dtype=torch.float64, generator=gen(101))
    r = linops.normal_residual(A, x, y)
    (g,) = torch.autograd.grad(r.sum(), x)
    assert torch.allclose(g, A.H @ (A @ torch.ones_like(x)))
    with pytest.raises(ValueError, match=r"expects y of shape \(2, 2, 6, 7\)"):
        linops.normal_residual(A, x, y[0])


def test_normal_residual_rules_are_a_table():
    from linops.residual import normal_residual_rules

    mask_rules = list(normal_residual_rules.candidates(_residual_cases(torch.float32)["mask"]))
    assert [r.__name__ for r in mask_rules] == ["_mask_residual", "_diagonal_residual"]  # most specific first
    assert list(normal_residual_rules.candidates(linops.Identity((2, 3)))) == []


# ----------------------------------------------------------------------------------------------
# the host harness: the kernel bodies compiled for the CPU


@pytest.fixture(scope="session")
def host_library(tmp_path_factory):
    if NVCC is None:
        pytest.skip("nvcc not on PATH: cannot build the host harness of the kernel bodies")
    library = tmp_path_factory.mktemp("cuda_host") / "libkernels_host.so"
    command = [
        NVCC, "-shared", "-std=c++17", "-O2", "--fmad=false", f"-arch=sm_{ARCH}",
        "-Xcompiler", "-fPIC,-ffp-contract=off", f"-I{runtime.KERNEL_DIR}", str(HARNESS), "-o", str(library),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"building the host harness failed:\n{done.stderr}")
    return ctypes.CDLL(str(library))


def _host_argument(value):
    if isinstance(value, torch.Tensor):
        if value.device.type != "cpu" or not value.is_contiguous():
            raise ValueError(f"host kernels take contiguous CPU tensors, got {value.device}, strides {value.stride()}")
        return ctypes.c_void_p(value.data_ptr())
    if isinstance(value, (bool, int, np.integer)):
        return ctypes.c_int(int(value))
    if isinstance(value, np.float32):
        return ctypes.c_float(float(value))
    if isinstance(value, np.float64):
        return ctypes.c_double(float(value))
    raise TypeError(f"unexpected kernel argument {type(value).__name__}")


def _host_launch(kernel, total, *args):
    """runtime.launch on the host: the kernel body for idx = 0 .. total - 1 (the host library loops)."""
    if total > runtime.MAX_THREADS:
        raise ValueError(f"a launch of {total} threads exceeds the 32-bit thread index")
    kernel(ctypes.c_int(total), *(_host_argument(a) for a in args))
    _host_launch.count += 1


_host_launch.count = 0


_FAKE_CUPY = SimpleNamespace(
    fft=SimpleNamespace(rfft2=torch.fft.rfft2, irfft2=lambda a, s: torch.fft.irfft2(a, s=s)),
    __version__="host harness",
)


def _cuda_kernels_for_cpu_tensors(registered):
    """kernels.registered in which CPU tensors see the CuPy kernels first, as if on a device with CuPy."""

    def lookup_table(op_type, device_type):
        if device_type != "cpu":
            return registered(op_type, device_type)
        on_host = [replace(k, available=lambda: None) for k in registered(op_type, "cuda")]
        return on_host + registered(op_type, "cpu")

    return lookup_table


@pytest.fixture
def host_kernels(host_library, monkeypatch):
    """A context in which the operators take their CuPy path with kernels run by the host library."""

    @contextlib.contextmanager
    def context():
        with monkeypatch.context() as m:
            m.setattr(kernels, "registered", _cuda_kernels_for_cpu_tensors(kernels.registered))
            m.setattr(
                runtime,
                "function",
                lambda name, kernel, dtype, device: getattr(host_library, f"host_{kernel}_{runtime.SUFFIX[dtype]}"),
            )
            m.setattr(runtime, "launch", _host_launch)
            m.setattr(runtime, "on_torch_stream", lambda device: contextlib.nullcontext())
            m.setattr(runtime, "as_cupy", lambda tensor: tensor)
            m.setattr(runtime, "cupy_module", lambda: _FAKE_CUPY)
            yield

    return context


def _radon_cases(dtype):
    return {
        "parallel": linops.Radon((2, 17, 23), angles_deg=np.arange(31) * 180 / 31, dtype=dtype),
        "parallel-ties": linops.Radon((1, 12, 12), angles_deg=[0, 45, 90, 135, 180, 225, -45], dtype=dtype),
        "coarse-detector": linops.Radon((1, 15, 13), angles_deg=np.arange(11) * 16.3, n_detector=6,
                                        detector_spacing=2.5, pixel_size=0.8, dtype=dtype),
        "fine-detector": linops.Radon((1, 10, 12), angles_deg=np.arange(9) * 20.0 + 3, n_detector=40,
                                      detector_spacing=0.3, dtype=dtype),
        "tilt-volume": linops.Radon.tilt_series((1, 3, 16, 16), 15, detector_spacing=0.7, n_detector=24, dtype=dtype),
        "fan": linops.FanBeamRadon((1, 19, 21), source_distance=40.0, detector_distance=25.0, detector_spacing=1.3,
                                   angles_deg=np.arange(27) * 360 / 27, dtype=dtype),
        "fan-close": linops.FanBeamRadon((2, 16, 16), source_distance=11.5, detector_distance=0.0,
                                         angles_deg=[0, 45, 90, 100, 200, 315], dtype=dtype),
        "fan-volume": linops.FanBeamRadon.full_range((1, 2, 12, 10), 8, source_distance=20.0, detector_distance=5.0,
                                                     dtype=dtype),
    }  # fmt: skip


RADON_CASES = sorted(_radon_cases(torch.float32))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", RADON_CASES)
def test_host_radon_matches_torch(host_kernels, case, dtype):
    op = _radon_cases(dtype)[case]
    g = torch.Generator().manual_seed(2)
    x, y = random_like_input(op, (3,), g), random_like_output(op, (3,), g)  # full and partial image tiles
    forward, gather = op @ x, op.H @ y
    launches = _host_launch.count
    with host_kernels():
        assert rel_err(op @ x, forward) < parity_tol(dtype)
        assert _host_launch.count == launches + 1, "the operator did not take the kernel path"
        assert rel_err(op.H @ y, gather) < parity_tol(dtype)
        scatter = radon_kernels.adjoint(op, y, radon_kernels.AdjointMethod.SCATTER)
        assert rel_err(scatter, gather) < parity_tol(dtype)
        assert dottest(op) < (1e-5 if dtype == torch.float32 else 1e-10)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", ["parallel-ties", "coarse-detector", "fine-detector", "fan-close"])
def test_host_radon_adjoints_are_the_exact_transpose(host_kernels, case, dtype):
    """Dense matrices from basis vectors: the forward's columns and both adjoints' rows agree bit for bit."""
    op = _radon_cases(dtype)[case]
    eye = torch.eye(op.shape[0], dtype=dtype).reshape(-1, *op.out_shape)
    with host_kernels():
        forward = op.to_dense()
        gather = op.H.to_dense()
        scatter = radon_kernels.adjoint(op, eye, radon_kernels.AdjointMethod.SCATTER).reshape(op.shape[0], -1)
    assert torch.equal(gather, forward.T)
    assert torch.equal(scatter, forward)
    # and the matrix is the stored one, up to the kernels' rounding of each weight
    assert rel_err(forward, op.to_dense()) < (2e-6 if dtype == torch.float32 else 1e-13)


def test_host_radon_autograd(host_kernels):
    op = _radon_cases(torch.float64)["fan-close"]
    x = torch.rand(2, *op.in_shape, dtype=torch.float64, requires_grad=True, generator=gen(102))
    with host_kernels():
        assert torch.autograd.gradcheck(lambda t: op @ t, (x,))
        assert torch.autograd.gradgradcheck(lambda t: (op @ t) ** 2, (x,))
        y = random_like_output(op, (2,))
        (grad,) = torch.autograd.grad((op @ x * y).sum(), x)
        assert torch.equal(grad, op.H @ y)


def test_host_radon_chunked_launches(host_kernels, monkeypatch):
    """Batches split over several launches (a tiny MAX_THREADS), the last one a partial tile, give the same results."""
    op = _radon_cases(torch.float32)["tilt-volume"]
    x, y = random_like_input(op, (9,)), random_like_output(op, (9,))
    with host_kernels():
        whole = (op @ x, op.H @ y, radon_kernels.adjoint(op, y, radon_kernels.AdjointMethod.SCATTER))
        monkeypatch.setattr(runtime, "MAX_THREADS", 1100)  # one tile (views x slices x bins = 1080 threads) a launch
        assert runtime.batch_chunks(9, 15 * 3 * 24, radon_kernels.IMAGE_TILE) == [slice(0, 4), slice(4, 8), slice(8, 9)]
        assert torch.equal(op @ x, whole[0]) and torch.equal(op.H @ y, whole[1])
        assert torch.equal(radon_kernels.adjoint(op, y, radon_kernels.AdjointMethod.SCATTER), whole[2])


def test_image_tile_matches_the_source():
    define = re.search(r"#define LINOPS_RADON_IMAGE_TILE (\d+)", (runtime.KERNEL_DIR / "radon.cu").read_text())
    assert define is not None and int(define.group(1)) == radon_kernels.IMAGE_TILE


def _blur_cases(dtype):
    g = torch.Generator().manual_seed(3)
    rand = lambda *shape: torch.rand(*shape, generator=g, dtype=dtype)
    cases = {}
    for boundary in ("zero", "reflect", "symmetric", "replicate", "circular"):
        cases[f"direct-{boundary}"] = linops.Blur(rand(5, 4), (2, 13, 11), boundary)
        cases[f"direct-per-channel-{boundary}"] = linops.Blur(rand(2, 3, 6), (3, 2, 9, 12), boundary)
        cases[f"fft-{boundary}"] = linops.Blur(rand(13, 11), (1, 20, 18), boundary)
        cases[f"separable-{boundary}"] = linops.SeparableBlur(rand(5), rand(4), (2, 10, 9), boundary)
    cases["fft-per-channel-zero"] = linops.Blur(rand(2, 12, 11), (2, 14, 15), "zero")
    cases["circular-gaussian"] = linops.CircularBlur(linops.gaussian_kernel(1.2, size=9, dtype=dtype), (2, 16, 15))
    cases["circular-small"] = linops.CircularBlur(rand(5, 3), (1, 12, 10))
    cases["circular-large-image"] = linops.CircularBlur(linops.gaussian_kernel(1.0, size=7, dtype=dtype), (1, 256, 256))
    cases["circular-per-channel"] = linops.CircularBlur(rand(2, 3, 3), (2, 8, 9))
    cases["circular-full"] = linops.CircularBlur(rand(12, 10), (1, 12, 10))
    cases["circular-product"] = linops.simplify(
        linops.CircularBlur(rand(3, 3), (1, 11, 12)) @ linops.CircularBlur(rand(3, 5), (1, 11, 12))
    )
    return cases


BLUR_PLANS = {"direct": "DirectPlan", "fft": "FFTPlan", "separable": "SeparablePlan"}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", sorted(_blur_cases(torch.float32)))
def test_host_blur_matches_torch(host_kernels, case, dtype):
    op = _blur_cases(dtype)[case]
    expected_plan = {"circular-full": "CircularFFTPlan"}.get(case, BLUR_PLANS.get(case.split("-")[0], "DirectPlan"))
    g = torch.Generator().manual_seed(4)
    x, y = random_like_input(op, (2,), g), random_like_output(op, (2,), g)
    forward, adjoint = op @ x, op.H @ y
    with host_kernels():
        assert blur_kernels.plan_kind(op) == expected_plan
        assert rel_err(op @ x, forward) < parity_tol(dtype)
        assert rel_err(op.H @ y, adjoint) < parity_tol(dtype)
        assert dottest(op) < (1e-5 if dtype == torch.float32 else 1e-10)


@pytest.mark.parametrize("case", ["direct-reflect", "direct-per-channel-symmetric", "separable-circular",
                                  "circular-small"])  # fmt: skip
def test_host_direct_blur_adjoint_is_the_transpose(host_kernels, case):
    """The same (tap, sample) products in both directions: entries agree to the rounding of their few terms."""
    op = _blur_cases(torch.float32)[case]
    with host_kernels():
        forward, adjoint = op.to_dense(), op.H.to_dense()
    scale = float(forward.abs().max())
    assert float((adjoint - forward.T).abs().max()) <= 4 * torch.finfo(torch.float32).eps * scale


def test_host_blur_chunked_launches_rotate_per_channel_kernels(host_kernels, monkeypatch):
    op = _blur_cases(torch.float64)["direct-per-channel-reflect"]
    x = random_like_input(op, (3,))
    with host_kernels():
        whole = op @ x
        monkeypatch.setattr(runtime, "MAX_THREADS", 3 * 9 * 12)  # 3 planes a launch: chunks start mid-cycle
        assert torch.equal(op @ x, whole)
        assert torch.equal(op.H @ x, op.H @ x)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_host_normal_residual(host_kernels, dtype):
    g = torch.Generator().manual_seed(5)
    cases = _residual_cases(dtype)
    cases["fan"] = _radon_cases(dtype)["fan-close"]
    cases["circular"] = _blur_cases(dtype)["circular-small"]
    cases["separable"] = _blur_cases(dtype)["separable-reflect"]
    for name, A in cases.items():
        x, y = random_like_input(A, (2,), g), random_like_output(A, (2,), g)
        expected = A.H @ (A @ x - y)
        with host_kernels():
            r = linops.normal_residual(A, x, y)
        if name in ("mask", "diagonal"):  # the kernel rounds exactly as the torch expression does
            assert torch.equal(r, expected), name
        else:
            assert rel_err(r, expected) < parity_tol(dtype), name


def _uses_kernels(op) -> bool:
    return isinstance(op, KERNEL_TYPES) or any(_uses_kernels(child) for child in op.operands)


MARKET = [e for e in entries() if _uses_kernels(e.build(torch.float64, torch.Generator().manual_seed(0)))]


@pytest.mark.parametrize("entry", MARKET, ids=lambda e: e.name)
def test_host_kernels_on_the_market(host_kernels, entry):
    """Every market operator that reaches a kernel: the host kernel path against the torch path, its dot test,
    and the market's independent reference where it has one."""
    for dtype in DTYPES:
        op = entry.build(dtype, torch.Generator().manual_seed(0))
        g = torch.Generator().manual_seed(6)
        x, y = random_like_input(op, (2,), g), random_like_output(op, (2,), g)
        forward, adjoint = op @ x, op.H @ y
        with host_kernels():
            assert rel_err(op @ x, forward) < parity_tol(dtype)
            assert rel_err(op.H @ y, adjoint) < parity_tol(dtype)
            assert dottest(op) < (1e-5 if dtype == torch.float32 else 1e-10)
            if entry.reference is not None and dtype == torch.float64:
                expected = torch.as_tensor(entry.reference(op, x.numpy()))
                assert rel_err(op @ x, expected) < 1e-10


def test_host_diagonal_kernels_broadcast_weights(host_kernels):
    A = _residual_cases(torch.float32)["diagonal"]  # weights (1, 6, 7) on in_shape (2, 6, 7)
    x, y = random_like_input(A, (3,)), random_like_output(A, (3,))
    with host_kernels():
        assert torch.equal(linops.normal_residual(A, x, y), A.weights * (A.weights * x - y))


# ----------------------------------------------------------------------------------------------
# on a GPU


@pytest.fixture
def cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    status = dispatch.cupy_status()
    if "not importable" in status:
        pytest.skip(status)
    return torch.device("cuda")


def _on_both(op, x):
    """(torch path, CuPy path) of op @ x."""
    with linops.cuda.backend(Backend.TORCH):
        reference = op @ x
    with linops.cuda.backend(Backend.CUPY):
        return reference, op @ x


@pytest.mark.gpu
def test_gpu_dispatch_picks_cupy(cuda):
    x = torch.zeros(3, device=cuda)
    choice = linops.cuda.choose_backend(x)
    assert choice.backend is Backend.CUPY and choice.reason.startswith("CUDA tensor and cupy")
    with linops.cuda.backend(Backend.TORCH):
        assert linops.cuda.choose_backend(x).backend is Backend.TORCH


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", RADON_CASES)
def test_gpu_radon_matches_torch(cuda, case, dtype):
    op = _radon_cases(dtype)[case].to(cuda)
    g = torch.Generator().manual_seed(2)
    x, y = random_like_input(op, (3,), g), random_like_output(op, (3,), g)
    for reference, out in (_on_both(op, x), _on_both(op.H, y)):
        assert out.device.type == "cuda" and rel_err(out, reference) < parity_tol(dtype)
    scatter = radon_kernels.adjoint(op, y.reshape(-1, *op.out_shape), radon_kernels.AdjointMethod.SCATTER)
    assert rel_err(scatter.reshape(y.shape[0], *op.in_shape), _on_both(op.H, y)[0]) < parity_tol(dtype)
    with linops.cuda.backend(Backend.CUPY):
        assert dottest(op) < (1e-5 if dtype == torch.float32 else 1e-10)


@pytest.mark.gpu
@pytest.mark.parametrize("case", ["parallel-ties", "fan-close"])
def test_gpu_radon_adjoint_is_the_exact_transpose(cuda, case):
    op = _radon_cases(torch.float32)[case].to(cuda)
    eye = torch.eye(op.shape[0], device=cuda).reshape(-1, *op.out_shape)
    with linops.cuda.backend(Backend.CUPY):
        forward, gather = op.to_dense(), op.H.to_dense()
        scatter = radon_kernels.adjoint(op, eye, radon_kernels.AdjointMethod.SCATTER).reshape(op.shape[0], -1)
    assert torch.equal(gather, forward.T) and torch.equal(scatter, forward)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["radon", "fan", "blur-direct", "blur-fft", "separable", "circular"])
def test_gpu_autograd_through_the_kernels(cuda, kind):
    ops = {
        "radon": _radon_cases(torch.float64)["parallel-ties"],
        "fan": _radon_cases(torch.float64)["fan-close"],
        "blur-direct": _blur_cases(torch.float64)["direct-reflect"],
        "blur-fft": _blur_cases(torch.float64)["fft-symmetric"],
        "separable": _blur_cases(torch.float64)["separable-replicate"],
        "circular": _blur_cases(torch.float64)["circular-small"],
    }
    op = ops[kind].to(cuda)
    x = torch.rand(2, *op.in_shape, dtype=torch.float64, generator=gen(103)).to(cuda).requires_grad_()
    with linops.cuda.backend(Backend.CUPY):
        assert torch.autograd.gradcheck(lambda t: op @ t, (x,))
        assert torch.autograd.gradgradcheck(lambda t: (op @ t) ** 2, (x,))
        y = random_like_output(op, (2,))
        (grad,) = torch.autograd.grad((op @ x * y).sum(), x)
        assert rel_err(grad, op.H @ y) < 1e-14


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", sorted(_blur_cases(torch.float32)))
def test_gpu_blur_matches_torch(cuda, case, dtype):
    op = _blur_cases(dtype)[case].to(cuda)
    g = torch.Generator().manual_seed(4)
    x, y = random_like_input(op, (3,), g), random_like_output(op, (3,), g)
    for reference, out in (_on_both(op, x), _on_both(op.H, y)):
        assert rel_err(out, reference) < parity_tol(dtype)
    with linops.cuda.backend(Backend.CUPY):
        assert dottest(op) < (1e-5 if dtype == torch.float32 else 1e-10)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gpu_normal_residual(cuda, dtype):
    cases = {name: A.to(cuda) for name, A in _residual_cases(dtype).items()}
    cases["fan"] = _radon_cases(dtype)["fan"].to(cuda)
    for name, A in cases.items():
        x, y = random_like_input(A, (2,)), random_like_output(A, (2,))
        with linops.cuda.backend(Backend.TORCH):
            expected = A.H @ (A @ x - y)
        with linops.cuda.backend(Backend.CUPY):
            assert rel_err(linops.normal_residual(A, x, y), expected) < parity_tol(dtype), name


@pytest.mark.gpu
def test_gpu_cupy_arrays_in_and_out(cuda):
    cp = dispatch.cupy_module()
    for op in (_radon_cases(torch.float32)["fan"], _blur_cases(torch.float32)["direct-reflect"]):
        op = op.to(cuda)
        x = cp.random.rand(2, *op.in_shape, dtype=cp.float32)
        y = op.apply(x)
        assert isinstance(y, cp.ndarray) and y.shape == (2, *op.out_shape)
        with linops.cuda.backend(Backend.TORCH):
            reference = op @ torch.from_dlpack(x)
        assert rel_err(torch.from_dlpack(y), reference) < parity_tol(torch.float32)
        assert isinstance(op.H.apply(y), cp.ndarray)


@pytest.mark.gpu
def test_gpu_side_stream_no_sync_no_recompile(cuda):
    """Kernels run on torch's current stream, without synchronising torch, and compile once per device."""
    op = _radon_cases(torch.float32)["parallel"].to(cuda)
    blur = _blur_cases(torch.float32)["fft-reflect"].to(cuda)
    x, image = random_like_input(op, (4,)), random_like_input(blur, (4,))
    reference = _on_both(op, x)[0]
    _ = op.H @ (op @ x), blur.H @ (blur @ image)  # build the tables, plans and modules
    compiled = runtime._module.cache_info().misses
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.cuda.stream(stream):
            y = op @ x
            z = op.H @ y
            blurred = blur.H @ (blur @ image)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.current_stream().wait_stream(stream)
    assert rel_err(y, reference) < parity_tol(torch.float32)
    assert z.shape == x.shape and blurred.shape == image.shape
    assert runtime._module.cache_info().misses == compiled
