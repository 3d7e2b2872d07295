"""Network priors: prediction/conditioning conversions against exact oracles, the VP <-> VE change of
variables, the U-Net, position encodings and the deepinv adapter."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import linops
from priors import SYMMETRIC, ConvertedPrior, Prior
from priors.analytic import EmpiricalPrior, GaussianPrior
from priors.nets import UNet, coordinate_grid, patch_position_channels, position_channel_count
from priors.network import Conditioning, NetworkPrior, Prediction, TimestepLookup, VPSchedule

F64 = torch.float64
SHAPE = (1, 5, 5)


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def gaussian():
    w = torch.rand(SHAPE, generator=gen(0), dtype=F64) + 0.1
    return GaussianPrior(torch.rand(SHAPE, generator=gen(1), dtype=F64), linops.Diagonal(w))


def exact_output(prior: Prior, prediction: Prediction, x, sigma):
    if prediction is Prediction.EPS:
        return prior.eps(x, sigma)
    if prediction is Prediction.X0:
        return prior.denoise(x, sigma)
    return prior.score(x, sigma)


class VEOracle(nn.Module):
    """f(x, sigma): the exact prediction of an analytic prior."""

    def __init__(self, prior, prediction):
        super().__init__()
        self.prior, self.prediction = prior, prediction

    def forward(self, x, sigma):
        assert sigma.shape == (x.shape[0],)
        return exact_output(self.prior, self.prediction, x, sigma)


class VPOracle(nn.Module):
    """f(x_vp, t) for a VP-trained network: undo the VP scaling with the schedule's sigma(t)."""

    def __init__(self, prior, prediction, schedule):
        super().__init__()
        self.prior, self.prediction, self.schedule = prior, prediction, schedule

    def forward(self, x_vp, t):
        sigma = self.schedule.sigma_at(t).to(x_vp.dtype)
        root_ab = torch.sqrt(1 / (1 + sigma**2)).reshape(-1, 1, 1, 1)
        x = x_vp / root_ab
        out = exact_output(self.prior, self.prediction, x, sigma)
        if self.prediction is Prediction.SCORE:  # grad_{x_vp} log p = grad_x log p / sqrt(abar)
            out = out / root_ab
        return out


