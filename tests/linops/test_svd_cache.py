"""The on-disk SVD cache (linops.spectral.cache): exact keys, verified loads, corrupt files,
unwritable folders, stale temporaries and the size cap (issue 12). Small float64 operators."""

from __future__ import annotations

import dataclasses
import os
import time
import warnings

import pytest
import torch

import linops
import linops.memo
from linops import Blur, Diagonal, Matrix, Radon
from linops.base import LinearOperator
from linops.spectral import DenseSVD, GramEigh, RandomizedSVD, svd
from linops.spectral import cache as svd_cache
from linops.testing import Opaque, entries, make

F64 = torch.float64
ANGLES = [0.0, 30.0, 60.0, 90.0, 120.0, 150.0]


def gen(seed):
    return torch.Generator().manual_seed(seed)


def matrix(seed=0, m=12, n=8, dtype=F64):
    return torch.randn(m, n, generator=gen(seed), dtype=dtype)


def radon(**kwargs):
    return Radon((1, 8, 8), angles_deg=ANGLES, dtype=F64, **kwargs)


def diagonals():
    """Two diagonals whose weights differ by 1e-8 of the peak in one entry."""
    w = torch.rand(1, 6, 6, generator=gen(1), dtype=F64) + 0.5
    w2 = w.clone()
    w2[0, 2, 3] += 1e-8 * w.max()
    return Diagonal(w), Diagonal(w2)


def kernel():
    return torch.rand(3, 3, generator=gen(3), dtype=F64)


#: the collisions of issue 12: pairs of different operators the old key could not tell apart
COLLISIONS = {
    "A-vs-2A": lambda: (Blur(kernel(), (1, 5, 5)), Blur(2 * kernel(), (1, 5, 5))),
    "radon-pixel-size-2": lambda: (radon(), radon(pixel_size=2.0, detector_spacing=2.0)),
    "matrix-2M": lambda: (Matrix(matrix()), Matrix(2 * matrix())),
    "diagonal-below-1e-6": diagonals,
}


def reference_values(A: LinearOperator) -> torch.Tensor:
    return torch.linalg.svdvals(A.to_dense())


def assert_factors(A: LinearOperator, out) -> None:
    """U diag(s) V^H is the dense matrix of A (a complete SVD)."""
    dense = A.to_dense()
    rebuilt = out.U.matrix @ torch.diag(out.s).to(dense.dtype) @ out.V.matrix.mH
    torch.testing.assert_close(rebuilt, dense, rtol=0, atol=1e-10 * float(dense.abs().max()))
    torch.testing.assert_close(out.s, reference_values(A), rtol=1e-10, atol=1e-12)


def no_recompute(monkeypatch):
    import linops.spectral.svd_dispatch as dispatch

    def fail(*args, **kwargs):
        raise AssertionError("recomputed instead of loading from the disk cache")

    for name in ("dense_svd", "gram_eigh_svd", "randomized_svd"):
        monkeypatch.setattr(dispatch, name, fail)


def cache_files(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("svd-"))


# ----------------------------------------------------------------------------------------------
# keys


@pytest.mark.parametrize("case", sorted(COLLISIONS))
def test_collisions_of_the_old_key_have_different_keys(case):
    a, b = COLLISIONS[case]()
    assert svd_cache.fingerprint(a, DenseSVD()) != svd_cache.fingerprint(b, DenseSVD())


@pytest.mark.parametrize("case", sorted(COLLISIONS))
def test_second_operator_gets_its_own_svd(case, tmp_path):
    a, b = COLLISIONS[case]()
    assert_factors(a, svd(a, DenseSVD(), cache_dir=tmp_path))
    assert_factors(b, svd(b, DenseSVD(), cache_dir=tmp_path))
    assert len(cache_files(tmp_path)) == 2


def test_radon_pixel_size_two_doubles_the_singular_values(tmp_path):
    """The issue's report: Radon(pixel_size=2, detector_spacing=2) after Radon() got s[0] / 2."""
    first = svd(radon(), DenseSVD(), cache_dir=tmp_path)
    second = svd(radon(pixel_size=2.0, detector_spacing=2.0), DenseSVD(), cache_dir=tmp_path)
    torch.testing.assert_close(second.s, 2 * first.s, rtol=1e-10, atol=1e-12)


