"""Testing tools for operators: the dot test and the operator market.

`dottest(A)` checks <A x, y> = <x, A^H y> on random tensors, like pylops' dottest.
The market (`linops.testing.market`) is a registry of small example operators; every generic
test in the suite runs over it, and a new operator joins by registering an example.
"""

from .checks import dottest, random_like_input, random_like_output
from .market import MarketEntry, entries, make, register
from .opaque import Opaque

__all__ = [
    "MarketEntry",
    "Opaque",
    "dottest",
    "entries",
    "make",
    "random_like_input",
    "random_like_output",
    "register",
]