@pytest.mark.parametrize("prediction", list(Prediction))
def test_ve_network_equals_its_exact_prior(prediction):
    prior = gaussian()
    net = NetworkPrior(VEOracle(prior, prediction), prediction=prediction, conditioning=Conditioning.NOISE_LEVEL)
    x = torch.randn(3, *SHAPE, generator=gen(2), dtype=F64)
    s = torch.tensor([0.05, 0.5, 2.0], dtype=F64)
    for method in ("denoise", "eps", "score"):
        torch.testing.assert_close(getattr(net, method)(x, s), getattr(prior, method)(x, s), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(net(x, 0.3), prior.denoise(x, 0.3))


@pytest.mark.parametrize("prediction", list(Prediction))
@pytest.mark.parametrize("schedule", [VPSchedule.linear(), VPSchedule.cosine()])
def test_vp_network_equals_its_exact_prior(prediction, schedule):
    prior = gaussian()
    net = NetworkPrior(
        VPOracle(prior, prediction, schedule),
        prediction=prediction,
        conditioning=Conditioning.NOISE_LEVEL,
        vp=schedule,
    )
    x = torch.randn(3, *SHAPE, generator=gen(3), dtype=F64)
    s = torch.tensor([0.03, 0.7, 9.0], dtype=F64)
    for method in ("denoise", "eps", "score"):
        torch.testing.assert_close(getattr(net, method)(x, s), getattr(prior, method)(x, s), rtol=1e-8, atol=1e-8)
    assert net.sigma_range == schedule.sigma_range


def test_vp_nearest_lookup_on_grid_is_exact_and_off_grid_rounds():
    schedule = VPSchedule.linear(lookup=TimestepLookup.NEAREST)
    table = schedule.sigmas
    t = torch.tensor([0, 3, 250, 999])
    assert torch.equal(schedule.timestep(table[t]), t)
    mid = torch.sqrt(table[10] * table[11]) * 0.999  # just below the log-midpoint: rounds down
    assert int(schedule.timestep(mid.reshape(1))) == 10
    assert schedule.timestep(table[5:6]).dtype == torch.long
    prior = gaussian()
    oracle = VPOracle(prior, Prediction.EPS, schedule)
    net = NetworkPrior(oracle, prediction=Prediction.EPS, conditioning=Conditioning.NOISE_LEVEL, vp=schedule)
    x = torch.randn(2, *SHAPE, generator=gen(4), dtype=F64)
    s = table[[40, 600]].to(F64)
    torch.testing.assert_close(net.denoise(x, s), prior.denoise(x, s), rtol=1e-10, atol=1e-10)


def test_vp_schedule_maps():
    schedule = VPSchedule.linear()
    ab = schedule.alpha_bar
    torch.testing.assert_close(VPSchedule.alpha_bar_of(schedule.sigmas), ab)  # abar = 1 / (1 + sigma^2)
    torch.testing.assert_close(ab[0], torch.tensor(1 - 1e-4, dtype=F64))
    sig = torch.logspace(-1.5, 1.5, 7, dtype=F64)
    torch.testing.assert_close(schedule.sigma_at(schedule.timestep(sig)), sig)
    t = schedule.timestep(sig)
    assert bool((t[1:] > t[:-1]).all())
    shifted = VPSchedule(schedule.betas, t_offset=1)
    torch.testing.assert_close(shifted.timestep(sig), t + 1)
    torch.testing.assert_close(shifted.sigma_at(shifted.timestep(sig)), sig)
    with pytest.raises(ValueError, match="betas"):
        VPSchedule(torch.tensor([0.1, 1.5]))


def test_vp_conversion_is_the_change_of_variables():
    """x_vp = sqrt(abar) x_ve has the VP marginal: for a Gaussian N(0, v I), x_vp ~ N(0, abar v + 1 - abar)."""
    v, sigma = 0.7, 1.3
    ab = float(VPSchedule.alpha_bar_of(torch.tensor(sigma, dtype=F64)))
    var_ve = v + sigma**2
    assert math.isclose(ab * var_ve, ab * v + 1 - ab)


def test_blind_network_gets_x_only():
    class Blind(nn.Module):
        def forward(self, x):
            return 0.5 * x

    net = NetworkPrior(Blind(), prediction=Prediction.EPS, conditioning=Conditioning.BLIND)
    x = torch.randn(2, *SHAPE, generator=gen(5))
    torch.testing.assert_close(net.denoise(x, 0.4), x - 0.4 * 0.5 * x)  # DDGM: x - sigma eps(x)
    torch.testing.assert_close(net.eps(x, 0.4), 0.5 * x)
    torch.testing.assert_close(
        net.score(x, torch.tensor([0.4, 0.2])), -0.5 * x / torch.tensor([0.4, 0.2])[:, None, None, None]
    )


def test_typed_options_and_errors_teach():
    net = nn.Identity()
    with pytest.raises(TypeError, match="Prediction"):
        NetworkPrior(net, prediction="eps", conditioning=Conditioning.BLIND)
    with pytest.raises(TypeError, match="Conditioning"):
        NetworkPrior(net, prediction=Prediction.EPS, conditioning="blind")
    with pytest.raises(ValueError, match="sigma_range"):
        NetworkPrior(net, prediction=Prediction.EPS, conditioning=Conditioning.BLIND, sigma_range=(1.0, 0.1))

    class Bad(nn.Module):
        def forward(self, x):
            return x[..., :-1]

    bad = NetworkPrior(Bad(), prediction=Prediction.X0, conditioning=Conditioning.BLIND)
    with pytest.raises(ValueError, match="must match"):
        bad.denoise(torch.zeros(1, *SHAPE), 0.1)
    prior = NetworkPrior(net, prediction=Prediction.X0, conditioning=Conditioning.BLIND, sigma_range=(0.01, 1.0))
    prior.check_sigma(1.0, 0.01)
    with pytest.raises(ValueError, match="trained for sigma"):
        prior.check_sigma(5.0)


def test_network_prior_is_a_module_and_differentiable():
    unet = UNet(1, channels=(8, 16), seed=0)
    prior = NetworkPrior(unet, prediction=Prediction.EPS, conditioning=Conditioning.NOISE_LEVEL, sigma_range=(0.01, 10))
    assert isinstance(prior, nn.Module) and isinstance(prior, Prior)
    assert sum(p.numel() for p in prior.parameters()) == sum(p.numel() for p in unet.parameters())
    assert all(k.startswith("model.") for k in prior.state_dict())
    x = torch.randn(2, 1, 16, 16, generator=gen(6), requires_grad=True)
    prior.denoise(x, torch.tensor([0.1, 1.0])).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    p64 = prior.to(F64)
    assert p64.denoise(x.detach().double(), 0.3).dtype == F64
    sym = prior.to_convention(SYMMETRIC)
    assert isinstance(sym, ConvertedPrior) and sym.sigma_range == (0.02, 20.0)


# ------------------------------------------------------------------------------------------------
# U-Net and position encodings


@pytest.mark.parametrize("size", [(16, 16), (30, 22)])
def test_unet_shapes_conditional_blind_and_extra(size):
    x = torch.randn(3, 2, *size, generator=gen(7))
    cond = UNet(2, channels=(8, 16, 16), seed=0)
    assert cond(x, torch.rand(3, generator=gen(100)) + 0.1).shape == x.shape
    assert cond(x, 0.5).shape == x.shape
    blind = UNet(2, out_channels=1, channels=(8, 16), conditional=False, seed=0)
    assert blind(x).shape == (3, 1, *size)
    pos = UNet(2, channels=(8, 16), extra_channels=position_channel_count(1), seed=0)
    extra = patch_position_channels((40, 40), size, [(0, 0), (2, 3), (10, 18)], frequencies=1)
    assert pos(x, 0.2, extra).shape == x.shape


def test_unet_errors_teach():
    cond = UNet(1, channels=(8, 16), seed=0)
    blind = UNet(1, channels=(8, 16), conditional=False, seed=0)
    pos = UNet(1, channels=(8, 16), extra_channels=2, seed=0)
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="noise-conditional"):
        cond(x)
    with pytest.raises(ValueError, match="blind"):
        blind(x, 0.1)
    with pytest.raises(ValueError, match="extra input channels"):
        pos(x, 0.1)
    with pytest.raises(ValueError, match="expects x of shape"):
        cond(torch.zeros(2, 3, 8, 8), 0.1)


