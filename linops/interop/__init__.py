"""Adapters at the edge of linops: array libraries (numpy, CuPy), deepinv and pylops.

The core never imports deepinv, pylops or CuPy; the adapters import them lazily.
"""
