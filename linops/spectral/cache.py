"""Opt-in on-disk cache of computed SVDs: `svd(A, algorithm, cache_dir=...)`.

A cached factorisation is never handed to a different operator. Three guards:

Key (`fingerprint`). A SHA-256 of the operator's *parameters*, exactly: its type, and every value it
holds, recursively through child operators (the operands of expression nodes), geometry dataclasses,
enums, tuples and dicts. Tensors and arrays enter as their dtype, shape and raw bytes (detached, on
the CPU, contiguous, conjugation resolved); floats as `float.hex`. Nothing is normalised or rounded,
so A and 2 A, `Matrix(M)` and `Matrix(2 M)`, `Radon(pixel_size=2, detector_spacing=2)` and `Radon()`,
or two diagonals differing in one bit have different keys. The algorithm value (every field) and a
format tag are hashed too. The device is not (a CPU file serves a GPU operator). Derived data is
skipped: an operator's memo (`linops.memo`) and its ``functools.cached_property`` values, so the
key is the same before and after A is first applied; so are the attributes a class lists in
`execution_attributes` (how the map is computed, e.g. a projector's method: not which map it is).
The key is built without applying A, so it is the same on every machine.

Fallback. A value that cannot be hashed exactly (a callable, a wrapped deepinv physics or pylops
operator, any object defined outside linops that is not a dataclass, enum, tensor, array, number or
string; `unhashable_parts(A)` lists them) is replaced by the exact bytes (no rounding) of the
responses A x and A^H y to fixed seeded probes. Such a key is exact on one machine; on another, a
last-bit difference in a response only costs a miss (a recomputation), and the verification below
guards against the (never observed) case of two different maps with equal responses.

Verification (`residuals`). On saving, the factorisation (U, s, V) is measured against A on a
seeded probe:

    forward  r_f = ||A x - U diag(s) V^H x|| / max(||A x||, ||U diag(s) V^H x||)
    adjoint  r_a = ||A^H U z - V (s * z)||   / max(||A^H U z||, ||V (s * z)||)

with x a Gaussian input and z a Gaussian vector of spectral coordinates. r_f is at rounding level
for a complete SVD and is the truncation error for a truncated one (U U^H A x is what DenseSVD,
GramEigh and RandomizedSVD reproduce), while A^H U = V diag(s) holds to rounding for all three
(RandomizedSVD: U^H A = U_B^H Q^H A = S V^H by construction). Both are stored with the factors. A
loaded file is used only if the same measurements on the operator at hand reproduce the stored
ones to within 32 sqrt(m + n) eps (eps of A's precision): 2 A against the SVD of A gives r_a = 1/2,
a diagonal changed by 1e-7 of one entry moves r_f by about 1e-8 (float64 tolerance ~1e-13). Before
that, the file must be a dict of this format whose key is the expected one, holding U (m, k) and
V (n, k) of A's dtype and s (k,) of its real precision, all finite, s >= 0 and non-increasing,
1 <= k <= min(m, n), with k as the algorithm promises (DenseSVD: k = min(m, n); RandomizedSVD(rank=r):
k = r; RandomizedSVD(threshold=t): s > t; GramEigh(rtol): s > rtol s_0). Anything else (an empty or
truncated file, garbage, a bare tensor, list or number, NaN or negative singular values, a wrong
dtype or shape, a failed verification) is discarded with an `SVDCacheWarning`, deleted, and the SVD
recomputed (and saved again).

Files. ``<dir>/svd-<key>.pt``, read with ``torch.load(weights_only=True)`` (plain tensors, numbers and
strings only). Only computed SVDs are stored; structured ones are cheap to rebuild. One entry takes

    bytes = (m k + n k) itemsize(A.dtype) + k itemsize(real precision)      (`entry_bytes`)

plus about 1 KiB of container: (m + n + 1) k itemsize for a real operator. A `SymmetricGramEigh` result is
stored as its reduced block factors instead (`symmetric.block_svd_to_tensors`: "characters", "s" and
"V.<chi>", "U.<chi>" for each block; sum over blocks of (n_chi + m_chi) k_chi itemsize, about a quarter of
the above with four blocks), validated by rebuilding it on A (`block_svd_from_tensors`) and verified
through the operators U and V with the same residuals (`operator_residuals`). The 8192 x 4096 tilt series
of a 64 x 64 image (k <= 4096, float32) takes at most 201 MB; the 16384 x 16384 one of a 128 x 128 image
at most 2.1 GB.

Writes are atomic (a temporary ``.svd-*.pt.tmp`` in the same folder, then `os.replace`). A folder that
cannot be created or written (read-only, full, a path through a regular file) costs a warning and the
computed SVD is returned uncached: `save` never raises after the work is done. Temporary files older
than an hour (left by a killed writer) are removed on the next save into the folder, including the
``tmpXXXXXXXX.tmp`` names of the previous format.

Size cap. `svd(..., cache_max_bytes=N)`, else the environment variable LINOPS_CACHE_MAX_BYTES (an
integer number of bytes, optionally with a K, M, G or T suffix, powers of 1024), else no cap. After
each save, the least recently used entries (by modification time; a cache hit refreshes it) are
deleted until the folder's ``svd-*.pt`` files total at most N bytes. A result larger than N is not
written (with a warning).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import math
import os
import re
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..base import LinearOperator, derived_names, precision_of
from ..operators.decomposition import SVD
from .computed import DenseSVD, GramEigh, RandomizedSVD, flat_svd
from .symmetric import BlockBasis, SymmetricGramEigh, block_svd_from_tensors, block_svd_to_tensors

#: stored in every file and hashed into every key; bump when either changes meaning
CACHE_FORMAT = 2
#: environment variable holding the default size cap in bytes
MAX_BYTES_ENV = "LINOPS_CACHE_MAX_BYTES"
#: temporary files older than this (seconds) are taken to be left by a killed writer
STALE_TEMP_SECONDS = 3600.0

_CONTAINER_SLACK = 1 << 16  # bytes a file may hold beyond its tensors (zip records, pickle, metadata)
_PROBE_SEED = 20240601
_CHECK_SEED = 20240602
_ENTRY = re.compile(r"svd-[0-9a-f]{32}\.pt")
_TEMP = re.compile(r"\.svd-.+\.pt\.tmp|tmp[a-z0-9_]{8}\.tmp")  # current, and format 1's mkstemp names
_TEMP_PREFIX, _TEMP_SUFFIX = ".svd-", ".pt.tmp"


class SVDCacheWarning(RuntimeWarning):
    """A cache file was discarded, or a result could not be written (the SVD itself is fine)."""


# ----------------------------------------------------------------------------------------------
# the key


class _Digest:
    """Feeds values into a hash exactly; records the parts it cannot hash exactly."""

    def __init__(self):
        self.unhashable: list[str] = []
        self._objects: dict[int, bytes] = {}  # id -> digest of operators and records seen in this call
        self._alive: list = []  # keeps those objects alive, so their ids are not reused meanwhile
        self._active: set[int] = set()

    def feed(self, h, value, path: str) -> None:
        tag = lambda s: h.update(s.encode() + b"\x00")
        if isinstance(value, enum.Enum):
            tag(f"enum:{_qualified(type(value))}.{value.name}")
        elif value is None or isinstance(value, (bool, int, str)):
            tag(f"{type(value).__name__}:{value!r}")
        elif isinstance(value, bytes):
            tag(f"bytes:{len(value)}")
            h.update(value)
        elif isinstance(value, float):
            tag(f"float:{value.hex()}")
        elif isinstance(value, complex):
            tag(f"complex:{value.real.hex()},{value.imag.hex()}")
        elif isinstance(value, torch.dtype):
            tag(f"dtype:{value}")
        elif isinstance(value, torch.device):
            tag("device")  # where a map lives is not part of the map
        elif isinstance(value, torch.Tensor):
            self._tensor(h, value, path)
        elif isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                self.unhashable.append(path)
                tag("unhashable")
            else:
                tag(f"ndarray:{value.dtype.str}:{value.shape}")
                h.update(np.ascontiguousarray(value).tobytes())
        elif isinstance(value, np.generic):
            tag(f"numpy:{value.dtype.str}")
            h.update(value.tobytes())
        elif isinstance(value, (tuple, list)):
            tag(f"{type(value).__name__}:{len(value)}")
            for i, v in enumerate(value):
                self.feed(h, v, f"{path}[{i}]")
        elif isinstance(value, dict):
            tag(f"dict:{len(value)}")
            for k in sorted(value, key=repr):
                self.feed(h, k, f"{path}.key")
                self.feed(h, value[k], f"{path}[{k!r}]")
        elif isinstance(value, type):
            tag(f"type:{_qualified(value)}")
        elif isinstance(value, LinearOperator) or _is_record(value):
            h.update(self._object(value, path))
        else:  # callables, foreign objects (a deepinv physics, a pylops operator), ...
            self.unhashable.append(f"{path} ({type(value).__name__})")
            tag("unhashable")

    def _tensor(self, h, t: torch.Tensor, path: str) -> None:
        t = t.detach()
        h.update(f"tensor:{t.dtype}:{tuple(t.shape)}:{t.layout}\x00".encode())
        if t.layout == torch.sparse_coo:
            t = t.coalesce()
            parts = (t.indices(), t.values())
        elif t.layout in (torch.sparse_csr, torch.sparse_bsr):
            parts = (t.crow_indices(), t.col_indices(), t.values())
        elif t.layout in (torch.sparse_csc, torch.sparse_bsc):
            parts = (t.ccol_indices(), t.row_indices(), t.values())
        else:
            parts = (t,)
        for p in parts:
            try:
                p = p.resolve_conj().resolve_neg().to("cpu").contiguous().reshape(-1)
                h.update(p.view(torch.uint8).numpy())
            except (RuntimeError, TypeError, NotImplementedError):  # meta or quantized tensors, ...
                self.unhashable.append(f"{path} (tensor)")
                h.update(b"unhashable\x00")

    def _object(self, obj, path: str) -> bytes:
        key = id(obj)
        if key in self._objects:
            return self._objects[key]
        if key in self._active:
            return b"cycle\x00"
        self._active.add(key)
        h = hashlib.sha256(f"object:{_qualified(type(obj))}\x00".encode())
        name = type(obj).__name__
        if dataclasses.is_dataclass(obj):
            items = [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
        else:
            derived = _derived_attributes(type(obj))
            items = sorted((k, v) for k, v in vars(obj).items() if k not in derived)
        for attr, value in items:
            h.update(f"{attr}=".encode())
            self.feed(h, value, f"{path}.{attr}" if path else f"{name}.{attr}")
        self._active.discard(key)
        self._objects[key] = out = h.digest()
        self._alive.append(obj)
        return out


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_record(value) -> bool:
    """A dataclass instance, or an instance of a plain class defined in linops (hashed by its fields)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return True
    module = type(value).__module__ or ""
    return (module == "linops" or module.startswith("linops.")) and hasattr(value, "__dict__") and not callable(value)


