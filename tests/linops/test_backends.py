"""Backends at the edge: the CuPy and numba kernels are registered by operator type in the kernel table
(linops/backends.py), the operators ask the table, and no core module imports a backend package."""

import ast
import copy
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import linops
from linops.backends import Kernel, KernelTable, Layout, kernels
from linops.cuda import dispatch
from linops.memo import holds

ROOT = Path(__file__).resolve().parents[2]
#: the packages at the edge: nothing else in linops may import them (linops/__init__.py imports them to register)
EDGE = ("linops.cuda", "linops.cpu")

RADON = linops.Radon.full_range((1, 8, 8), 4)
FAN = linops.FanBeamRadon.full_range((1, 8, 8), 4, source_distance=20.0, detector_distance=5.0)
BLUR = linops.Blur(torch.ones(3, 3) / 9, (1, 8, 8), "reflect")
SEPARABLE = linops.SeparableBlur(torch.ones(3) / 3, torch.ones(3) / 3, (1, 8, 8))
CIRCULAR = linops.CircularBlur(torch.ones(3, 3) / 9, (1, 8, 8))
MASK = linops.Mask(torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5)
DIAGONAL = linops.Diagonal(torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(1)))


def _fake_cuda(dtype=torch.float32):
    """What the table reads of a tensor: its device and dtype (no CUDA device is needed)."""
    return SimpleNamespace(device=torch.device("cuda", 0), dtype=dtype)


@pytest.fixture
def cupy_present(monkeypatch):
    """The process as it looks on a machine with CuPy and a CUDA device (the kernels themselves do not run)."""
    monkeypatch.setattr(dispatch, "_cupy_import", lambda: (SimpleNamespace(__version__="14.2.0"), None))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.mark.parametrize("op", [RADON, FAN, BLUR, SEPARABLE, CIRCULAR], ids=lambda op: type(op).__name__)
def test_cuda_kernels_are_registered_for_the_operator_types(op, cupy_present):
    (kernel,) = kernels.registered(type(op), "cuda")
    assert kernel.backend == "cupy" and kernel.layout is Layout.BATCH
    assert kernel.forward is not None and kernel.adjoint is not None and kernel.normal_residual is not None
    assert kernels.lookup(op, _fake_cuda()) is kernel
    assert kernels.lookup(op, _fake_cuda(), operation="adjoint") is kernel
    assert kernels.lookup(op, _fake_cuda(torch.float16)) is None  # compiled for float32 and float64 only
    assert all(k.backend != "cupy" for k in kernels.registered(type(op), "cpu"))
    with linops.cuda.backend(linops.cuda.Backend.TORCH):
        assert kernels.lookup(op, _fake_cuda()) is None


@pytest.mark.parametrize("op", [MASK, DIAGONAL], ids=lambda op: type(op).__name__)
def test_masks_and_diagonals_have_a_fused_residual_kernel_only(op, cupy_present):
    kernel = kernels.registered(type(op), "cuda")[0]
    assert kernel.backend == "cupy" and kernel.forward is None and kernel.normal_residual is not None
    assert kernels.lookup(op, _fake_cuda(), operation="normal_residual") is kernel
    assert kernels.lookup(op, _fake_cuda()) is None  # no forward kernel: torch's product is one pass
    assert [k.normal_residual.__name__ for k in kernels.registered(linops.Mask, "cuda")] == [
        "_mask_residual",
        "_diagonal_residual",
    ]


def test_without_cupy_or_a_device_the_kernels_say_why(monkeypatch):
    monkeypatch.setattr(dispatch, "_cupy_import", lambda: (None, "cupy not importable: ImportError: no cupy"))
    assert kernels.lookup(BLUR, _fake_cuda()) is None
    assert kernels.explain(BLUR, "cuda") == [("cupy", "cupy not importable: ImportError: no cupy")]
    monkeypatch.setattr(dispatch, "_cupy_import", lambda: (SimpleNamespace(__version__="14.2.0"), None))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "no CUDA device" in kernels.explain(BLUR, "cuda")[0][1]


def test_layouts_keep_the_projector_kernels_apart():
    """The numba kernel takes the projector's columns (H W, B); the CuPy one whole batches."""
    cpu = torch.zeros(1)
    assert kernels.lookup(RADON, cpu, Layout.COLUMNS) is linops.cpu.RADON
    assert kernels.lookup(RADON, cpu, Layout.BATCH) is None
    assert kernels.registered(linops.Radon, "cuda")[0].layout is Layout.BATCH


def test_forcing_a_backend_in_a_table():
    table = KernelTable()
    fast = table.register(linops.Blur, "cpu", Kernel("fast", lambda op, x: x, lambda op, y: y))
    x = torch.zeros(1, 1, 8, 8)
    assert table.lookup(BLUR, x) is fast
    with table.force("fast", False):
        assert table.lookup(BLUR, x) is None and table.forced("fast") is False
        with table.force("fast", None):
            assert table.lookup(BLUR, x) is fast
    with table.force("gpu-only", True):
        assert table.lookup(BLUR, x) is fast  # Blur has no kernel of that backend: nothing to force
    table.register(linops.Blur, "cuda", Kernel("gpu-only", lambda op, x: x, lambda op, y: y))
    with table.force("gpu-only", True), pytest.raises(RuntimeError, match="'gpu-only' is forced .* tensor on cpu"):
        table.lookup(BLUR, x)
    assert table.forced("gpu-only") is None
    with pytest.raises(ValueError, match="operation must be one of"):
        table.lookup(BLUR, x, operation="inverse")


def test_numba_tables_are_remembered_under_a_typed_key_and_copies_drop_them():
    pytest.importorskip("numba")
    from linops.cpu.radon import TablesKey

    op = linops.Radon.full_range((1, 8, 8), 4, method=linops.ProjectorMethod.MATRIX_FREE)
    op @ torch.rand(1, 8, 8)
    assert holds(op, TablesKey())
    assert not holds(copy.deepcopy(op), TablesKey())


def _imports(path: Path, module: str) -> set[str]:
    """The absolute names a module imports, module-level and function-local."""
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = module.split(".")[: len(module.split(".")) - (node.level - (1 if is_package else 0))]
            prefix = ".".join([*base, node.module] if node.module else base) if node.level else node.module
            names |= {prefix} | {f"{prefix}.{a.name}" for a in node.names}
    return names


def test_no_core_module_imports_a_backend_package():
    offenders = []
    for path in sorted((ROOT / "linops").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if module == "linops" or module.startswith(EDGE):
            continue
        bad = {n for n in _imports(path, module) if n.startswith(EDGE)}
        offenders += [f"{module} imports {n}" for n in sorted(bad)]
    assert offenders == []


@pytest.mark.slow
def test_importing_linops_imports_neither_cupy_nor_numba():
    """The backends register at import without importing their libraries (CuPy only for CUDA tensors)."""
    code = (
        "import sys, linops\n"
        "from linops.backends import kernels\n"
        "assert kernels.registered(linops.Radon, 'cuda') and kernels.registered(linops.Radon, 'cpu')\n"
        "assert 'cupy' not in sys.modules and 'numba' not in sys.modules, sorted(sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
