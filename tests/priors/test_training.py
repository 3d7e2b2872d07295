"""Training: the DSM loss reaches its theoretical minimum for Gaussian data, the loop trains, checkpoints
and resumes exactly, and weights round-trip through safetensors with errors that name the problem."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import linops
from priors import SYMMETRIC
from priors.analytic import GaussianPrior
from priors.nets import UNet
from priors.network import Conditioning, NetworkPrior, Prediction
from priors.training import (
    DSMLoss,
    WeightsMetadata,
    gaussian_dsm_minimum,
    load_checkpoint,
    load_network_prior,
    load_weights,
    metadata_path,
    random_batches,
    read_metadata,
    save_weights,
    train,
)

SHAPE = (1, 4, 4)


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def gaussian(dtype=torch.float32):
    w = torch.linspace(0.01, 2.0, 16, dtype=torch.float64).reshape(SHAPE)
    return GaussianPrior(0.5 * torch.ones(SHAPE, dtype=torch.float64), linops.Diagonal(w))


class ExactPredictor(nn.Module):
    """The MMSE eps (or x0) predictor of a Gaussian prior: the DSM optimum."""

    def __init__(self, prior, target):
        super().__init__()
        self.prior, self.target = prior, target

    def forward(self, x, sigma):
        return self.prior.eps(x, sigma) if self.target is Prediction.EPS else self.prior.denoise(x, sigma)


class LinearDenoiser(nn.Module):
    """eps(x, s) = s (x - m) / (exp(l) + s^2) per pixel: the Gaussian family, with learnable m and l."""

    def __init__(self):
        super().__init__()
        self.m = nn.Parameter(torch.zeros(SHAPE))
        self.log_var = nn.Parameter(torch.full(SHAPE, -3.0))

    def forward(self, x, sigma):
        s = sigma.reshape(-1, 1, 1, 1)
        return s * (x - self.m) / (torch.exp(self.log_var) + s**2)


@pytest.mark.parametrize("target", [Prediction.EPS, Prediction.X0])
def test_exact_prior_attains_the_theoretical_minimum(target):
    prior = gaussian()
    loss = DSMLoss(0.02, 5.0, target=target)
    data = prior.sample(100000, generator=gen(0), dtype=torch.float64)
    value = float(loss(ExactPredictor(prior, target), data, gen(1)))
    minimum = loss.gaussian_minimum(prior.basis.eigenvalues())
    assert minimum == gaussian_dsm_minimum(prior.basis.eigenvalues(), 0.02, 5.0, target)
    assert abs(value - minimum) < 0.02 * minimum
    # any other predictor does worse
    worse = float(loss(ExactPredictor(gaussian().to_convention(SYMMETRIC), target), data, gen(1)))
    assert worse > minimum * 1.05


def test_single_sigma_minimum_is_the_mmse():
    lam = torch.tensor([0.5, 2.0], dtype=torch.float64)
    s = 0.7
    assert gaussian_dsm_minimum(lam, s, s) == pytest.approx(float((lam / (lam + s**2)).mean()))
    assert gaussian_dsm_minimum(lam, s, s, Prediction.X0) == pytest.approx(float((lam * s**2 / (lam + s**2)).mean()))
    # the log-uniform average lies between the extremes
    lo, hi = gaussian_dsm_minimum(lam, 2.0, 2.0), gaussian_dsm_minimum(lam, 0.1, 0.1)
    assert lo < gaussian_dsm_minimum(lam, 0.1, 2.0) < hi


def test_learnable_linear_denoiser_approaches_the_minimum():
    prior = gaussian()
    loss = DSMLoss(0.05, 3.0)
    model = LinearDenoiser()
    data = prior.sample(4096, generator=gen(2))
    eval_data = prior.sample(50000, generator=gen(3))
    minimum = loss.gaussian_minimum(prior.basis.eigenvalues())
    with torch.no_grad():
        before = float(loss(model, eval_data, gen(4)))
    result = train(model, loss, random_batches(data, 256), steps=400, lr=0.05, seed=0, progress=False)
    with torch.no_grad():
        after = float(loss(model, eval_data, gen(4)))
    exact = float(loss(ExactPredictor(prior, Prediction.EPS), eval_data.double(), gen(4)))
    assert len(result.history) == 400 and result.step == 400
    assert before > 1.3 * minimum
    assert after < minimum * 1.03 and abs(after - exact) < 0.03 * minimum
    torch.testing.assert_close(model.m.detach(), torch.full(SHAPE, 0.5), rtol=0, atol=0.1)


def test_unet_training_decreases_the_loss():
    g = gen(5)
    base = torch.nn.functional.avg_pool2d(torch.rand(64, 1, 24, 24, generator=g), 3, 1, 1)[..., 4:20, 4:20]
    data = (base - base.mean()) / base.std()
    net = UNet(1, channels=(8, 16), seed=0)
    loss = DSMLoss(0.1, 2.0)
    eval_batch = data[:32]
    with torch.no_grad():
        before = float(loss(net, eval_batch, gen(6)))
    train(net, loss, random_batches(data, 16), steps=40, lr=3e-3, seed=1, progress=False)
    with torch.no_grad():
        after = float(loss(net, eval_batch, gen(6)))
    assert after < 0.9 * before


def test_blind_dsm_calls_the_model_without_sigma():
    calls = []

    class Blind(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            calls.append(x.shape)
            return self.a * x

    loss = DSMLoss(0.1, 1.0, conditioning=Conditioning.BLIND)
    value = loss(Blind(), torch.zeros(4, *SHAPE), gen(0))
    assert calls == [(4, *SHAPE)] and value.requires_grad
    with pytest.raises(ValueError, match="EPS or X0"):
        DSMLoss(0.1, 1.0, target=Prediction.SCORE)
    with pytest.raises(ValueError, match="sigma_min"):
        DSMLoss(1.0, 0.1)


# ------------------------------------------------------------------------------------------------
# the loop: seeding, checkpoints, resume


def small_run(tmp_path, name, steps, *, resume=None, checkpoint_every=0, data=None):
    net = UNet(1, channels=(4, 8), seed=0)
    data = data if data is not None else random_batches(torch.randn(32, *SHAPE, generator=gen(7)), 8)
    result = train(
        net,
        DSMLoss(0.1, 2.0),
        data,
        steps=steps,
        seed=11,
        optimizer=torch.optim.Adam(net.parameters(), lr=1e-2),
        checkpoint_path=tmp_path / name,
        checkpoint_every=checkpoint_every,
        resume_from=resume,
        progress=False,
    )
    return net, result


@pytest.mark.parametrize("source", ["callable", "iterable"])
def test_resume_continues_identically(tmp_path, source):
    data = None
    if source == "iterable":
        data = [torch.randn(8, *SHAPE, generator=gen(i)) for i in range(3)]  # cycled over epochs
    full_net, full = small_run(tmp_path, "full.pt", 10, checkpoint_every=4, data=data)
    _, half = small_run(tmp_path, "half.pt", 6, data=data)
    assert half.checkpoint == tmp_path / "half.pt"
    resumed_net, resumed = small_run(tmp_path, "resumed.pt", 10, resume=tmp_path / "half.pt", data=data)
    assert resumed.history == full.history and resumed.step == 10
    for a, b in zip(full_net.parameters(), resumed_net.parameters()):
        assert torch.equal(a, b)
    state = torch.load(tmp_path / "full.pt", weights_only=True)
    assert state["step"] == 10 and len(state["history"]) == 10
    _, again = small_run(tmp_path, "again.pt", 10, data=data)
    assert again.history == full.history  # same seed, same run


def test_periodic_checkpoints_and_errors(tmp_path):
    seen = []
    net = nn.Linear(2, 2)

    def loss(model, batch, generator):
        return model(batch).square().mean()

    def batches(generator):
        return torch.randn(4, 2, generator=generator)

    def record(step, value):
        seen.append(step)

    train(
        net,
        loss,
        batches,
        steps=6,
        checkpoint_path=tmp_path / "c.pt",
        checkpoint_every=3,
        progress=True,
        callback=record,
    )
    assert seen == list(range(6)) and load_checkpoint(tmp_path / "c.pt")["step"] == 6
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="seed"):
        train(net, loss, batches, steps=8, seed=5, resume_from=tmp_path / "c.pt", progress=False)
    with pytest.raises(ValueError, match="does not fit"):
        train(nn.Linear(2, 3), loss, batches, steps=8, resume_from=tmp_path / "c.pt", progress=False)

    def nan_loss(model, batch, generator):
        return model(batch).sum() * float("nan")

    with pytest.raises(FloatingPointError, match="step 0"):
        train(net, nan_loss, batches, steps=2, progress=False)


# ------------------------------------------------------------------------------------------------
# weights on disk


def test_weights_round_trip_and_network_prior(tmp_path):
    net = UNet(1, channels=(8, 16), seed=0)
    nn.init.normal_(net.head.weight, std=0.05, generator=gen(8))
    meta = WeightsMetadata.for_network(
        net,
        prediction=Prediction.EPS,
        conditioning=Conditioning.NOISE_LEVEL,
        convention=SYMMETRIC,
        sigma_range=(0.01, 20.0),
        extra={"data": "test"},
    )
    path = save_weights(tmp_path / "unet.safetensors", net, meta)
    assert metadata_path(path).is_file()
    assert json.loads(metadata_path(path).read_text())["kwargs"]["channels"] == [8, 16]
    read = read_metadata(path)
    assert read == meta
    prior = load_network_prior(path)
    assert isinstance(prior, NetworkPrior) and not prior.training
    assert prior.convention == SYMMETRIC and prior.sigma_range == (0.01, 20.0)
    x = torch.randn(2, 1, 8, 8, generator=gen(9))
    reference = NetworkPrior(net.eval(), prediction=Prediction.EPS, conditioning=Conditioning.NOISE_LEVEL)
    torch.testing.assert_close(prior.denoise(x, 0.3), reference.denoise(x, 0.3), rtol=0, atol=0)
    fresh = load_weights(path, UNet(1, channels=(8, 16), seed=1))
    for a, b in zip(fresh.state_dict().values(), net.state_dict().values()):
        assert torch.equal(a, b)


def test_weights_errors_name_the_problem(tmp_path):
    net = UNet(1, channels=(8, 16), seed=0)
    path = save_weights(tmp_path / "w.safetensors", net)
    with pytest.raises(
        ValueError, match=r"shape mismatches \[.*stem.weight: file \(8, 1, 3, 3\) vs model \(4, 1, 3, 3\)"
    ):
        load_weights(path, UNet(1, channels=(4, 16), seed=0))
    with pytest.raises(ValueError, match="missing keys"):
        load_weights(path, UNet(1, channels=(8, 16, 16), seed=0))
    with pytest.raises(ValueError, match=r"unexpected keys \[.*'embedding.mlp.0.bias'"):
        load_weights(path, UNet(1, channels=(8, 16), conditional=False, seed=0))
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        load_weights(corrupt, net)
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(ValueError, match="corrupt"):
        load_weights(tmp_path / "junk.safetensors", net)
    with pytest.raises(FileNotFoundError, match="metadata"):
        load_network_prior(path)
    metadata_path(path).write_text("{ not json")
    with pytest.raises(ValueError, match="cannot parse"):
        read_metadata(path)
    metadata_path(path).write_text(json.dumps({"format": "priors.weights/1", "architecture": "UNet"}))
    with pytest.raises(ValueError, match="invalid or missing"):
        read_metadata(path)
