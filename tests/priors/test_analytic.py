"""Analytic priors: exact denoisers, scores, log densities and posteriors against brute force."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

import linops
from priors import SYMMETRIC, UNIT, ConvertedPrior, standardized
from priors.analytic import (
    ConjugateGradient,
    Dense,
    EmpiricalPrior,
    GaussianMixturePrior,
    GaussianPrior,
    Structured,
    isotropic_power_spectrum,
    stationary_covariance,
)

F64 = torch.float64
SHAPE = (1, 6, 6)
N = math.prod(SHAPE)


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def spd(n, seed=0, floor=0.05):
    b = torch.randn(n, n, generator=gen(seed), dtype=F64)
    return b @ b.T / n + floor * torch.eye(n, dtype=F64)


def power_spectrum(shape=SHAPE[-2:]):
    return isotropic_power_spectrum(shape, lambda f: 1.0 / (f**2 + 0.02))


def circulant_dense(p):
    """Sigma[a, b] = k[a - b] with k = ifft2(P): an independent dense build of the stationary covariance."""
    H, W = p.shape
    k = torch.fft.ifft2(p.to(torch.complex128)).real
    idx_r = torch.arange(H)
    idx_c = torch.arange(W)
    dr = (idx_r[:, None] - idx_r[None, :]) % H  # (H, H)
    dc = (idx_c[:, None] - idx_c[None, :]) % W
    full = k[dr[:, None, :, None], dc[None, :, None, :]]  # (H, W, H, W)
    return full.reshape(H * W, H * W)


def make_gaussian(kind, seed=0):
    """(prior, mu (n,), Sigma (n, n)) for a covariance structure."""
    mu = torch.randn(SHAPE, generator=gen(seed + 100), dtype=F64)
    if kind == "dense":
        s = spd(N, seed)
        return GaussianPrior(mu, linops.Matrix(s, SHAPE, SHAPE)), mu.reshape(-1), s
    if kind == "diagonal":
        w = torch.rand(SHAPE, generator=gen(seed), dtype=F64) + 0.05
        return GaussianPrior(mu, linops.Diagonal(w)), mu.reshape(-1), torch.diag(w.reshape(-1))
    if kind == "fourier":
        p = power_spectrum()
        return GaussianPrior(mu, stationary_covariance(p, SHAPE)), mu.reshape(-1), circulant_dense(p)
    if kind == "scaled":
        w = torch.rand(SHAPE, generator=gen(seed), dtype=F64) + 0.05
        return GaussianPrior(mu, 2.5 * linops.Diagonal(w)), mu.reshape(-1), 2.5 * torch.diag(w.reshape(-1))
    if kind == "white":
        return GaussianPrior(mu, 0.3 * linops.Identity(SHAPE, dtype=F64)), mu.reshape(-1), 0.3 * torch.eye(N, dtype=F64)
    raise ValueError(kind)


KINDS = ["dense", "diagonal", "fourier", "scaled", "white"]


def make_mixture(seed=0, K=3, dense=False):
    means = torch.randn(K, *SHAPE, generator=gen(seed), dtype=F64) * 1.5
    if dense:
        covs = [linops.Matrix(spd(N, seed + k, 0.1), SHAPE, SHAPE) for k in range(K)]
    else:
        covs = [linops.Diagonal(torch.rand(SHAPE, generator=gen(seed + k), dtype=F64) + 0.1) for k in range(K)]
    weights = torch.rand(K, generator=gen(seed + 50), dtype=F64) + 0.2
    return GaussianMixturePrior(weights, means, covs)


def make_empirical(n_images=7, seed=0):
    return EmpiricalPrior(torch.rand(n_images, *SHAPE, generator=gen(seed), dtype=F64))


def all_priors():
    out = {f"gauss-{k}": make_gaussian(k)[0] for k in KINDS}
    out["gmm-diag"] = make_mixture()
    out["gmm-dense"] = make_mixture(dense=True)
    out["empirical"] = make_empirical()
    return out


PRIORS = all_priors()
SIGMAS = [0.05, 0.7, "per-sample"]


def sigma_for(s, batch):
    if s == "per-sample":
        return torch.linspace(0.03, 2.0, batch, dtype=F64)
    return s


def bcast(s, x):
    if isinstance(s, torch.Tensor):
        return s.reshape(-1, *([1] * (x.ndim - 1)))
    return s


# ------------------------------------------------------------------------------------------------
# the protocol: Tweedie identities, score = grad log p, batching


@pytest.mark.parametrize("name", list(PRIORS))
@pytest.mark.parametrize("s", SIGMAS)
def test_tweedie_identities(name, s):
    prior = PRIORS[name]
    x = torch.randn(4, *SHAPE, generator=gen(1), dtype=F64)
    sigma = sigma_for(s, 4)
    sb = bcast(sigma, x)
    d, sc, ep = prior.denoise(x, sigma), prior.score(x, sigma), prior.eps(x, sigma)
    torch.testing.assert_close(sc, (d - x) / sb**2, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ep, (x - d) / sb, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", list(PRIORS))
@pytest.mark.parametrize("s", [0.1, 0.8, "per-sample"])
def test_score_is_gradient_of_log_density(name, s):
    prior = PRIORS[name]
    x = torch.randn(3, *SHAPE, generator=gen(2), dtype=F64).requires_grad_(True)
    sigma = sigma_for(s, 3)
    (grad,) = torch.autograd.grad(prior.log_prob(x, sigma).sum(), x)
    torch.testing.assert_close(prior.score(x.detach(), sigma), grad, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", list(PRIORS))
def test_per_sample_sigma_equals_one_by_one(name):
    prior = PRIORS[name]
    x = torch.randn(3, *SHAPE, generator=gen(3), dtype=F64)
    sigma = torch.tensor([0.05, 0.4, 3.0], dtype=F64)
    batched = prior.denoise(x, sigma)
    single = torch.cat([prior.denoise(x[i : i + 1], float(sigma[i])) for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(PRIORS))
def test_extra_batch_dims_and_float32(name):
    prior = PRIORS[name]
    x = torch.randn(2, 3, *SHAPE, generator=gen(4), dtype=F64)
    d = prior.denoise(x, 0.3)
    assert d.shape == x.shape
    torch.testing.assert_close(d[1, 2], prior.denoise(x[1, 2:3], 0.3)[0])
    d32 = prior.denoise(x.float(), 0.3)
    assert d32.dtype == torch.float32
    torch.testing.assert_close(d32, d.float(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(PRIORS))
def test_denoiser_is_differentiable(name):
    prior = PRIORS[name]
    x = torch.randn(2, *SHAPE, generator=gen(5), dtype=F64).requires_grad_(True)
    prior.denoise(x, 0.2).pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# ------------------------------------------------------------------------------------------------
# Gaussian: closed forms


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("s", SIGMAS)
def test_gaussian_denoiser_closed_form(kind, s):
    prior, mu, cov = make_gaussian(kind)
    x = torch.randn(3, *SHAPE, generator=gen(6), dtype=F64)
    sigma = sigma_for(s, 3)
    got = prior.denoise(x, sigma).reshape(3, -1)
    sig = torch.as_tensor(sigma, dtype=F64).expand(3)
    for i in range(3):
        ref = mu + cov @ torch.linalg.solve(cov + sig[i] ** 2 * torch.eye(N, dtype=F64), x[i].reshape(-1) - mu)
        torch.testing.assert_close(got[i], ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sigma", [0.0, 0.3])
def test_gaussian_log_density(kind, sigma):
    prior, mu, cov = make_gaussian(kind)
    x = torch.randn(3, *SHAPE, generator=gen(7), dtype=F64)
    ref = MultivariateNormal(mu, cov + sigma**2 * torch.eye(N, dtype=F64)).log_prob(x.reshape(3, -1))
    torch.testing.assert_close(prior.log_prob(x, sigma), ref, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("kind", ["diagonal", "fourier"])
def test_structured_equals_structure_erased(kind):
    """The structured path agrees with the same covariance given as an opaque dense matrix."""
    prior, mu, cov = make_gaussian(kind)
    dense = GaussianPrior(mu.reshape(SHAPE), linops.Matrix(prior.covariance.to_dense(), SHAPE, SHAPE))
    x = torch.randn(3, *SHAPE, generator=gen(8), dtype=F64)
    torch.testing.assert_close(prior.denoise(x, 0.2), dense.denoise(x, 0.2), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(prior.log_prob(x, 0.2), dense.log_prob(x, 0.2), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(prior.covariance.to_dense(), cov, rtol=1e-10, atol=1e-10)


def test_gaussian_sampler_moments():
    prior, mu, cov = make_gaussian("fourier")
    x = prior.sample(40000, generator=gen(9), dtype=F64).reshape(40000, -1)
    scale = float(cov.diagonal().max())
    torch.testing.assert_close(x.mean(0), mu, rtol=0, atol=5 * math.sqrt(scale / 40000))
    torch.testing.assert_close(torch.cov(x.T), cov, rtol=0, atol=0.04 * scale)
    assert torch.equal(prior.sample(3, generator=gen(1)), prior.sample(3, generator=gen(1)))


def test_multichannel_stationary_covariance():
    p = torch.stack([power_spectrum(), 2 * power_spectrum()])  # per-channel spectra
    mu = torch.zeros(2, 6, 6, dtype=F64)
    prior = GaussianPrior(mu, stationary_covariance(p))
    x = torch.randn(2, 2, 6, 6, generator=gen(10), dtype=F64)
    for c in range(2):
        one = GaussianPrior(mu[c : c + 1], stationary_covariance(p[c : c + 1]))
        torch.testing.assert_close(prior.denoise(x, 0.3)[:, c : c + 1], one.denoise(x[:, c : c + 1], 0.3))
    shared = GaussianPrior(mu, stationary_covariance(power_spectrum(), (2, 6, 6)))
    assert shared.log_prob(x, 0.2).shape == (2,)
    ref = sum(
        GaussianPrior(mu[:1], stationary_covariance(power_spectrum(), (1, 6, 6))).log_prob(x[:, c : c + 1], 0.2)
        for c in range(2)
    )
    torch.testing.assert_close(shared.log_prob(x, 0.2), ref)


# ------------------------------------------------------------------------------------------------
# Gaussian posterior


def brute_posterior(mu, cov, a, y, sigma_y):
    """Dense float64 posterior mean and covariance (real a) by linalg.solve."""
    s = a @ cov @ a.T + sigma_y**2 * torch.eye(a.shape[0], dtype=F64)
    gain = torch.linalg.solve(s, a @ cov).T
    mean = mu + (y - a @ mu) @ gain.T
    return mean, cov - gain @ a @ cov, s


def operators():
    mask = linops.Mask(torch.rand(SHAPE, generator=gen(11)) > 0.4, dtype=F64)
    blur = linops.CircularBlur(linops.gaussian_kernel(0.8, 3, dtype=F64), SHAPE)
    thin = linops.Matrix(torch.randn(20, N, generator=gen(12), dtype=F64) / 6, SHAPE, (20,))
    tall = linops.Matrix(torch.randn(50, N, generator=gen(40), dtype=F64) / 6, SHAPE, (50,))
    return {"mask": mask, "blur": blur, "thin": thin, "tall": tall, "identity": linops.Identity(SHAPE, dtype=F64)}


OPS = operators()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op", list(OPS))
def test_posterior_matches_brute_force(kind, op):
    prior, mu, cov = make_gaussian(kind)
    A = OPS[op]
    a = A.to_dense()
    x0 = prior.sample(2, generator=gen(13), dtype=F64)
    y = A @ x0 + 0.1 * torch.randn(2, *A.out_shape, generator=gen(14), dtype=F64)
    mean, post_cov, s = brute_posterior(mu, cov, a, y.reshape(2, -1), 0.1)
    evidence = MultivariateNormal(a @ mu, s).log_prob(y.reshape(2, -1))
    for method in [None, Dense(), ConjugateGradient(rtol=1e-12)]:
        post = prior.posterior(A, y, 0.1, method=method)
        torch.testing.assert_close(post.mean.reshape(2, -1), mean, rtol=1e-8, atol=1e-8)
        if post.covariance is not None:
            torch.testing.assert_close(post.covariance_matrix(), post_cov, rtol=1e-8, atol=1e-9)
            torch.testing.assert_close(post.log_evidence, evidence, rtol=1e-9, atol=1e-8)


def test_structured_method_used_and_refused():
    prior, *_ = make_gaussian("fourier")
    post = prior.posterior(OPS["blur"], torch.zeros(SHAPE, dtype=F64), 0.1)
    assert isinstance(post.covariance, linops.CircularBlur)
    post = make_gaussian("diagonal")[0].posterior(OPS["mask"], torch.zeros(SHAPE, dtype=F64), 0.1)
    assert isinstance(post.covariance, linops.Diagonal)
    with pytest.raises(ValueError, match="share no eigenbasis"):
        prior.posterior(OPS["mask"], torch.zeros(SHAPE, dtype=F64), 0.1, method=Structured())


def test_posterior_with_identity_is_the_denoiser():
    for kind in KINDS:
        prior, *_ = make_gaussian(kind)
        y = torch.randn(3, *SHAPE, generator=gen(15), dtype=F64)
        post = prior.posterior(linops.Identity(SHAPE, dtype=F64), y, 0.4)
        torch.testing.assert_close(post.mean, prior.denoise(y, 0.4), rtol=1e-10, atol=1e-10)


def test_posterior_complex_fourier_sampling():
    """Complex measurements: real x, noise sigma_y on real and imaginary parts (real-stacked model)."""
    prior, mu, cov = make_gaussian("dense")
    A = linops.FourierSampling(torch.rand(6, 6, generator=gen(16)) > 0.5, SHAPE, dtype=torch.complex128)
    a = A.to_dense()
    a_r = torch.cat([a.real, a.imag])
    x0 = prior.sample(1, generator=gen(17), dtype=F64)
    y = A @ x0
    g = gen(100)
    noise = torch.randn(2, *y.shape, dtype=F64, generator=g)
    y = y + 0.05 * torch.complex(noise[0], noise[1])
    y_r = torch.cat([y.real.reshape(1, -1), y.imag.reshape(1, -1)], dim=1)
    mean, post_cov, _ = brute_posterior(mu, cov, a_r, y_r, 0.05)
    dense = prior.posterior(A, y, 0.05, method=Dense())
    cg = prior.posterior(A, y, 0.05, method=ConjugateGradient(rtol=1e-12))
    torch.testing.assert_close(dense.mean.reshape(1, -1), mean, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(cg.mean.reshape(1, -1), mean, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(dense.covariance_matrix(), post_cov, rtol=1e-8, atol=1e-9)
    assert dense.mean.dtype == F64


@pytest.mark.parametrize(
    ("kind", "op", "method"),
    [
        ("diagonal", "mask", None),
        ("fourier", "blur", None),
        ("dense", "thin", Dense()),
        ("fourier", "mask", ConjugateGradient()),
    ],
)
def test_posterior_sampler_moments(kind, op, method):
    prior, mu, cov = make_gaussian(kind)
    A = OPS[op]
    y = A @ prior.sample(1, generator=gen(18), dtype=F64)[0] + 0.2 * torch.randn(
        A.out_shape, generator=gen(19), dtype=F64
    )
    mean, post_cov, _ = brute_posterior(mu, cov, A.to_dense(), y.reshape(1, -1), 0.2)
    post = prior.posterior(A, y, 0.2, method=method)
    x = post.sample(20000, generator=gen(20))
    assert x.shape == (20000, *SHAPE)
    x = x.reshape(20000, -1)
    scale = post_cov.diagonal().sqrt().max()
    torch.testing.assert_close(x.mean(0), mean[0], rtol=0, atol=float(4 * scale / math.sqrt(20000)) + 1e-3)
    torch.testing.assert_close(torch.cov(x.T), post_cov, rtol=0, atol=float(0.06 * scale**2) + 1e-3)
    assert torch.equal(post.sample(2, generator=gen(3)), post.sample(2, generator=gen(3)))


def test_noiseless_posterior_interpolates_observed_pixels():
    prior, *_ = make_gaussian("dense")
    A = OPS["mask"]
    y = A @ torch.randn(SHAPE, generator=gen(21), dtype=F64)
    for method in [None, Dense()]:
        post = prior.posterior(A, y, 0.0, method=method)
        torch.testing.assert_close(A @ post.mean, y, rtol=1e-8, atol=1e-8)
        torch.testing.assert_close(A @ post.sample(3, generator=gen(1)), y.expand(3, *SHAPE), rtol=1e-6, atol=1e-6)
    post = make_gaussian("diagonal")[0].posterior(A, y, 0.0)
    torch.testing.assert_close(A @ post.mean, y)


def test_posterior_float32_inputs_computed_in_float64():
    prior, mu, cov = make_gaussian("fourier")
    A = linops.CircularBlur(linops.gaussian_kernel(0.8, 3), SHAPE)  # float32 operator
    y = torch.randn(SHAPE, generator=gen(22))
    post = prior.posterior(A, y, 0.05)
    assert post.mean.dtype == torch.float32
    mean, *_ = brute_posterior(mu, cov, A.to(F64).to_dense(), y.to(F64).reshape(1, -1), 0.05)
    torch.testing.assert_close(post.mean.reshape(1, -1).to(F64), mean, rtol=1e-5, atol=1e-5)


def test_posterior_as_prior():
    prior, *_ = make_gaussian("diagonal")
    post = prior.posterior(OPS["mask"], torch.zeros(SHAPE, dtype=F64), 0.1)
    as_prior = post.as_prior()
    torch.testing.assert_close(as_prior.mean, post.mean)
    x = torch.randn(2, *SHAPE, generator=gen(23), dtype=F64)
    assert torch.isfinite(as_prior.denoise(x, 0.1)).all()


def test_posterior_errors_teach():
    prior, *_ = make_gaussian("dense")
    with pytest.raises(ValueError, match="A maps"):
        prior.posterior(linops.Identity((1, 5, 5), dtype=F64), torch.zeros(1, 5, 5, dtype=F64), 0.1)
    with pytest.raises(ValueError, match="y must have shape"):
        prior.posterior(OPS["thin"], torch.zeros(3, 21, dtype=F64), 0.1)
    with pytest.raises(ValueError, match="sigma_y"):
        prior.posterior(OPS["mask"], torch.zeros(SHAPE, dtype=F64), -1.0)
    post = prior.posterior(OPS["mask"], torch.zeros(SHAPE, dtype=F64), 0.1, method=ConjugateGradient())
    with pytest.raises(ValueError, match="no covariance"):
        post.covariance_matrix()
    with pytest.raises(ValueError, match="max_size"):
        prior.posterior(OPS["mask"], torch.zeros(SHAPE, dtype=F64), 0.1, method=Dense(max_size=10))


# ------------------------------------------------------------------------------------------------
# Gaussian: construction errors


def test_covariance_errors_teach():
    mu = torch.zeros(SHAPE, dtype=F64)
    asym = spd(N) + 0.1 * torch.triu(torch.ones(N, N, dtype=F64), 1)
    with pytest.raises(ValueError, match="not symmetric"):
        GaussianPrior(mu, linops.Matrix(asym, SHAPE, SHAPE))
    with pytest.raises(ValueError, match="positive semi-definite"):
        GaussianPrior(mu, linops.Matrix(-spd(N), SHAPE, SHAPE))
    with pytest.raises(ValueError, match="non-negative"):
        GaussianPrior(mu, linops.Diagonal(-torch.ones(SHAPE, dtype=F64)))
    with pytest.raises(ValueError, match="symmetric"):
        stationary_covariance(torch.rand(6, 6, generator=gen(0), dtype=F64))
    k = torch.zeros(3, 3, dtype=F64)
    k[1, 2] = 1.0  # a shift: not symmetric
    with pytest.raises(ValueError, match="symmetric"):
        GaussianPrior(mu, linops.CircularBlur(k, SHAPE))
    with pytest.raises(ValueError, match="does not broadcast"):
        GaussianPrior(torch.zeros(2, 6, 6, dtype=F64), linops.Diagonal(torch.ones(SHAPE, dtype=F64)))
    prior = GaussianPrior(mu, linops.Diagonal(torch.ones(SHAPE, dtype=F64)))
    with pytest.raises(ValueError, match="expects x of shape"):
        prior.denoise(torch.zeros(2, 1, 5, 5, dtype=F64), 0.1)
    with pytest.raises(ValueError, match="varies over the event axes"):
        prior.denoise(torch.zeros(2, *SHAPE, dtype=F64), torch.full((2, *SHAPE), 0.1, dtype=F64))
    with pytest.raises(ValueError, match="positive"):
        prior.denoise(torch.zeros(2, *SHAPE, dtype=F64), 0.0)
    degenerate = GaussianPrior(mu, linops.Diagonal(torch.zeros(SHAPE, dtype=F64)))
    with pytest.raises(ValueError, match="degenerate"):
        degenerate.log_prob(torch.zeros(SHAPE, dtype=F64))
    torch.testing.assert_close(degenerate.denoise(torch.ones(1, *SHAPE, dtype=F64), 0.1), mu[None])


# ------------------------------------------------------------------------------------------------
# mixture


def gmm_brute(prior, x, sigma):
    xs = x.reshape(x.shape[0], -1)
    logs, dens = [], []
    for k, comp in enumerate(prior.components):
        mu, cov = comp.mean.reshape(-1), comp.covariance.to_dense()
        c = cov + sigma**2 * torch.eye(N, dtype=F64)
        logs.append(torch.log(prior.weights[k]) + MultivariateNormal(mu, c).log_prob(xs))
        dens.append(mu + (xs - mu) @ torch.linalg.solve(c, cov))
    r = torch.softmax(torch.stack(logs), dim=0)
    return (r[:, :, None] * torch.stack(dens)).sum(0).reshape(x.shape), torch.logsumexp(torch.stack(logs), 0)


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("sigma", [0.05, 0.5, 3.0])
def test_mixture_denoiser_closed_form(dense, sigma):
    prior = make_mixture(dense=dense)
    x = prior.sample(3, generator=gen(24), dtype=F64) + sigma * torch.randn(3, *SHAPE, generator=gen(25), dtype=F64)
    d, lp = gmm_brute(prior, x, sigma)
    torch.testing.assert_close(prior.denoise(x, sigma), d, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(prior.log_prob(x, sigma), lp, rtol=1e-10, atol=1e-9)
    assert torch.allclose(prior.responsibilities(x, sigma).sum(-1), torch.ones(3, dtype=F64))


def test_mixture_is_stable_far_from_every_component():
    prior = make_mixture()
    x = 1e3 * torch.ones(2, *SHAPE, dtype=F64)
    for s in [1e-3, 1.0]:
        for out in (prior.denoise(x, s), prior.score(x, s), prior.log_prob(x, s)):
            assert torch.isfinite(out).all()


def test_one_component_mixture_is_the_gaussian():
    for kind in ["dense", "diagonal", "fourier"]:
        gauss, mu, _ = make_gaussian(kind)
        gmm = GaussianMixturePrior(torch.ones(1), mu.reshape(1, *SHAPE), [gauss.covariance])
        x = torch.randn(3, *SHAPE, generator=gen(26), dtype=F64)
        s = torch.tensor([0.1, 0.5, 1.0], dtype=F64)
        torch.testing.assert_close(gmm.denoise(x, s), gauss.denoise(x, s), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gmm.log_prob(x, 0.3), gauss.log_prob(x, 0.3), rtol=1e-12, atol=1e-12)
        y = OPS["mask"] @ x
        torch.testing.assert_close(gmm.posterior(OPS["mask"], y, 0.1).mean, gauss.posterior(OPS["mask"], y, 0.1).mean)


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("op", ["mask", "thin"])
def test_mixture_posterior_brute_force(dense, op):
    prior = make_mixture(dense=dense)
    A = OPS[op]
    a = A.to_dense()
    y = A @ prior.sample(2, generator=gen(27), dtype=F64) + 0.1 * torch.randn(
        2, *A.out_shape, generator=gen(28), dtype=F64
    )
    yf = y.reshape(2, -1)
    logs, means, covs = [], [], []
    for k, comp in enumerate(prior.components):
        mu, cov = comp.mean.reshape(-1), comp.covariance.to_dense()
        m, c, s = brute_posterior(mu, cov, a, yf, 0.1)
        logs.append(torch.log(prior.weights[k]) + MultivariateNormal(a @ mu, s).log_prob(yf))
        means.append(m)
        covs.append(c)
    w = torch.softmax(torch.stack(logs), 0)  # (K, 2)
    mean = (w[:, :, None] * torch.stack(means)).sum(0)
    post = prior.posterior(A, y, 0.1)
    torch.testing.assert_close(post.weights, w.T, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(post.mean.reshape(2, -1), mean, rtol=1e-8, atol=1e-8)
    second = sum(w[k][:, None, None] * (covs[k] + means[k][:, :, None] * means[k][:, None, :]) for k in range(3))
    cov = second - mean[:, :, None] * mean[:, None, :]
    torch.testing.assert_close(post.covariance_matrix(), cov, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(post.log_evidence, torch.logsumexp(torch.stack(logs), 0), rtol=1e-10, atol=1e-9)
    samples = post.sample(20000, generator=gen(29))
    assert samples.shape == (20000, 2, *SHAPE)
    s0 = samples[:, 0].reshape(20000, -1)
    torch.testing.assert_close(s0.mean(0), mean[0], rtol=0, atol=0.05)
    torch.testing.assert_close(torch.cov(s0.T), cov[0], rtol=0, atol=0.08)


def test_mixture_posterior_refuses_cg():
    prior = make_mixture()
    with pytest.raises(ValueError, match="evidence"):
        prior.posterior(OPS["thin"], torch.zeros(20, dtype=F64), 0.1, method=ConjugateGradient())


# ------------------------------------------------------------------------------------------------
# empirical


def test_empirical_brute_force_and_chunking():
    imgs = torch.rand(11, *SHAPE, generator=gen(30), dtype=F64)
    x = torch.rand(5, *SHAPE, generator=gen(31), dtype=F64)
    s = torch.tensor([0.02, 0.1, 0.3, 1.0, 5.0], dtype=F64)
    d2 = ((x[:, None] - imgs[None]) ** 2).reshape(5, 11, -1).sum(-1)
    logits = -d2 / (2 * s[:, None] ** 2)
    ref = torch.einsum("bi,i...->b...", torch.softmax(logits, 1), imgs)
    ref_lp = torch.logsumexp(logits, 1) - math.log(11) - 0.5 * N * torch.log(2 * math.pi * s**2)
    for block in [1, 3, 2**24]:
        prior = EmpiricalPrior(imgs, block_elements=block)
        torch.testing.assert_close(prior.denoise(x, s), ref, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(prior.log_prob(x, s), ref_lp, rtol=1e-10, atol=1e-10)


def test_empirical_one_image_and_small_sigma():
    img = torch.rand(1, *SHAPE, generator=gen(32), dtype=F64)
    prior = EmpiricalPrior(img)
    x = torch.randn(3, *SHAPE, generator=gen(33), dtype=F64) * 10
    torch.testing.assert_close(prior.denoise(x, 0.01), img.expand(3, *SHAPE))
    prior = make_empirical()
    near = prior.images[2:3] + 1e-3 * torch.randn(1, *SHAPE, generator=gen(34), dtype=F64)
    torch.testing.assert_close(prior.denoise(near, 1e-3), prior.images[2:3])
    far = torch.full((1, *SHAPE), 1e4, dtype=F64, requires_grad=True)
    out = prior.denoise(far, 1e-3)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(far.grad).all()


def test_empirical_float32_small_sigma_is_accurate():
    """Direct distances: no ||x||^2 - 2 x.x_i + ||x_i||^2 cancellation at small sigma in float32."""
    imgs = torch.rand(20, 1, 32, 32, generator=gen(35), dtype=F64) + 10
    x = imgs[:4] + 0.02 * torch.randn(4, 1, 32, 32, generator=gen(36), dtype=F64)
    ref = EmpiricalPrior(imgs).denoise(x, 0.05)
    got = EmpiricalPrior(imgs.float()).denoise(x.float(), 0.05)
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------------------------------------
# conventions


@pytest.mark.parametrize("name", list(PRIORS))
@pytest.mark.parametrize("convention", [SYMMETRIC, standardized(0.4, 0.2)])
def test_conventions_round_trip_and_match_generic_conversion(name, convention):
    prior = PRIORS[name]
    x = torch.randn(3, *SHAPE, generator=gen(37), dtype=F64)
    s = torch.tensor([0.05, 0.3, 1.0], dtype=F64)
    converted = prior.to_convention(convention)
    assert converted.convention == convention
    generic = ConvertedPrior(prior, convention)
    torch.testing.assert_close(converted.denoise(x, s), generic.denoise(x, s), rtol=1e-10, atol=1e-10)
    back = converted.to_convention(UNIT)
    torch.testing.assert_close(back.denoise(x, s), prior.denoise(x, s), rtol=1e-10, atol=1e-10)
    # the noisy marginal transforms as a density: log p'(x') = log p(x) - n log|a|
    a, b = UNIT.map_to(convention)
    torch.testing.assert_close(
        converted.log_prob(a * x + b, abs(a) * s), prior.log_prob(x, s) - N * math.log(abs(a)), rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("op", ["mask", "blur", "thin", "tall"])
def test_posterior_with_singular_covariance(op):
    """A rank-deficient Sigma (some pixels known exactly): every method agrees with brute force."""
    w = torch.rand(SHAPE, generator=gen(41), dtype=F64) * (torch.rand(SHAPE, generator=gen(42)) > 0.5)
    mu = torch.randn(SHAPE, generator=gen(43), dtype=F64)
    prior = GaussianPrior(mu, linops.Diagonal(w))
    A = OPS[op]
    y = A @ prior.sample(2, generator=gen(44), dtype=F64) + 0.1 * torch.randn(
        2, *A.out_shape, generator=gen(45), dtype=F64
    )
    mean, cov, s = brute_posterior(mu.reshape(-1), torch.diag(w.reshape(-1)), A.to_dense(), y.reshape(2, -1), 0.1)
    for method in [None, Dense(), ConjugateGradient(rtol=1e-12)]:
        post = prior.posterior(A, y, 0.1, method=method)
        torch.testing.assert_close(post.mean.reshape(2, -1), mean, rtol=1e-8, atol=1e-8)
        if post.covariance is not None:
            torch.testing.assert_close(post.covariance_matrix(), cov, rtol=1e-8, atol=1e-9)
            ev = MultivariateNormal(A.to_dense() @ mu.reshape(-1), s).log_prob(y.reshape(2, -1))
            torch.testing.assert_close(post.log_evidence, ev, rtol=1e-9, atol=1e-8)


def test_cg_posterior_runs_linops_cg_and_says_when_it_stops_short(monkeypatch):
    """The matrix-free posterior solves S u = y - A mu with linops.solve (one CG in the project) on S as a
    FunctionOperator, and raises with the reached residual when max_iter is too small."""
    import priors.analytic.gaussian as gaussian

    prior, *_ = make_gaussian("dense")
    A, y = OPS["blur"], torch.rand(SHAPE, generator=gen(50), dtype=F64)
    seen = []
    monkeypatch.setattr(gaussian, "solve", lambda S, b, alg: seen.append((S, alg)) or linops.solve(S, b, alg))
    prior.posterior(A, y, 0.1, method=ConjugateGradient(rtol=1e-9, max_iter=300))
    (S, alg), *_ = seen
    assert isinstance(S, linops.FunctionOperator) and S.H is S and alg == linops.CG(tol=1e-9, max_iter=300)
    with pytest.raises(RuntimeError, match=r"did not reach rtol=1e-12 in 2 iterations \(relative residual"):
        prior.posterior(A, y, 0.1, method=ConjugateGradient(rtol=1e-12, max_iter=2))


def test_a_new_covariance_type_registers_its_eigenbasis_in_the_rule_table():
    """eigenbasis_rules is looked up along the MRO: a subclass of Diagonal gets the diagonal rule, and a
    rule registered for a new type wins over the dense fallback."""
    import linops
    from priors.analytic import DiagonalBasis, covariance_eigenbasis, eigenbasis_rules

    class Variances(linops.Diagonal):
        pass

    w = torch.rand(1, 4, 4, dtype=torch.float64) + 0.1
    assert isinstance(covariance_eigenbasis(Variances(w)), DiagonalBasis)

    class Opaque(linops.Matrix):
        pass

    calls = []

    @eigenbasis_rules.register(Opaque)
    def _opaque(cov):
        calls.append(cov)
        return DiagonalBasis(torch.ones((), dtype=torch.float64), cov.in_shape)

    op = Opaque(torch.eye(3, dtype=torch.float64))
    assert isinstance(covariance_eigenbasis(op), DiagonalBasis) and calls == [op]
