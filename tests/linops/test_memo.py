"""linops.memo: typed keys, values remembered once, dropped by copies, pickles and .to()."""

import copy
import pickle
from dataclasses import dataclass

import pytest
import torch

import linops
from linops.memo import MemoKey, forget, holds, recall, remember, store


@dataclass(frozen=True)
class _Result(MemoKey):
    name: str


@dataclass(frozen=True)
class _Other(MemoKey):
    name: str


def test_remember_computes_once_and_keys_are_typed():
    A = linops.Diagonal(torch.arange(1.0, 5.0))
    calls = []
    assert remember(A, _Result("x"), lambda: calls.append(1) or 7) == 7
    assert remember(A, _Result("x"), lambda: calls.append(1) or 8) == 7
    assert calls == [1]
    assert recall(A, _Other("x")) is None  # same fields, other type: another key
    store(A, _Other("x"), 3)
    assert recall(A, _Other("x")) == 3 and holds(A, _Result("x"))
    forget(A, _Result("x"))
    assert not holds(A, _Result("x")) and holds(A, _Other("x"))
    forget(A)
    assert recall(A, _Other("x")) is None


def test_string_keys_are_refused():
    A = linops.Identity(3)
    with pytest.raises(TypeError, match="MemoKey"):
        remember(A, "svd", lambda: 1)


@pytest.mark.parametrize("duplicate", [copy.copy, copy.deepcopy, lambda a: pickle.loads(pickle.dumps(a)),
                                       lambda a: a.to(dtype=torch.float64)])
def test_copies_drop_the_memo(duplicate):
    A = linops.Diagonal(torch.arange(1.0, 5.0))
    store(A, _Result("x"), object())
    B = duplicate(A)
    assert recall(B, _Result("x")) is None and recall(A, _Result("x")) is not None
