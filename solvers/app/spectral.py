"""DDRM's SVD of the slice operator for the command line: chosen by a typed method, estimated before it
starts (time and memory, refused when it cannot fit), shown with the time left, and cached on disk
(`tomography.svd_cache_dir()`, as the demo does) so that it is computed once per geometry.

    exact       the SVD from the eigendecompositions of the Gram matrix's blocks under the geometry's
                symmetries (`EXACT_SVD` = SymmetricGramEigh; GramEigh when there are none): all singular
                values, about a minute and 0.5 GB at 128 x 128 with a tilt series symmetric about 0 (once)
    randomized  `RandomizedSVD(rank=k)`: the top k singular triplets through A and A^H only, seconds;
                the rest of the spectrum is treated as unobserved (DDRM's projector I - V V^H)

The time left is an estimate: the eigendecomposition, which dominates, is a single LAPACK call that
reports no progress, so it is timed on a small matrix beforehand and scaled by k^3.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from linops.spectral import GramEigh, RandomizedSVD, SymmetricGramEigh, cache
from linops.symmetry import SymmetryGroup

#: the exact method's algorithm (one place to change when a faster exact one is available)
EXACT_SVD = SymmetricGramEigh()


class SVDMethod(enum.Enum):
    EXACT = "exact"
    RANDOMIZED = "randomized"


@dataclass(frozen=True)
class SVDRequest:
    """What a worker needs to get the SVD: the algorithm and the on-disk cache holding it."""

    algorithm: GramEigh | SymmetricGramEigh | RandomizedSVD
    cache_dir: str

    def load(self, A):
        """A's SVD (from A's memory, else the disk cache, else computed and cached)."""
        return A.svd(self.algorithm, cache_dir=self.cache_dir)


def svd_algorithm(method: SVDMethod, rank: int | None):
    if method is SVDMethod.EXACT:
        return EXACT_SVD
    if rank is None or rank < 1:
        raise ValueError(f"--svd randomized needs --svd-rank K >= 1, got {rank}")
    return RandomizedSVD(rank=rank)


@dataclass(frozen=True)
class SVDCost:
    seconds: float
    bytes: int


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (None where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _timed(fn, repeats: int = 1) -> float:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


def estimate_cost(A, algorithm) -> SVDCost:
    """Time and peak memory of computing svd(A, algorithm), from short timings of its parts."""
    m, n = A.shape
    k = min(m, n)
    if isinstance(algorithm, SymmetricGramEigh):
        group = SymmetryGroup.of(A)
        if group.order == 1:
            return estimate_cost(A, algorithm.plain())
        return _symmetric_cost(A, algorithm, group)
    with torch.no_grad():
        if isinstance(algorithm, GramEigh):
            A64 = A.to(torch.float64)
            gram = A64.H @ A64 if m >= n else A64 @ A64.H
            b = min(algorithm.batch_size, k)
            block = torch.zeros((b, *gram.in_shape), dtype=torch.float64, device=A.device)
            gram.apply(block)  # build the operator's matrices once
            columns = _timed(lambda: gram.apply(block)) * k / b
            probe = min(k, 512)
            sym = torch.randn(probe, probe, dtype=torch.float64, device=A.device)
            sym = sym + sym.T
            eigh = _timed(lambda: torch.linalg.eigh(sym)) * (k / probe) ** 3
            seconds = columns * 1.5 + eigh
            # the Gram matrix, eigh's workspace and eigenvectors, and U (m x k), in float64
            memory = 8 * (3 * k * k + max(m, n) * k)
        else:
            r = algorithm.rank + algorithm.oversample
            b = min(r, 64)
            x = torch.zeros((b, *A.in_shape), dtype=A.dtype, device=A.device)
            y = torch.zeros((b, *A.out_shape), dtype=A.dtype, device=A.device)
            A.apply(x)
            per_vector = (_timed(lambda: A.apply(x)) + _timed(lambda: A.H.apply(y))) / (2 * b)
            seconds = per_vector * r * (2 * algorithm.power_iters + 2) + 4e-9 * (m + n) * r * r
            memory = 8 * 3 * (m + n) * r
    return SVDCost(seconds, int(memory))


def _symmetric_cost(A, algorithm: SymmetricGramEigh, group: SymmetryGroup) -> SVDCost:
    """SymmetricGramEigh: one call of A (or A^H) per orbit of the smaller side, then per block a Gram
    product, an eigh of min(m_chi, n_chi) and the other factor; all blocks B_chi held at once."""
    m, n = A.shape
    dims = [group.dimensions(c) for c in range(group.order)]
    with torch.no_grad():
        A64 = A.to(torch.float64)
        op = A64 if n <= m else A64.H
        b = min(algorithm.batch_size, min(m, n))
        block = torch.zeros((b, *op.in_shape), dtype=torch.float64, device=A.device)
        op.apply(block)  # build the operator's matrices once
        calls = _timed(lambda: op.apply(block)) * min(m, n) / group.order / b
        probe = 512
        sym = torch.randn(probe, probe, dtype=torch.float64, device=A.device)
        sym = sym + sym.T
        eigh = _timed(lambda: torch.linalg.eigh(sym))
        matmul = _timed(lambda: sym @ sym)
    per_block = sum(eigh * (min(d) / probe) ** 3 + 2 * matmul * min(d) ** 2 * max(d) / probe**3 for d in dims)
    largest = max(dims, key=min)
    k = min(largest)
    # every B_chi in float64, plus the largest block's Gram, eigenvectors, workspace and other factor
    memory = 8 * (sum(a * b for a, b in dims) + 3 * k * k + max(largest) * k)
    return SVDCost(calls + per_block, int(memory))


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class EstimatedProgress:
    """A progress bar over an estimated duration (seconds), advanced by the clock; it stretches when the
    work takes longer than estimated."""

    def __init__(self, seconds: float, desc: str, disable: bool):
        self.total = max(1, round(seconds))
        self.bar = tqdm(total=self.total, desc=desc, unit="s", disable=disable, leave=False,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} elapsed, about {remaining} left "
                                   "(estimated)")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def _tick(self) -> None:
        start = time.perf_counter()
        while not self._stop.wait(0.5):
            elapsed = time.perf_counter() - start
            if elapsed >= self.bar.total:
                self.bar.total = math.ceil(elapsed * 1.2)
            self.bar.n = min(elapsed, self.bar.total)
            self.bar.refresh()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.bar.close()
        return False


def prepare_svd(A, request: SVDRequest, *, log=print, progress: bool = True):
    """A's SVD for DDRM: loaded from the disk cache, or computed (after saying how long and how much
    memory it will take, and refusing what would not fit in the memory available) and cached."""
    algorithm = request.algorithm
    path = cache.path_for(request.cache_dir, cache.fingerprint(A, algorithm))
    m, n = A.shape
    if path.is_file():
        log(f"DDRM: the {m} x {n} SVD ({algorithm}) is cached: {path}")
        return request.load(A)
    cost = estimate_cost(A, algorithm)
    free = available_memory()
    if free is not None and cost.bytes > free:
        raise MemoryError(
            f"--svd: the SVD of the {m} x {n} slice operator ({algorithm}) needs about {cost.bytes / 2**30:.1f} GiB, "
            f"{free / 2**30:.1f} GiB are available; use --svd randomized --svd-rank K (a truncated SVD), "
            "thinner slices, or a machine with more memory"
        )
    log(f"DDRM: computing the {m} x {n} SVD of the slice operator ({algorithm}): about "
        f"{format_seconds(cost.seconds)} and {cost.bytes / 2**30:.2f} GiB, once; cached as {path}")
    start = time.perf_counter()
    with EstimatedProgress(cost.seconds, "SVD", disable=not progress):
        svd = request.load(A)
    log(f"DDRM: SVD done in {format_seconds(time.perf_counter() - start)}")
    return svd