@functools.cache
def _derived_attributes(cls: type) -> frozenset[str]:
    """Names of the attributes that are not parameters of the map: derived data (`base.derived_names`: the
    memo, the functools.cached_property values) and the class's `execution_attributes` (how it is computed)."""
    return derived_names(cls) | frozenset(getattr(cls, "execution_attributes", ()))


def _walk(A: LinearOperator) -> tuple[bytes, list[str]]:
    d = _Digest()
    h = hashlib.sha256()
    d.feed(h, A, "")
    return h.digest(), d.unhashable


def unhashable_parts(A: LinearOperator) -> list[str]:
    """The attributes of A (and of its operands) that the key cannot hash exactly: for those, the key
    falls back to A's exact probe responses (module docstring). Empty for every linops operator."""
    return _walk(A)[1]


def _probe(shape, A: LinearOperator, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    real = precision_of(A.dtype)
    x = torch.randn((1, *shape), dtype=torch.float64, generator=g)
    if A.dtype.is_complex:
        x = torch.complex(x, torch.randn((1, *shape), dtype=torch.float64, generator=g))
        return x.to(device=A.device, dtype=A.dtype)
    return x.to(device=A.device, dtype=real)


def fingerprint(A: LinearOperator, algorithm=None) -> str:
    """A hex digest identifying the linear map A and the algorithm used on it (module docstring):
    exact parameters, plus exact probe responses where a parameter cannot be hashed."""
    digest, unhashable = _walk(A)
    h = hashlib.sha256(f"linops-svd-cache:{CACHE_FORMAT}\x00".encode())
    h.update(digest)
    _Digest().feed(h, algorithm, "algorithm")
    if unhashable:
        with torch.no_grad():
            responses = (A.apply(_probe(A.in_shape, A, _PROBE_SEED)), A.H.apply(_probe(A.out_shape, A, _PROBE_SEED)))
            for response in responses:
                r = response.detach().resolve_conj().to("cpu").contiguous().reshape(-1)
                h.update(f"probe:{r.dtype}:{r.numel()}\x00".encode())
                h.update(r.view(torch.uint8).numpy())
    return h.hexdigest()[:32]


# ----------------------------------------------------------------------------------------------
# verification


def residuals(A: LinearOperator, U: torch.Tensor, s: torch.Tensor, V: torch.Tensor) -> tuple[float, float]:
    """(r_f, r_a): the forward and adjoint residuals of A ~ U diag(s) V^H on the seeded probes
    (module docstring); U (m, k), s (k,), V (n, k) on A's device."""
    with torch.no_grad():
        x = _probe(A.in_shape, A, _CHECK_SEED)
        g = torch.Generator().manual_seed(_CHECK_SEED + 1)
        z = torch.randn(s.shape[0], dtype=torch.float64, generator=g)
        if A.dtype.is_complex:
            z = torch.complex(z, torch.randn(s.shape[0], dtype=torch.float64, generator=g))
        z = z.to(device=A.device, dtype=U.dtype)
        sc = s.to(U.dtype)
        ax = A.apply(x).reshape(-1)
        usvx = U @ (sc * (V.mH @ x.reshape(-1)))
        ahuz = A.H.apply((U @ z).reshape(1, *A.out_shape)).reshape(-1)
        vsz = V @ (sc * z)
        return _relative(ax, usvx), _relative(ahuz, vsz)


def operator_residuals(A: LinearOperator, svd: SVD) -> tuple[float, float]:
    """`residuals` with U and V applied as operators (for SVDs whose factors are not dense matrices)."""
    with torch.no_grad():
        x = _probe(A.in_shape, A, _CHECK_SEED)
        k = svd.s.shape[0]
        g = torch.Generator().manual_seed(_CHECK_SEED + 1)
        z = torch.randn(k, dtype=torch.float64, generator=g)
        if A.dtype.is_complex:
            z = torch.complex(z, torch.randn(k, dtype=torch.float64, generator=g))
        z = z.to(device=A.device, dtype=svd.U.dtype)[None]
        sc = svd.s.to(svd.U.dtype)
        ax = A.apply(x).reshape(-1)
        usvx = svd.U.apply(sc * svd.V.H.apply(x)).reshape(-1)
        ahuz = A.H.apply(svd.U.apply(z)).reshape(-1)
        vsz = svd.V.apply(sc * z).reshape(-1)
        return _relative(ax, usvx), _relative(ahuz, vsz)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    wide = torch.complex128 if a.is_complex() or b.is_complex() else torch.float64
    a, b = a.to(wide), b.to(wide)
    scale = max(float(torch.linalg.vector_norm(a)), float(torch.linalg.vector_norm(b)))
    return float(torch.linalg.vector_norm(a - b)) / scale if scale > 0 else 0.0


def tolerance(A: LinearOperator) -> float:
    """How far a reloaded file's residuals may move from the stored ones: 32 sqrt(m + n) eps."""
    m, n = A.shape
    return 32 * math.sqrt(m + n) * torch.finfo(precision_of(A.dtype)).eps


# ----------------------------------------------------------------------------------------------
# files


def path_for(directory: str | os.PathLike, key: str) -> Path:
    return Path(directory) / f"svd-{key}.pt"


def entry_bytes(A: LinearOperator, k: int) -> int:
    """The tensor payload of one cached SVD with k triplets: (m k + n k) itemsize + k real itemsize."""
    m, n = A.shape
    itemsize = torch.empty((), dtype=A.dtype).element_size()
    return (m + n) * k * itemsize + k * torch.empty((), dtype=precision_of(A.dtype)).element_size()


def max_bytes_setting(max_bytes: int | None = None) -> int | None:
    """The size cap: `max_bytes` if given, else $LINOPS_CACHE_MAX_BYTES, else None (no cap)."""
    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 0:
            raise ValueError(f"cache_max_bytes must be a non-negative int (bytes) or None, got {max_bytes!r}")
        return int(max_bytes)
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return None
    match = re.fullmatch(r"(\d+)\s*([kmgt]?)(i?b)?", text, re.IGNORECASE)
    if match is None:
        raise ValueError(
            f"{MAX_BYTES_ENV} must be a number of bytes with an optional K, M, G or T suffix "
            f"(e.g. 2000000000 or 2G), got {text!r}"
        )
    return int(match.group(1)) * 1024 ** ("kmgt".find(match.group(2).lower()) + 1 if match.group(2) else 0)


class _Invalid(Exception):
    pass


def load(directory: str | os.PathLike, key: str, A: LinearOperator, algorithm=None) -> SVD | None:
    """The cached SVD of A under `key`, or None when absent. A file that cannot be read, is not a
    valid SVD of A's shapes and dtype for `algorithm`, or fails the verification on A is deleted
    with an `SVDCacheWarning` and None is returned (the caller recomputes)."""
    path = path_for(directory, key)
    try:
        if not path.is_file():
            return None
    except OSError:
        return None
    try:
        try:
            size = path.stat().st_size
            largest = entry_bytes(A, min(A.shape)) + _CONTAINER_SLACK
            if size > largest:  # do not read gigabytes that cannot be an SVD of A
                raise _Invalid(f"{size:,} bytes, more than an SVD of A can take ({largest:,})")
            data = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            return None  # evicted meanwhile
        except _Invalid:
            raise
        except Exception as error:  # any unreadable file is discarded: EOFError, UnpicklingError, ...
            raise _Invalid(f"unreadable ({type(error).__name__}: {error})") from None
        if isinstance(data, dict) and "characters" in data:  # SymmetricGramEigh's block factors
            blocks, claimed = _validated_blocks(data, key, A, algorithm)
            measured = operator_residuals(A, blocks)
        else:
            blocks = None
            U, s, V, claimed = _validated(data, key, A, algorithm)
            U, s, V = U.to(A.device), s.to(A.device), V.to(A.device)
            measured = residuals(A, U, s, V)
        tol = tolerance(A)
        names = ("forward", "adjoint")
        for name, now, then in zip(names, measured, claimed):
            if not abs(now - then) <= tol:
                raise _Invalid(
                    f"it does not factor this operator: {name} residual {now:.3e} on the probe, against "
                    f"{then:.3e} when it was saved (tolerance {tol:.1e})"
                )
    except _Invalid as reason:
        warnings.warn(
            f"SVD cache: discarding {path} for {A!r}: {reason}; recomputing.", SVDCacheWarning, stacklevel=4
        )
        _remove(path)
        return None
    try:
        os.utime(path)  # least recently used = oldest modification time
    except OSError:
        pass
    return blocks if blocks is not None else flat_svd(A, U, s, V)


def _validated(data, key: str, A: LinearOperator, algorithm):
    if not isinstance(data, dict):
        raise _Invalid(f"it holds a {type(data).__name__}, not the dict of an SVD cache file")
    _check_header(data, key)
    U, s, V = (data.get(name) for name in ("U", "s", "V"))
    if not all(isinstance(t, torch.Tensor) and t.layout == torch.strided for t in (U, s, V)):
        raise _Invalid("U, s and V are not all dense tensors")
    m, n = A.shape
    real = precision_of(A.dtype)
    if U.dtype != A.dtype or V.dtype != A.dtype or s.dtype != real:
        raise _Invalid(f"dtypes U {U.dtype}, s {s.dtype}, V {V.dtype}; expected {A.dtype}, {real}, {A.dtype}")
    k = s.shape[0] if s.ndim == 1 else -1
    if s.ndim != 1 or not 1 <= k <= min(m, n) or tuple(U.shape) != (m, k) or tuple(V.shape) != (n, k):
        raise _Invalid(
            f"shapes U {tuple(U.shape)}, s {tuple(s.shape)}, V {tuple(V.shape)}; expected ({m}, k), (k,), ({n}, k) "
            f"with 1 <= k <= {min(m, n)}"
        )
    _check_finite((U, s, V))
    if bool((s < 0).any()) or bool((s[1:] > s[:-1]).any()):
        raise _Invalid("singular values that are negative or not in decreasing order")
    return U, s, V, _promised_and_residuals(data, algorithm, s, m, n)


def _validated_blocks(data: dict, key: str, A: LinearOperator, algorithm) -> tuple[SVD, tuple[float, float]]:
    """The SVD rebuilt from a block-layout file (`symmetric.block_svd_from_tensors`), checked as `_validated`
    checks the flat layout (format and key, tensors of A's dtype, finite, s >= 0, the algorithm's promise)."""
    _check_header(data, key)
    factors = {name: t for name, t in data.items() if name == "s" or name[:2] in ("U.", "V.")}
    if "s" not in factors or not all(
        isinstance(t, torch.Tensor) and t.layout == torch.strided for t in (data["characters"], *factors.values())
    ):
        raise _Invalid("the block factors are missing or not all dense tensors")
    real = precision_of(A.dtype)
    if factors["s"].dtype != real or any(t.dtype != A.dtype for name, t in factors.items() if name != "s"):
        dtypes = sorted({str(t.dtype) for t in factors.values()})
        raise _Invalid(f"block factors of dtypes {dtypes}; expected {A.dtype} (s: {real})")
    _check_finite(factors.values())
    try:
        tensors = {name: t.to(A.device) for name, t in data.items() if isinstance(t, torch.Tensor)}
        svd = block_svd_from_tensors(A, tensors)
    except (KeyError, ValueError, TypeError, RuntimeError) as error:
        raise _Invalid(f"block factors that do not fit A ({type(error).__name__}: {error})") from None
    m, n = A.shape
    if not 1 <= svd.s.shape[0] <= min(m, n) or bool((svd.s < 0).any()):
        raise _Invalid(f"{svd.s.shape[0]} singular values, or negative ones, for a {m} x {n} operator")
    return svd, _promised_and_residuals(data, algorithm, svd.s, m, n)


def _check_header(data: dict, key: str) -> None:
    """The file is of this cache format and holds the SVD of the operator with this key."""
    if data.get("format") != CACHE_FORMAT or data.get("key") != key:
        raise _Invalid(f"format {data.get('format')!r} and key {data.get('key')!r}, expected {CACHE_FORMAT} and {key}")


def _check_finite(tensors) -> None:
    """No NaN or inf entry. One pass per tensor (isfinite(t).all() is 40x slower): a NaN or inf entry makes the
    sum NaN or inf; so does an overflow, which no valid file has (|U_ij|, |V_ij| <= 1)."""
    if not all(bool(torch.isfinite(t.sum())) for t in tensors):
        raise _Invalid("non-finite entries (NaN or inf) or overflowing magnitudes")


def _promised_and_residuals(data: dict, algorithm, s: torch.Tensor, m: int, n: int) -> tuple[float, float]:
    """Check that s is what `algorithm` promises, and return the stored (forward, adjoint) residuals."""
    promise = _algorithm_promise(algorithm, s, m, n)
    if promise:
        raise _Invalid(promise)
    claimed = data.get("residuals")
    if (
        not isinstance(claimed, (tuple, list))
        or len(claimed) != 2
        or not all(isinstance(r, float) and 0 <= r <= 2 for r in claimed)
    ):
        raise _Invalid(f"no valid stored residuals (got {claimed!r})")
    return tuple(claimed)


def _algorithm_promise(algorithm, s: torch.Tensor, m: int, n: int) -> str | None:
    """What a result of `algorithm` must satisfy, or None when s does."""
    k = s.shape[0]
    if isinstance(algorithm, DenseSVD) and k != min(m, n):
        return f"{k} singular values where DenseSVD gives min(m, n) = {min(m, n)}"
    if isinstance(algorithm, RandomizedSVD):
        if algorithm.rank is not None and k != algorithm.rank:
            return f"{k} singular values where {algorithm} gives {algorithm.rank}"
        if algorithm.threshold is not None and not bool((s > algorithm.threshold).all()):
            return f"singular values at or below the threshold {algorithm.threshold}"
    if isinstance(algorithm, (GramEigh, SymmetricGramEigh)) and not bool((s > algorithm.rtol * s[0]).all()):
        return f"singular values at or below rtol * s_0 = {algorithm.rtol} * {float(s[0]):.3e}"
    return None


def save(
    directory: str | os.PathLike,
    key: str,
    svd: SVD,
    A: LinearOperator,
    algorithm=None,
    *,
    max_bytes: int | None = None,
) -> Path | None:
    """Write the computed (flat) SVD of A with its verification residuals, atomically; returns the
    path, or None (with an `SVDCacheWarning`) when it is larger than the size cap or the folder
    cannot be written. Removes stale temporaries first and evicts least recently used entries after.
    `max_bytes`: the cap in bytes (None: `max_bytes_setting()`, i.e. $LINOPS_CACHE_MAX_BYTES)."""
    limit = max_bytes_setting(max_bytes)
    directory = Path(directory)
    blocks = isinstance(svd.V, BlockBasis)  # SymmetricGramEigh: its reduced block factors
    if blocks:
        factors = {name: _compact(t) for name, t in block_svd_to_tensors(svd).items()}
        payload = sum(t.numel() * t.element_size() for t in factors.values())
    else:
        U, s, V = svd.U.matrix, svd.s, svd.V.matrix
        payload = entry_bytes(A, s.shape[0])
    path = path_for(directory, key)
    if limit is not None and payload > limit:
        warnings.warn(
            f"SVD cache: not writing the SVD of {A!r} ({payload:,} bytes of U, s and V) to {directory}: it "
            f"exceeds the cap of {limit:,} bytes (cache_max_bytes or ${MAX_BYTES_ENV}).",
            SVDCacheWarning,
            stacklevel=4,
        )
        return None
    if blocks:
        measured = operator_residuals(A, block_svd_from_tensors(A, factors))  # as they will be read back
    else:
        U, s, V = _compact(U), _compact(s), _compact(V)  # measured in the layout they will be read back in
        factors = {"U": U.cpu(), "s": s.cpu(), "V": V.cpu()}
        measured = residuals(A, U, s, V)
    data = {
        "format": CACHE_FORMAT,
        "key": key,
        "operator": repr(A),
        "algorithm": repr(algorithm),
        "residuals": list(measured),
        **factors,
    }
    tmp = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(directory)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX)
        os.close(fd)
        torch.save(data, tmp)
        size = os.path.getsize(tmp)
        if limit is not None and size > limit:
            warnings.warn(
                f"SVD cache: not writing the SVD of {A!r} to {directory}: its file takes {size:,} bytes, above "
                f"the cap of {limit:,} bytes.",
                SVDCacheWarning,
                stacklevel=4,
            )
            return None
        os.replace(tmp, path)
        tmp = None
    except (OSError, RuntimeError) as error:  # RuntimeError: torch's writer on a full disk
        warnings.warn(
            f"SVD cache: could not write the SVD of {A!r} to {directory} ({type(error).__name__}: {error}); "
            f"it is returned but not cached.",
            SVDCacheWarning,
            stacklevel=4,
        )
        return None
    finally:
        if tmp is not None:
            _remove(Path(tmp))
    if limit is not None:
        evict(directory, limit, keep=path)
    return path