def test_unet_seeded_init_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = UNet(1, channels=(8, 16), seed=3), UNet(1, channels=(8, 16), seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert a.config["channels"] == [8, 16] and a.config["conditional"] is True


def test_unet_sigma_embedding_matters_and_trains():
    net = UNet(1, channels=(8, 16), seed=0)
    nn.init.normal_(net.head.weight, std=0.1, generator=gen(8))  # the head starts at zero
    x = torch.randn(2, 1, 8, 8, generator=gen(9))
    assert not torch.allclose(net(x, 0.05), net(x, 5.0))


def test_coordinate_grid_and_patch_positions():
    grid = coordinate_grid(4, 8, dtype=F64)
    torch.testing.assert_close(grid[0, :, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75], dtype=F64))
    torch.testing.assert_close(grid[1, 0, :2], torch.tensor([-7 / 8, -5 / 8], dtype=F64))
    full = coordinate_grid(12, 10)
    pos = patch_position_channels((12, 10), (4, 5), [(0, 0), (8, 5), (3, 2)])
    assert pos.shape == (3, 2, 4, 5)
    torch.testing.assert_close(pos[1], full[:, 8:12, 5:10])
    torch.testing.assert_close(pos[2], full[:, 3:7, 2:7])
    four = patch_position_channels((12, 10), 4, [(1, 1)], frequencies=2)
    assert four.shape == (1, position_channel_count(2), 4, 4)
    torch.testing.assert_close(four[0, 2], torch.sin(math.pi * four[0, 0]))
    with pytest.raises(ValueError, match="inside"):
        patch_position_channels((12, 10), 4, [(9, 0)])


