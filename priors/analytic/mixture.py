"""The Gaussian mixture prior x0 ~ sum_k w_k N(mu_k, Sigma_k): exact denoiser, score and posterior.

The noisy marginal is the mixture of the noisy components, p_sigma(x) = sum_k w_k N(x; mu_k,
Sigma_k + sigma^2 I). With the responsibilities (a softmax, computed by logsumexp)

    r_k(x, sigma) = w_k N(x; mu_k, Sigma_k + sigma^2 I) / p_sigma(x)

Tweedie's formula gives, component by component,

    denoise(x, sigma) = sum_k r_k D_k(x, sigma),   D_k = mu_k + Sigma_k (Sigma_k + sigma^2 I)^{-1} (x - mu_k)
    score(x, sigma)   = sum_k r_k score_k(x, sigma)

For y = A x0 + sigma_y n the posterior is again a mixture: the component posteriors
N(m_k(y), C_k) of the Gaussian case, with weights pi_k(y) proportional to w_k N(y; A mu_k,
A Sigma_k A^H + sigma_y^2 I) (the component evidences).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from linops import LinearOperator

from ..protocol import UNIT, Convention, Prior
from .gaussian import GaussianPosterior, GaussianPrior, PosteriorMethod


@dataclass(frozen=True, eq=False)
class MixturePosterior:
    """p(x0 | y) = sum_k weights[..., k] N(components[k].mean, components[k].covariance).

    Attributes:
        weights: (*batch, K) posterior component probabilities pi_k(y).
        components: the K Gaussian component posteriors.
        log_evidence: (*batch,) log p(y) = logsumexp_k (log w_k + log p(y | k)).
    """

    weights: torch.Tensor
    components: tuple[GaussianPosterior, ...]
    log_evidence: torch.Tensor

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.components[0].event_shape

    @property
    def mean(self) -> torch.Tensor:
        """sum_k pi_k m_k, shape (*batch, *event)."""
        k = len(self.event_shape)
        w = self.weights.movedim(-1, 0).reshape(len(self.components), *self.weights.shape[:-1], *([1] * k))
        return sum(w[i] * c.mean for i, c in enumerate(self.components))

    def covariance_matrix(self) -> torch.Tensor:
        """sum_k pi_k (C_k + m_k m_k^T) - m m^T per measurement, shape (*batch, n, n)."""
        batch = self.weights.shape[:-1]
        n = math.prod(self.event_shape)
        means = torch.stack([c.mean.reshape(-1, n) for c in self.components])  # (K, N, n)
        covs = torch.stack([c.covariance_matrix() for c in self.components])  # (K, n, n)
        w = self.weights.reshape(-1, len(self.components)).T  # (K, N)
        second = torch.einsum("kb,kij->bij", w, covs) + torch.einsum("kb,kbi,kbj->bij", w, means, means)
        m = self.mean.reshape(-1, n)
        return (second - m[:, :, None] * m[:, None, :]).reshape(*batch, n, n)

    def sample(self, n: int = 1, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact posterior samples per measurement, shape (n, *batch, *event)."""
        n = int(n)
        K = len(self.components)
        batch = self.weights.shape[:-1]
        w = self.weights.reshape(-1, K).to(torch.float64)
        choice = torch.multinomial(w, n, replacement=True, generator=generator).T  # (n, N)
        draws = torch.stack([c.sample(n, generator=generator).reshape(n, w.shape[0], -1) for c in self.components])
        idx = choice[None, :, :, None].expand(1, n, w.shape[0], draws.shape[-1])
        picked = torch.gather(draws, 0, idx.to(draws.device))[0]
        return picked.reshape(n, *batch, *self.event_shape)


