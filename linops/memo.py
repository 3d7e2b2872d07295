"""Results remembered about an operator by code that does not own them, under typed keys.

An operator owns its defining fields; what a class derives from them on its own (a transfer function, a
ray table) is a `functools.cached_property` of that class. Everything else that is computed *about* an
operator elsewhere (its adjoint node, an SVD per algorithm, a norm, a pseudo-inverse, a backend's plan) is
remembered here, on the operator, under a key whose type says who computed it:

    @dataclass(frozen=True)
    class SVDResult(MemoKey):
        algorithm: object

    dec = remember(A, SVDResult(algorithm), lambda: compute_svd(A, algorithm))
    recall(A, SVDResult(algorithm))          # the value, or None

A key is a frozen dataclass deriving from `MemoKey` (hashable, compared by value and by type: two modules'
keys never collide). Copies, pickles and `.to()` drop the memo with the cached properties
(`LinearOperator.__getstate__`): a copy recomputes on first use and never shares derived data with its
original.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

MEMO_ATTRIBUTE = "_memo"


@dataclass(frozen=True)
class MemoKey:
    """Base class of the keys; subclass it as a frozen dataclass whose fields identify the result."""


def _store(op) -> dict:
    store = op.__dict__.get(MEMO_ATTRIBUTE)
    if store is None:
        store = op.__dict__[MEMO_ATTRIBUTE] = {}
    return store


def _checked(key) -> MemoKey:
    if not isinstance(key, MemoKey):
        raise TypeError(f"memo keys are MemoKey dataclasses, got {type(key).__name__}: {key!r}")
    return key


def recall(op, key: MemoKey) -> Any | None:
    """The value remembered on `op` under `key`, or None."""
    return _store(op).get(_checked(key))


def remember(op, key: MemoKey, compute: Callable[[], T]) -> T:
    """The value remembered on `op` under `key`; computed by `compute()` and stored on first use."""
    store = _store(op)
    if _checked(key) in store:
        return store[key]
    value = store[key] = compute()
    return value


def store(op, key: MemoKey, value: T) -> T:
    """Remember `value` on `op` under `key` (replacing an earlier value) and return it."""
    _store(op)[_checked(key)] = value
    return value


def holds(op, key: MemoKey) -> bool:
    """Whether a value is remembered on `op` under `key`."""
    return _checked(key) in _store(op)


def forget(op, key: MemoKey | None = None) -> None:
    """Drop the value under `key`, or everything remembered on `op` when `key` is None."""
    if key is None:
        op.__dict__.pop(MEMO_ATTRIBUTE, None)
    else:
        _store(op).pop(_checked(key), None)
