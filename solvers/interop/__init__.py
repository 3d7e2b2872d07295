"""Adapters to other libraries, one module per library, each importing its library only inside itself:

from solvers.interop.deepinv import as_reconstructor
"""