VERIFIED = [(case, DenseSVD()) for case in sorted(COLLISIONS)] + [
    ("matrix-2M", GramEigh()),
    ("matrix-2M", RandomizedSVD(rank=3)),
    ("radon-pixel-size-2", GramEigh()),
    ("diagonal-below-1e-6", RandomizedSVD(rank=3)),
]


@pytest.mark.parametrize("case, algorithm", VERIFIED, ids=[f"{c}-{type(a).__name__}" for c, a in VERIFIED])
def test_verification_refuses_another_operators_svd(case, algorithm, tmp_path, monkeypatch):
    """Even under a forced key collision the loaded factorisation is checked on a probe and refused."""
    monkeypatch.setattr(svd_cache, "fingerprint", lambda A, alg=None: "0" * 32)
    a, b = COLLISIONS[case]()
    svd(a, algorithm, cache_dir=tmp_path)
    with pytest.warns(svd_cache.SVDCacheWarning, match="does not factor"):
        out = svd(b, algorithm, cache_dir=tmp_path)
    torch.testing.assert_close(out.s, svd(COLLISIONS[case]()[1], algorithm).s, rtol=1e-12, atol=1e-12)
    # the recomputed SVD replaced the file: b now loads it silently
    no_recompute(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", svd_cache.SVDCacheWarning)
        torch.testing.assert_close(svd(COLLISIONS[case]()[1], algorithm, cache_dir=tmp_path).s, out.s, rtol=0, atol=0)


def test_key_hashes_tensors_exactly():
    w = torch.rand(1, 4, 4, generator=gen(4), dtype=F64) + 0.5
    w2 = w.clone()
    w2[0, 1, 2] = torch.nextafter(w[0, 1, 2], torch.tensor(2.0, dtype=F64))
    assert svd_cache.fingerprint(Diagonal(w), DenseSVD()) != svd_cache.fingerprint(Diagonal(w2), DenseSVD())
    assert svd_cache.fingerprint(Diagonal(w), DenseSVD()) == svd_cache.fingerprint(Diagonal(w.clone()), DenseSVD())


def test_key_is_built_from_parameters_without_applying_the_operator(monkeypatch):
    def fail(self, x):
        raise AssertionError("the key applied the operator")

    monkeypatch.setattr(Matrix, "_apply", fail)
    monkeypatch.setattr(Matrix, "_adjoint", fail)
    M = Matrix(matrix())
    assert svd_cache.fingerprint(M, DenseSVD()) == svd_cache.fingerprint(Matrix(matrix()), DenseSVD())
    assert svd_cache.fingerprint(M, DenseSVD()) != svd_cache.fingerprint(M.T, DenseSVD())


def test_every_market_operator_has_an_exact_key_that_use_does_not_change():
    """No market operator needs the probe fallback, a rebuilt one has the same key, and applying one
    (which fills derived caches, e.g. a Radon's sparse matrices) leaves its key unchanged (checked on
    the first entry of each type, to stay fast). FunctionOperators hold callables: their keys fall back."""
    applied = set()
    for entry in entries(exclude_tags={"callables"}):
        op = make(entry.name)
        assert svd_cache.unhashable_parts(op) == [], entry.name
        before = svd_cache.fingerprint(op, DenseSVD())
        assert svd_cache.fingerprint(make(entry.name), DenseSVD()) == before, entry.name
        if type(op) in applied:
            continue
        applied.add(type(op))
        x = torch.randn(2, *op.in_shape, generator=gen(5), dtype=F64).to(op.dtype)
        y = torch.randn(2, *op.out_shape, generator=gen(6), dtype=F64).to(op.dtype)
        op.apply(x), op.H.apply(y)
        assert svd_cache.fingerprint(op, DenseSVD()) == before, entry.name
    callables = [e for e in entries() if "callables" in e.tags]
    assert len(callables) == 2
    for entry in callables:
        assert sorted(svd_cache.unhashable_parts(make(entry.name))) == [
            "FunctionOperator.adjoint (function)",
            "FunctionOperator.forward (function)",
        ]


class Function(LinearOperator):
    """A map given by callables: its parameters cannot be hashed, so the key uses its responses."""

    def __init__(self, forward, adjoint, n):
        super().__init__((n,), (n,), dtype=F64)
        self.forward, self.adjoint = forward, adjoint

    def _apply(self, x):
        return self.forward(x)

    def _adjoint(self, y):
        return self.adjoint(y)


def test_unhashable_parameters_fall_back_to_exact_probe_responses(tmp_path):
    def scaled(c):
        return Function(lambda x: c * x, lambda y: c * y, 6)

    tiny = 1 + 2**-40  # far below the old key's rounding to 1e-6
    parts = {p.split(" ")[0] for p in svd_cache.unhashable_parts(scaled(2.0))}
    assert parts == {"Function.forward", "Function.adjoint"}
    assert svd_cache.fingerprint(scaled(2.0), DenseSVD()) == svd_cache.fingerprint(scaled(2.0), DenseSVD())
    assert svd_cache.fingerprint(scaled(2.0), DenseSVD()) != svd_cache.fingerprint(scaled(2.0 * tiny), DenseSVD())
    assert svd_cache.fingerprint(scaled(2.0), DenseSVD()) != svd_cache.fingerprint(scaled(4.0), DenseSVD())
    svd(scaled(2.0), DenseSVD(), cache_dir=tmp_path)
    torch.testing.assert_close(svd(scaled(4.0), DenseSVD(), cache_dir=tmp_path).s, torch.full((6,), 4.0, dtype=F64))


def test_wrapped_pylops_operator_is_keyed_by_its_exact_responses(tmp_path):
    pylops = pytest.importorskip("pylops")
    from linops.interop.pylops import from_pylops

    M = matrix().numpy()
    A, B = from_pylops(pylops.MatrixMult(M)), from_pylops(pylops.MatrixMult(2 * M))
    assert svd_cache.unhashable_parts(A) == ["PylopsOperator.pylops_op (MatrixMult)"]
    assert svd_cache.fingerprint(A, DenseSVD()) == svd_cache.fingerprint(from_pylops(pylops.MatrixMult(M)), DenseSVD())
    assert svd_cache.fingerprint(A, DenseSVD()) != svd_cache.fingerprint(B, DenseSVD())
    svd(A, DenseSVD(), cache_dir=tmp_path)
    assert_factors(B, svd(B, DenseSVD(), cache_dir=tmp_path))


# ----------------------------------------------------------------------------------------------
# round trips (the callers' pattern: A.svd(algorithm, cache_dir=...) in a fresh process)


@pytest.mark.parametrize(
    "make_op, algorithm",
    [
        (lambda: Radon.tilt_series((1, 8, 8), 10, 60.0), GramEigh()),  # float32, as TiltSeriesProblem
        (lambda: Radon.tilt_series((1, 8, 8), 10, 60.0, dtype=F64), GramEigh()),
        (lambda: Matrix(matrix(dtype=F64) + 1j * matrix(7)), DenseSVD()),
        (lambda: Opaque(Blur(kernel(), (1, 8, 8))), RandomizedSVD(rank=5)),
        (lambda: Opaque(Blur(kernel(), (1, 8, 8))), RandomizedSVD(threshold=0.5)),
    ],
    ids=["tilt-float32-gram", "tilt-float64-gram", "complex-dense", "randomized-rank", "randomized-threshold"],
)
def test_round_trip_loads_bitwise_without_warning(make_op, algorithm, tmp_path, monkeypatch):
    first = make_op().svd(algorithm, cache_dir=tmp_path)
    no_recompute(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", svd_cache.SVDCacheWarning)
        again = make_op().svd(algorithm, cache_dir=tmp_path)
    for a, b in ((again.s, first.s), (again.U.matrix, first.U.matrix), (again.V.matrix, first.V.matrix)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (again.complete, again.range_complete) == (first.complete, first.range_complete)


def test_tilt_series_problem_svd_uses_the_cache(tmp_path, monkeypatch):
    from solvers.app.tomography import TiltSeriesProblem

    monkeypatch.setenv("LINOPS_CACHE", str(tmp_path))
    problem = TiltSeriesProblem(size=8, views=10)
    first = problem.svd(problem.operator(), progress=lambda *_: None)
    assert len(cache_files(tmp_path / "svd")) == 1
    no_recompute(monkeypatch)
    torch.testing.assert_close(problem.svd(problem.operator(), progress=lambda *_: None).s, first.s, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# corrupt files


def _mutate(name):
    def edit(data):
        if name == "nan":
            data["s"][0] = float("nan")
        elif name == "negative":
            data["s"][-1] = -1.0
        elif name == "wrong-dtype":
            data["U"], data["V"] = data["U"].float(), data["V"].float()
        elif name == "wrong-shape":
            data["U"] = data["U"][:, :-1].clone()
        elif name == "perturbed-factor":
            data["U"][0, 0] += 1e-6
        return data

    return edit


CORRUPT = {
    "empty": lambda path, valid: path.write_bytes(b""),  # EOFError
    "garbage": lambda path, valid: path.write_bytes(b"\x80\x02garbage" * 7),  # UnpicklingError
    "truncated": lambda path, valid: path.write_bytes(valid[: len(valid) // 2]),
    "bare-tensor": lambda path, valid: torch.save(torch.ones(3), path),  # TypeError on data["U"]
    "list": lambda path, valid: torch.save([1, 2, 3], path),
    "int": lambda path, valid: torch.save(7, path),
    "dict-of-junk": lambda path, valid: torch.save({"U": 1, "s": "x"}, path),
    "oversized": lambda path, valid: path.write_bytes(valid + b"\0" * 300_000),  # refused unread
}
for _name in ("nan", "negative", "wrong-dtype", "wrong-shape", "perturbed-factor"):
    CORRUPT[_name] = (lambda edit: lambda path, valid: torch.save(edit(torch.load(path, weights_only=True)), path))(
        _mutate(_name)
    )


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_file_is_discarded_with_a_warning_and_recomputed(case, tmp_path, monkeypatch):
    A = Matrix(matrix())
    svd(A, DenseSVD(), cache_dir=tmp_path)
    (path,) = tmp_path.glob("svd-*.pt")
    CORRUPT[case](path, path.read_bytes())
    with pytest.warns(svd_cache.SVDCacheWarning, match="discarding"):
        out = svd(Matrix(matrix()), DenseSVD(), cache_dir=tmp_path)
    assert_factors(A, out)
    # the file was replaced by a good one
    no_recompute(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", svd_cache.SVDCacheWarning)
        torch.testing.assert_close(svd(Matrix(matrix()), DenseSVD(), cache_dir=tmp_path).s, out.s, rtol=0, atol=0)


def test_another_operators_file_under_this_key_is_refused(tmp_path):
    """A well-formed file of 2 M renamed to the key of M (as a key collision would leave it)."""
    A, B = Matrix(matrix()), Matrix(2 * matrix())
    svd(B, DenseSVD(), cache_dir=tmp_path / "b")
    (other,) = (tmp_path / "b").glob("svd-*.pt")
    key = svd_cache.fingerprint(A, DenseSVD())
    data = torch.load(other, weights_only=True)
    data["key"] = key
    (tmp_path / "a").mkdir()
    torch.save(data, svd_cache.path_for(tmp_path / "a", key))
    with pytest.warns(svd_cache.SVDCacheWarning, match="does not factor"):
        assert_factors(A, svd(A, DenseSVD(), cache_dir=tmp_path / "a"))


# ----------------------------------------------------------------------------------------------
# unwritable folders and stale temporaries


def test_cache_folder_under_a_regular_file_keeps_the_result(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.warns(svd_cache.SVDCacheWarning, match="could not write"):
        out = svd(Matrix(matrix()), DenseSVD(), cache_dir=blocker / "svd")
    assert_factors(Matrix(matrix()), out)


def test_failing_rename_keeps_the_result_and_leaves_no_temporary(tmp_path, monkeypatch):
    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(svd_cache.os, "replace", deny)
    with pytest.warns(svd_cache.SVDCacheWarning, match="PermissionError"):
        out = svd(Matrix(matrix()), DenseSVD(), cache_dir=tmp_path)
    assert_factors(Matrix(matrix()), out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_folder_keeps_the_result(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.warns(svd_cache.SVDCacheWarning, match="could not write"):
            out = svd(Matrix(matrix()), DenseSVD(), cache_dir=folder)
    finally:
        folder.chmod(0o700)
    assert_factors(Matrix(matrix()), out)


def test_stale_temporaries_are_removed_on_the_next_save(tmp_path):
    old = time.time() - 2 * 3600
    stale = [tmp_path / "tmpab12cd_3.tmp", tmp_path / ".svd-k1l2m3.pt.tmp"]  # format 1's and ours
    kept = [tmp_path / ".svd-fresh.pt.tmp", tmp_path / "notes.tmp"]  # a writer at work; not ours
    for path in stale + kept:
        path.write_bytes(b"partial")
    for path in stale + kept[1:]:
        os.utime(path, (old, old))
    svd(Matrix(matrix()), DenseSVD(), cache_dir=tmp_path)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)


# ----------------------------------------------------------------------------------------------
# size


def test_entry_size_is_documented_formula(tmp_path):
    for A in (Matrix(matrix()), Matrix(matrix() + 1j * matrix(1))):
        out = svd(A, DenseSVD(), cache_dir=tmp_path)
        path = svd_cache.path_for(tmp_path, svd_cache.fingerprint(A, DenseSVD()))
        m, n = A.shape
        k = out.s.shape[0]
        itemsize = 16 if A.dtype.is_complex else 8
        assert svd_cache.entry_bytes(A, k) == (m * k + n * k) * itemsize + 8 * k
        assert 0 <= path.stat().st_size - svd_cache.entry_bytes(A, k) <= 4096


def _save_at(A, directory, mtime, **kwargs):
    svd(A, DenseSVD(), cache_dir=directory, **kwargs)
    path = svd_cache.path_for(directory, svd_cache.fingerprint(A, DenseSVD()))
    os.utime(path, (mtime, mtime))
    return path


@pytest.mark.parametrize("how", ["environment", "argument"])
def test_size_cap_evicts_least_recently_used(how, tmp_path, monkeypatch):
    now = time.time()
    a = _save_at(Matrix(matrix(0)), tmp_path, now - 300)
    cap = int(2.5 * a.stat().st_size)
    kwargs = {}
    if how == "environment":
        monkeypatch.setenv(svd_cache.MAX_BYTES_ENV, str(cap))
    else:
        kwargs["cache_max_bytes"] = cap
    b = _save_at(Matrix(matrix(1)), tmp_path, now - 200, **kwargs)
    assert a.exists() and b.exists()
    svd(Matrix(matrix(0)), DenseSVD(), cache_dir=tmp_path, **kwargs)  # a hit: a is now the most recent
    c = _save_at(Matrix(matrix(2)), tmp_path, now, **kwargs)
    assert a.exists() and c.exists() and not b.exists()
    assert sum(p.stat().st_size for p in tmp_path.glob("svd-*.pt")) <= cap


def test_result_larger_than_the_cap_is_returned_not_written(tmp_path, monkeypatch):
    monkeypatch.setenv(svd_cache.MAX_BYTES_ENV, "1K")
    with pytest.warns(svd_cache.SVDCacheWarning, match="exceeds the cap"):
        out = svd(Matrix(matrix()), DenseSVD(), cache_dir=tmp_path)
    assert_factors(Matrix(matrix()), out)
    assert cache_files(tmp_path) == []


def test_invalid_cap_is_refused_before_computing(tmp_path, monkeypatch):
    import linops.spectral.svd_dispatch as dispatch

    monkeypatch.setattr(dispatch, "dense_svd", lambda *a: pytest.fail("computed before checking the cap"))
    monkeypatch.setenv(svd_cache.MAX_BYTES_ENV, "lots")
    with pytest.raises(ValueError, match="LINOPS_CACHE_MAX_BYTES.*'lots'"):
        svd(Matrix(matrix()), DenseSVD(), cache_dir=tmp_path)
    monkeypatch.delenv(svd_cache.MAX_BYTES_ENV)
    with pytest.raises(ValueError, match="cache_max_bytes.*-1"):
        svd(Matrix(matrix()), DenseSVD(), cache_dir=tmp_path, cache_max_bytes=-1)
    assert svd_cache.max_bytes_setting(None) is None
    monkeypatch.setenv(svd_cache.MAX_BYTES_ENV, "2G")
    assert svd_cache.max_bytes_setting(None) == 2 * 1024**3
    assert svd_cache.max_bytes_setting(5) == 5


def test_the_key_ignores_how_a_projector_is_applied_and_what_it_remembers():
    """A projector's method (matrix-free or sparse) computes the same map: one cached SVD serves both; the
    key is the same before and after use (derived data and the memo are not parameters)."""
    auto = linops.Radon.tilt_series((1, 12, 12), 7, max_tilt_deg=60.0)
    sparse = linops.Radon.tilt_series((1, 12, 12), 7, max_tilt_deg=60.0, method=linops.ProjectorMethod.SPARSE)
    before = svd_cache.fingerprint(auto)
    auto @ torch.rand(1, 12, 12)
    linops.memo.store(auto, _AnyKey(), 1)
    assert svd_cache.fingerprint(auto) == before == svd_cache.fingerprint(sparse)
    assert svd_cache.fingerprint(linops.Radon.tilt_series((1, 12, 12), 7, max_tilt_deg=50.0)) != before


@dataclasses.dataclass(frozen=True)
class _AnyKey(linops.memo.MemoKey):
    pass
