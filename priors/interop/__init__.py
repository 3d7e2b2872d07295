"""Adapters to other libraries, one module per library, each importing its library only inside itself:

from priors.interop.deepinv import from_deepinv, to_deepinv
"""