def _compact(t: torch.Tensor) -> torch.Tensor:
    """t in its own contiguous storage (torch.save writes a view's whole storage)."""
    t = t.detach()
    if t.is_contiguous() and t.untyped_storage().nbytes() == t.numel() * t.element_size():
        return t
    return t.clone(memory_format=torch.contiguous_format)


def remove_stale_temporaries(directory: str | os.PathLike, max_age: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete temporary files of this cache older than `max_age` seconds (a killed writer's); returns them."""
    removed = []
    now = time.time()
    for entry in _entries(directory, _TEMP):
        path, stat = entry
        if now - stat.st_mtime > max_age and _remove(path):
            removed.append(path)
    return removed


def evict(directory: str | os.PathLike, max_bytes: int, keep: Path | None = None) -> list[Path]:
    """Delete the least recently used ``svd-*.pt`` files until the rest total at most `max_bytes`
    (never `keep`, the file just written); returns the deleted paths."""
    files = sorted(_entries(directory, _ENTRY), key=lambda e: e[1].st_mtime)  # oldest first
    total = sum(stat.st_size for _, stat in files)
    removed = []
    for path, stat in files:
        if total <= max_bytes:
            break
        if keep is not None and path == Path(keep):
            continue
        if _remove(path):
            removed.append(path)
        total -= stat.st_size
    return removed


def _entries(directory, pattern: re.Pattern) -> list[tuple[Path, os.stat_result]]:
    out = []
    try:
        names = os.listdir(directory)
    except OSError:
        return out
    for name in names:
        if pattern.fullmatch(name):
            path = Path(directory) / name
            try:
                out.append((path, path.stat()))
            except OSError:
                pass  # removed meanwhile
    return out


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except OSError:
        return False
