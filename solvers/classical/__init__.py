"""Classical reconstructions: the baselines the diffusion solvers are measured against."""

from .algebraic import AlgebraicReconstruction, gradient_descent, stable_step_size

__all__ = ["AlgebraicReconstruction", "gradient_descent", "stable_step_size"]
