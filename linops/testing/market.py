"""The operator market: a registry of small example operators for generic tests.

Each entry builds an operator for a given precision (torch.float32 or torch.float64; complex
operators use the matching complex dtype) from a seeded generator, and may carry an independent
reference implementation of its forward map (numpy/scipy code that shares nothing with the
operator), against which the generic tests compare.

    @register("blur-reflect", reference=numpy_blur_reference)
    def _(dtype, generator):
        return Blur(torch.rand(5, 5, generator=generator, dtype=dtype), (2, 8, 8), "reflect")

Example modules register at import; `entries()` imports them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..base import LinearOperator

Builder = Callable[[torch.dtype, torch.Generator], LinearOperator]
Reference = Callable[[LinearOperator, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class MarketEntry:
    """A named example: `build(dtype, generator)` and an optional numpy `reference(op, x)`."""

    name: str
    build: Builder
    reference: Reference | None = None
    tags: frozenset[str] = field(default_factory=frozenset)


_MARKET: dict[str, MarketEntry] = {}

#: modules whose import registers examples; a new family of operators appends its module here
EXAMPLE_MODULES = [
    "linops.testing.examples_basic",
    "linops.testing.examples_patches",
    "linops.testing.examples_severity",
    "linops.testing.examples_tomography",
    "linops.testing.examples_finite_difference",
    "linops.testing.examples_tie",
    "linops.testing.examples_function",
]


def register(name: str, *, reference: Reference | None = None, tags=()):
    """Decorator registering `build(dtype, generator) -> LinearOperator` under `name`."""

    def decorator(build: Builder) -> Builder:
        if name in _MARKET:
            raise ValueError(f"market entry {name!r} is registered twice")
        _MARKET[name] = MarketEntry(name, build, reference, frozenset(tags))
        return build

    return decorator


def entries(*, exclude_tags=()) -> list[MarketEntry]:
    """All registered examples (importing the example modules), minus those with excluded tags."""
    for module in EXAMPLE_MODULES:
        importlib.import_module(module)
    return [e for e in _MARKET.values() if not (e.tags & set(exclude_tags))]


def make(name: str, dtype: torch.dtype = torch.float64, seed: int = 0) -> LinearOperator:
    """Build the example `name` in precision `dtype` from a generator seeded with `seed`."""
    entries()
    if name not in _MARKET:
        raise KeyError(f"no market entry {name!r}; known: {sorted(_MARKET)}")
    return _MARKET[name].build(dtype, torch.Generator().manual_seed(seed))
