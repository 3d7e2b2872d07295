"""solvers: diffusion-based and classical reconstruction as short loops over operator and prior calls."""
