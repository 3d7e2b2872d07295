"""Procedural training and test images (no downloads) and readers for real data."""

from .procedural import Family, ProceduralImages, Split, blobs, cell_texture, ellipse_phantom, standardize

__all__ = ["Family", "ProceduralImages", "Split", "blobs", "cell_texture", "ellipse_phantom", "standardize"]
