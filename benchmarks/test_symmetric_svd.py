"""The exact SVD of a tilt series: the symmetry-blocked Gram eigendecomposition against its peers, float32.

    python -m pytest benchmarks/test_symmetric_svd.py --benchmark-only --benchmark-group-by=group

Operator: `Radon.tilt_series((1, N, N), 128, 60.0)` (128 views over [-60, 60] degrees, N bins), N = 32 and 48.
Peers, side by side in the group "exact svd N":
  symmetric  SymmetricGramEigh(): four blocks (left-right and up-down flips), one eigh of N^2/4 each
  gram       GramEigh(): one eigh of the N^2 x N^2 Gram matrix
  dense      DenseSVD(): torch.linalg.svd of the (128 N) x N^2 matrix
Each computes from a fresh operator (no memory or disk cache). The full-size timings (64, 128, 256) are
measured by benchmarks/symmetric_svd.py, which writes benchmarks/results/symmetric_svd_*.json.
"""

from __future__ import annotations

import pytest

import linops
from linops.spectral import DenseSVD, GramEigh, SymmetricGramEigh

ALGORITHMS = {"symmetric": SymmetricGramEigh(), "gram": GramEigh(), "dense": DenseSVD(max_entries=2**28)}


@pytest.mark.parametrize("size", [32, 48])
@pytest.mark.parametrize("peer", list(ALGORITHMS))
def test_exact_svd(benchmark, size, peer):
    benchmark.group = f"exact svd {size}"
    algorithm = ALGORITHMS[peer]

    def setup():
        return (linops.Radon.tilt_series((1, size, size), 128, 60.0),), {}

    out = benchmark.pedantic(lambda A: linops.svd(A, algorithm), setup=setup, rounds=2, iterations=1)
    assert out.s.numel() > 0.9 * size * size