# ------------------------------------------------------------------------------------------------
# deepinv adapter


def test_deepinv_mmse_denoiser_is_the_empirical_prior():
    dinv = pytest.importorskip("deepinv")
    from priors.interop.deepinv import DeepinvPrior, from_deepinv, to_deepinv

    imgs = torch.rand(15, 1, 6, 6, generator=gen(10), dtype=F64)
    mmse = dinv.models.MMSE(dataloader=imgs, dtype=F64, device=torch.device("cpu"))
    prior = from_deepinv(mmse)
    assert isinstance(prior, DeepinvPrior) and prior.convention.name == "[0, 1]"
    empirical = EmpiricalPrior(imgs)
    x = torch.rand(3, 1, 6, 6, generator=gen(11), dtype=F64)
    s = torch.tensor([0.05, 0.2, 0.8], dtype=F64)
    torch.testing.assert_close(prior.denoise(x, s), empirical.denoise(x, s), rtol=1e-8, atol=1e-9)
    score_prior = dinv.optim.prior.ScorePrior(mmse)
    torch.testing.assert_close(from_deepinv(score_prior).score(x, 0.2), score_prior.score(x, 0.2))
    back = to_deepinv(empirical.to_convention(SYMMETRIC))  # converted back to [0, 1] for deepinv
    torch.testing.assert_close(back(x, 0.1), empirical.denoise(x, 0.1), rtol=1e-10, atol=1e-10)
    with pytest.raises(TypeError, match="not built on a denoiser"):
        from_deepinv(dinv.optim.prior.TVPrior())


def test_deepinv_network_denoiser_is_differentiable():
    dinv = pytest.importorskip("deepinv")
    from priors.interop.deepinv import from_deepinv

    net = dinv.models.DnCNN(1, 1, depth=3, nf=8, pretrained=None)
    prior = from_deepinv(net, sigma_range=(0.01, 0.2))
    x = torch.rand(2, 1, 8, 8, generator=gen(12), requires_grad=True)
    prior.score(x, torch.tensor([0.05, 0.1])).sum().backward()
    assert torch.isfinite(x.grad).all() and prior.sigma_range == (0.01, 0.2)


@pytest.mark.gpu
def test_priors_run_on_cuda():
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    prior = gaussian().to(dev)
    x = torch.randn(2, *SHAPE, generator=g, device=dev, dtype=F64)
    torch.testing.assert_close(prior.denoise(x, 0.3).cpu(), gaussian().denoise(x.cpu(), 0.3))
    A = linops.Mask(torch.rand(SHAPE, generator=gen(101)) > 0.5, dtype=F64).to(dev)
    post = prior.posterior(A, A @ x, 0.1)
    torch.testing.assert_close(post.mean.cpu(), gaussian().posterior(A.to("cpu"), (A @ x).cpu(), 0.1).mean)
    assert post.sample(3, generator=g).device.type == "cuda"
    empirical = EmpiricalPrior(torch.rand(4, *SHAPE, dtype=F64, generator=gen(102)))
    assert empirical.denoise(x, 0.2).device.type == "cuda"
    net = NetworkPrior(
        UNet(1, channels=(8, 16), seed=0),
        prediction=Prediction.EPS,
        conditioning=Conditioning.NOISE_LEVEL,
        vp=VPSchedule.linear(),
    ).to(dev)
    noisy = torch.randn(2, 1, 8, 8, generator=gen(103)).to(dev)
    assert net.denoise(noisy, torch.tensor([0.1, 1.0], device=dev)).is_cuda