class GaussianMixturePrior(Prior):
    """x0 ~ sum_k w_k N(mu_k, Sigma_k).

    Args:
        weights: (K,) positive mixture weights (normalized to sum to 1).
        means: (K, *event) component means.
        covariances: K covariance operators (see `GaussianPrior`: Diagonal, CircularBlur, Matrix, ...),
            or a single operator shared by all components.
        convention: the units of x (default UNIT).
    """

    sigma_range = None

    def __init__(
        self,
        weights,
        means,
        covariances: LinearOperator | Sequence[LinearOperator],
        *,
        convention: Convention = UNIT,
    ):
        means = torch.as_tensor(means) if not isinstance(means, (list, tuple)) else torch.stack(list(means))
        K = means.shape[0]
        if isinstance(covariances, LinearOperator):
            covariances = [covariances] * K
        covariances = list(covariances)
        if len(covariances) != K:
            raise ValueError(f"{K} means but {len(covariances)} covariances; give one per component or one shared")
        components = [GaussianPrior(means[k], covariances[k], convention=convention) for k in range(K)]
        self._init(weights, components, convention)

    @classmethod
    def from_components(cls, weights, components: Sequence[GaussianPrior]) -> GaussianMixturePrior:
        """A mixture of given Gaussian priors (same event shape and convention)."""
        prior = object.__new__(cls)
        components = list(components)
        if not components:
            raise ValueError("a mixture needs at least one component")
        prior._init(weights, components, components[0].convention)
        return prior

    def _init(self, weights, components, convention):
        w = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
        if w.shape[0] != len(components):
            raise ValueError(f"{w.shape[0]} weights for {len(components)} components")
        if not bool((w > 0).all()) or not bool(torch.isfinite(w).all()):
            raise ValueError(f"mixture weights must be positive and finite, got {w.tolist()}")
        shapes = {c.event_shape for c in components}
        conventions = {c.convention for c in components}
        if len(shapes) != 1 or len(conventions) != 1:
            raise ValueError(
                f"mixture components must share one event shape and convention, got {shapes}, {conventions}"
            )
        self.components = tuple(components)
        self.weights = w / w.sum()
        self.log_weights = torch.log(self.weights)
        self.event_shape = components[0].event_shape
        self.convention = convention

    def __repr__(self):
        return f"GaussianMixturePrior(K={len(self.components)}, event_shape={self.event_shape})"

    def _log_joint(self, x, sigma) -> torch.Tensor:
        """log w_k + log N(x; mu_k, Sigma_k + sigma^2 I), shape (K, *batch)."""
        lw = self.log_weights.to(device=x.device, dtype=x.dtype)
        return torch.stack([lw[k] + c.log_prob(x, sigma) for k, c in enumerate(self.components)])

    def responsibilities(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """r_k(x, sigma), shape (*batch, K)."""
        return torch.softmax(self._log_joint(x, sigma), dim=0).movedim(0, -1)

    def _mix(self, x, sigma, values) -> torch.Tensor:
        r = torch.softmax(self._log_joint(x, sigma), dim=0)
        r = r.reshape(*r.shape, *([1] * len(self.event_shape)))
        return sum(r[k] * v for k, v in enumerate(values))

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """sum_k r_k(x, sigma) D_k(x, sigma)."""
        return self._mix(x, sigma, [c.denoise(x, sigma) for c in self.components])

    def score(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """sum_k r_k(x, sigma) score_k(x, sigma)."""
        return self._mix(x, sigma, [c.score(x, sigma) for c in self.components])

    def eps(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """sum_k r_k(x, sigma) eps_k(x, sigma) = -sigma score(x, sigma)."""
        return self._mix(x, sigma, [c.eps(x, sigma) for c in self.components])

    def log_prob(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        """log p_sigma(x) = logsumexp_k [log w_k + log N(x; mu_k, Sigma_k + sigma^2 I)], shape (*batch)."""
        return torch.logsumexp(self._log_joint(x, sigma), dim=0)

    def sample(
        self, n: int = 1, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """n samples: a component k ~ w, then x ~ N(mu_k, Sigma_k); shape (n, *event)."""
        n = int(n)
        choice = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        draws = torch.stack([c.sample(n, generator=generator, dtype=dtype) for c in self.components])
        return draws[choice, torch.arange(n)]

    def to_convention(self, convention: Convention) -> Prior:
        """Exact: each component maps to N(a mu_k + b, a^2 Sigma_k), weights unchanged."""
        if convention == self.convention:
            return self
        return GaussianMixturePrior.from_components(
            self.weights, [c.to_convention(convention) for c in self.components]
        )

    def posterior(
        self, A: LinearOperator, y: torch.Tensor, sigma_y: float, *, method: PosteriorMethod | None = None
    ) -> MixturePosterior:
        """p(x0 | y) for y = A x0 + sigma_y n: a mixture of the component posteriors (float64 inside).

        Needs every component's evidence log N(y; A mu_k, A Sigma_k A^H + sigma_y^2 I), so the
        method must be closed form or dense (not ConjugateGradient).
        """
        posts = [c.posterior(A, y, sigma_y, method=method) for c in self.components]
        if any(p.log_evidence is None for p in posts):
            raise ValueError(
                "the mixture posterior weights need each component's evidence log p(y | k), which the "
                "ConjugateGradient method does not compute; use method=Dense() (small problems) or a "
                "structured pair (diagonal A with diagonal covariances, circular blur with stationary ones)."
            )
        ev = torch.stack([p.log_evidence.to(torch.float64) for p in posts])  # (K, *batch)
        lw = self.log_weights.to(ev.device).reshape(-1, *([1] * (ev.ndim - 1)))
        joint = lw + ev
        out_dtype = posts[0].mean.dtype
        weights = torch.softmax(joint, dim=0).movedim(0, -1).to(out_dtype)
        return MixturePosterior(weights, tuple(posts), torch.logsumexp(joint, dim=0).to(out_dtype))
