"""What the SVD disk cache's safety costs on the 64 x 64 tilt series (128 views over [-60, 60] degrees,
float32, 8192 x 4096, GramEigh, as `TiltSeriesProblem(size=64).svd`), against reading the file:

    python -m pytest benchmarks/test_svd_cache.py --benchmark-only --benchmark-group-by=group

Group "svd cache tilt64", one row per step of a cache hit:
  key            cache.fingerprint(A, GramEigh()): exact hash of A's parameters (a fresh A each round)
  key-format-1   the previous key (A and A^H on seeded probes, responses rounded), for comparison
  read           torch.load of the file (weights_only, to the CPU)
  verify-warm    cache.residuals(A, U, s, V): A x, A^H U z and the products with U, s, V
  verify-cold    the same on a fresh A, whose first application builds its sparse matrices
  hit            cache.load in full: read, validation, verification (a fresh A each round)
The SVD is computed once (minutes on one core) into a temporary folder kept for the session.

Measured (OMP_NUM_THREADS=1, 2-core machine shared with other jobs, load average 8-10; medians of two
runs): key 0.18-0.19 ms; key-format-1 104-194 ms; read 247-316 ms (201 MB file); verify-warm 58-66 ms;
verify-cold 175-268 ms (of which about 135 ms is A's first application, paid anyway on first use);
hit 445-484 ms. So a hit costs about what it did with the format-1 key (key + read), and the
verification is about a quarter of the read once A has been used.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from linops import Radon
from linops.base import precision_of
from linops.spectral import GramEigh
from linops.spectral import cache as svd_cache

GROUP = "svd cache tilt64"
ALGORITHM = GramEigh()


def _operator():
    return Radon.tilt_series((1, 64, 64), 128, 60.0)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    folder = tmp_path_factory.mktemp("svd")
    A = _operator()
    out = A.svd(ALGORITHM, cache_dir=folder)
    key = svd_cache.fingerprint(A, ALGORITHM)
    return folder, key, out


def _format_1_key(A, algorithm) -> str:
    """The key before issue 12: repr, shapes and probe responses rounded to 1e-6 of their peak."""

    def probe(shape):
        g = torch.Generator().manual_seed(20240601)
        return torch.randn((2, *shape), dtype=torch.float64, generator=g).to(precision_of(A.dtype))

    def quantized(t):
        t = t.detach().to("cpu", torch.float64)
        return torch.round(t / t.abs().max() * 1e6).to(torch.int64).numpy().tobytes()

    h = hashlib.sha256()
    for part in (type(A).__qualname__, repr(A), A.in_shape, A.out_shape, A.dtype, repr(algorithm)):
        h.update(repr(part).encode())
    with torch.no_grad():
        h.update(quantized(A.apply(probe(A.in_shape))))
        h.update(quantized(A.H.apply(probe(A.out_shape))))
    return h.hexdigest()[:32]


def _fresh():
    return (_operator(),), {}


@pytest.mark.benchmark(group=GROUP)
def test_key(benchmark, stored):
    _, key, _ = stored
    assert benchmark.pedantic(lambda A: svd_cache.fingerprint(A, ALGORITHM), setup=_fresh, rounds=20) == key


@pytest.mark.benchmark(group=GROUP)
def test_key_format_1(benchmark, stored):
    benchmark.pedantic(lambda A: _format_1_key(A, ALGORITHM), setup=_fresh, rounds=5)


@pytest.mark.benchmark(group=GROUP)
def test_read(benchmark, stored):
    folder, key, _ = stored
    path = svd_cache.path_for(folder, key)
    benchmark.pedantic(lambda: torch.load(path, map_location="cpu", weights_only=True), rounds=5)


@pytest.mark.benchmark(group=GROUP)
def test_verify_warm(benchmark, stored):
    _, _, out = stored
    A = _operator()
    A.apply(torch.zeros(1, *A.in_shape))
    U, s, V = out.U.matrix, out.s, out.V.matrix
    benchmark.pedantic(lambda: svd_cache.residuals(A, U, s, V), rounds=10)


@pytest.mark.benchmark(group=GROUP)
def test_verify_cold(benchmark, stored):
    _, _, out = stored
    U, s, V = out.U.matrix, out.s, out.V.matrix
    benchmark.pedantic(lambda A: svd_cache.residuals(A, U, s, V), setup=_fresh, rounds=5)


@pytest.mark.benchmark(group=GROUP)
def test_hit(benchmark, stored):
    folder, key, out = stored
    hit = benchmark.pedantic(lambda A: svd_cache.load(folder, key, A, ALGORITHM), setup=_fresh, rounds=5)
    torch.testing.assert_close(hit.s, out.s, rtol=0, atol=0)
