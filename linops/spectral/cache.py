"""Opt-in on-disk cache of computed SVDs, keyed by an operator fingerprint.

The fingerprint hashes what identifies the linear map without trusting its Python identity:
the operator type and repr, shapes, dtype, the algorithm value, and the response of A and A^H to
fixed seeded probes (rounded to 6 significant digits relative to their largest entry, so that
bit-level noise between runs does not change the key). Two operators whose responses agree to that
precision share a key; a changed kernel or mask changes the response and thus the key. A rounding
boundary crossed between runs costs a cache miss (a recomputation), never a wrong answer.

Files are ``<dir>/svd-<fingerprint>.pt`` holding plain tensors (read with weights_only=True).
Only computed SVDs are stored; structured ones are cheap to rebuild.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch

from ..base import LinearOperator, precision_of
from .decomposition import SVD
from .storage import svd_from_tensors, svd_to_tensors

_PROBE_SEED = 20240601


def _probe(shape, op: LinearOperator) -> torch.Tensor:
    g = torch.Generator().manual_seed(_PROBE_SEED)
    x = torch.randn((2, *shape), dtype=torch.float64, generator=g)
    if op.dtype.is_complex:
        x = torch.complex(x, torch.randn((2, *shape), dtype=torch.float64, generator=g))
    return x.to(dtype=op.dtype if op.dtype.is_complex else precision_of(op.dtype), device=op.device)


def _quantized_bytes(t: torch.Tensor) -> bytes:
    t = torch.view_as_real(t) if t.is_complex() else t
    t = t.detach().to("cpu", torch.float64)
    peak = float(t.abs().max()) if t.numel() else 0.0
    if peak == 0.0:
        return b"zero"
    return torch.round(t / peak * 1e6).to(torch.int64).numpy().tobytes()


def fingerprint(A: LinearOperator, algorithm=None) -> str:
    """A hex digest identifying the linear map A (and the algorithm used on it)."""
    h = hashlib.sha256()
    for part in (type(A).__qualname__, repr(A), A.in_shape, A.out_shape, A.dtype, repr(algorithm)):
        h.update(repr(part).encode())
    with torch.no_grad():
        h.update(_quantized_bytes(A.apply(_probe(A.in_shape, A))))
        h.update(_quantized_bytes(A.H.apply(_probe(A.out_shape, A))))
    return h.hexdigest()[:32]


def path_for(directory: str | os.PathLike, key: str) -> Path:
    return Path(directory) / f"svd-{key}.pt"


def load(directory: str | os.PathLike, key: str, A: LinearOperator) -> SVD | None:
    """The cached SVD of A under `key`, or None when absent or unreadable."""
    path = path_for(directory, key)
    if not path.exists():
        return None
    try:
        data = torch.load(path, map_location=A.device, weights_only=True)
        return svd_from_tensors(A, data)
    except (OSError, RuntimeError, KeyError, ValueError):
        return None


def save(directory: str | os.PathLike, key: str, svd: SVD) -> Path:
    """Write a computed SVD (dense or block factors, storage.py) atomically; returns the file path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = svd_to_tensors(svd)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(data, tmp)
        os.replace(tmp, path_for(directory, key))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path_for(directory, key)
