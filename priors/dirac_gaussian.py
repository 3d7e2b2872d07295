"""The exact degradation-aware prior for Gaussian data: Phi(y_t, t) = E[x0 | y_t] in closed form.

For x0 ~ N(mu, Sigma) and y_t = A_t x0 + sigma_t z, z ~ N(0, I) (a `DegradationProcess`), (x0, y_t) is
jointly Gaussian and

    E[x0 | y_t] = mu + G_t (y_t - A_t mu),    G_t = Sigma A_t^T (A_t Sigma A_t^T + sigma_t^2 I)^{-1},

with A_t the dense matrix of the family member (row-major flattening). Computed in float64 by a
Cholesky solve; G_t and A_t mu are cached per severity value, so a Dirac sampler that calls Phi at
the same t for a whole batch builds them once. Small problems only (n = prod(image_shape) up to a
few thousand). Build the family in float64 for exactness tests (its kernels are cast to its dtype).
"""

from __future__ import annotations

import torch

from linops import LinearOperator

from .dirac import DegradationAware, DegradationProcess
from .protocol import UNIT, Convention


class GaussianDegradationAwarePrior(DegradationAware):
    """Phi(y_t, t) = E[x0 | y_t] for x0 ~ N(mean, covariance) under `process`.

    Args:
        mean: a tensor of shape image_shape (or a scalar, broadcast).
        covariance: a (n, n) tensor or a linops operator on image_shape (made dense), n = prod(image_shape).
        process: the degradation process y_t comes from.
        max_cached: how many severities keep their gain matrix.
    """

    def __init__(
        self,
        mean,
        covariance,
        process: DegradationProcess,
        *,
        convention: Convention = UNIT,
        max_cached: int = 64,
    ):
        if not isinstance(process, DegradationProcess):
            raise TypeError(f"process must be a DegradationProcess, got {type(process).__name__}")
        self.process = process
        self.convention = convention
        shape = process.image_shape
        n = int(torch.tensor(shape).prod())
        self.mean = torch.as_tensor(mean, dtype=torch.float64).expand(shape).reshape(n).clone()
        if isinstance(covariance, LinearOperator):
            if covariance.in_shape != shape or covariance.out_shape != shape:
                raise ValueError(
                    f"covariance maps {covariance.in_shape} -> {covariance.out_shape}; expected {shape} -> {shape}"
                )
            covariance = covariance.to(torch.float64).to_dense()
        cov = torch.as_tensor(covariance, dtype=torch.float64)
        if cov.shape != (n, n):
            raise ValueError(f"covariance must be ({n}, {n}) for images of shape {shape}, got {tuple(cov.shape)}")
        self.covariance = (cov + cov.T) / 2
        self.max_cached = int(max_cached)
        self._gains: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}

    def __repr__(self):
        return f"GaussianDegradationAwarePrior(image_shape={self.process.image_shape}, {self.process.family!r})"

    def operator_matrices(self, t) -> torch.Tensor:
        """The dense float64 matrices of A_t, shape (U, n, n) for U severities (one batched operator call)."""
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        A = self.process.family.at(t).to(torch.float64)  # sample-wise on (U, *image_shape)
        n, U = self.mean.shape[0], t.shape[0]
        eye = torch.eye(n, dtype=torch.float64, device=A.device).reshape(n, 1, *self.process.image_shape)
        with torch.no_grad():
            columns = A @ eye.expand(n, U, *self.process.image_shape)  # columns[j, u] = A_u e_j
        return columns.reshape(n, U, n).permute(1, 2, 0).cpu()

    def gain(self, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(G_t, A_t mu) in float64, cached per t."""
        self._prepare([float(t)])
        return self._gains[float(t)]

    def _prepare(self, ts: list[float]) -> None:
        """Compute and cache the gains of the severities in ts not cached yet, in one batch."""
        missing = sorted({t for t in ts if t not in self._gains})
        if not missing:
            return
        A = self.operator_matrices(missing)  # (U, n, n)
        s2 = self.process.sigma(torch.tensor(missing, dtype=torch.float64)) ** 2
        SA = self.covariance @ A.transpose(1, 2)  # Sigma A^T
        S = A @ SA + s2[:, None, None] * torch.eye(A.shape[1], dtype=torch.float64)
        L = torch.linalg.cholesky((S + S.transpose(1, 2)) / 2)
        G = torch.cholesky_solve(SA.transpose(1, 2), L).transpose(1, 2)  # Sigma A^T S^{-1} (S symmetric)
        A_mu = A @ self.mean
        for i, t in enumerate(missing):
            if len(self._gains) >= self.max_cached:
                self._gains.pop(next(iter(self._gains)))
            self._gains[t] = (G[i], A_mu[i])

    def predict(self, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B = y_t.shape[0]
        y = y_t.reshape(B, -1).to(torch.float64)
        out = torch.empty_like(y)
        values = torch.unique(t.cpu()).tolist()
        for first in range(0, len(values), self.max_cached):
            self._prepare(values[first : first + self.max_cached])
            for value in values[first : first + self.max_cached]:
                out = self._predict_rows(out, y, t, value)
        return out.reshape(y_t.shape).to(y_t.dtype)

    def _predict_rows(self, out, y, t, value):
        """out with the rows of samples at severity `value` set to their posterior means."""
        rows = (t.cpu() == value).nonzero().reshape(-1).to(y.device)
        G, A_mu = (m.to(y.device) for m in self._gains[value])
        return out.index_copy(0, rows, self.mean.to(y.device) + (y[rows] - A_mu) @ G.T)
