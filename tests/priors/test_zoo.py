"""The prior zoo: every bundled prior loads offline and beats the identity on held-out images; recipes
round-trip through JSON; unknown names, missing and corrupt files fail with errors that say what to do;
the training command runs end to end into a temporary directory and its output loads."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import pytest
import torch

import priors
from priors import DegradationAwarePrior, NetworkPrior, PatchPrior
from priors.__main__ import main
from priors.cvdm import ConditionalDiffusionPrior
from priors.data import Split
from priors.zoo import (
    RECIPES,
    ConditionalDiffusion,
    IncrementalReconstruction,
    Normalization,
    PatchDenoising,
    Recipe,
    UNetSpec,
    bundled_directory,
    names,
    psnr,
    recipe,
    train_recipe,
    training_images,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


BUNDLED = names()
MID_SIGMA = {Normalization.UNIT: 0.1, Normalization.STANDARDIZE: 0.5, Normalization.ZERO_MEAN: 0.1}
EXPECTED_TYPE = {
    "Denoising": NetworkPrior,
    "PatchDenoising": PatchPrior,
    "IncrementalReconstruction": DegradationAwarePrior,
    "ConditionalDiffusion": ConditionalDiffusionPrior,
}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_all_recipes_are_bundled():
    assert set(BUNDLED) >= {
        "ddgm-cells",
        "cells-conditional",
        "padis-patch-small",
        "padis-patch-large",
        "whole-ellipses-small",
        "whole-ellipses-large",
        "dirac-blur",
        "dirac-inpainting",
    }
    directory = bundled_directory()
    for name in BUNDLED:
        for suffix in (".safetensors", ".json", ".md", "_loss.png"):
            assert (directory / f"{name}{suffix}").is_file(), f"{name}{suffix} is not bundled"
    total = sum((directory / f"{n}.safetensors").stat().st_size for n in BUNDLED)
    assert total < 8e6, f"bundled weights take {total / 1e6:.1f} MB"


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_prior_loads_and_beats_identity(name):
    """A real quality check: on held-out (Split.TEST) images the prior's estimate is closer to the clean
    image than its input, by a margin, at a mid noise level (or severity t = 0.5 for Dirac)."""
    r = recipe(name)
    prior = priors.load(name)
    assert isinstance(prior, EXPECTED_TYPE[type(r.objective).__name__])
    assert not prior.training and not any(p.requires_grad for p in prior.parameters())
    clean, convention = training_images(r, Split.TEST, 2)
    assert prior.convention.name == json.loads((bundled_directory() / f"{name}.json").read_text())["convention"]["name"]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        if isinstance(r.objective, ConditionalDiffusion):
            # the one-step estimate from z_t and y beats the Tikhonov inverse the network is given, mid-way
            m = r.objective.measurement
            y = m.simulate(clean, g, 0.1)
            c = prior.condition(y)
            gamma = prior.gamma(0.2, prior.lam(c))
            z = gamma.sqrt() * clean + (1 - gamma).sqrt() * torch.randn(clean.shape, generator=g)
            before = psnr(m.regularized_inverse(y, m.condition_regularization), clean)
            after = psnr((z - (1 - gamma).sqrt() * prior.eps(z, c, gamma)) / gamma.sqrt(), clean)
        elif isinstance(r.objective, IncrementalReconstruction):
            # Phi beats y_t, and by a wide margin in the look-ahead domain A_tau the IR loss trains
            y = prior.process.sample(clean, 0.5, g)
            x0_hat = prior(y, 0.5)
            assert bool((psnr(x0_hat, clean) > psnr(y, clean) + 1.0).all())
            A = prior.process.operator(max(0.5 - r.objective.dt, 0.0))
            before, after = psnr(A @ y, A @ clean), psnr(A @ x0_hat, A @ clean)
        else:
            assert prior.sigma_range == r.objective.sigma_range
            if r.data.normalization is Normalization.STANDARDIZE:
                assert convention.name.startswith("standardized")
            sigma = MID_SIGMA[r.data.normalization]
            noisy = clean + sigma * torch.randn(clean.shape, generator=g)
            before, after = psnr(noisy, clean), psnr(prior.denoise(noisy, sigma), clean)
    assert bool((after > before + 3.0).all()), f"{name}: PSNR {after.tolist()} vs input {before.tolist()}"


def test_blind_prior_is_differentiable_in_x_and_runs_on_larger_images():
    prior = priors.load("ddgm-cells")
    x = torch.randn(1, 1, 96, 160, requires_grad=True, generator=gen(100))
    eps = prior.eps(x, 1.0)
    assert eps.shape == x.shape
    (g,) = torch.autograd.grad(eps.sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("name", BUNDLED)
def test_recipe_round_trips_through_json(name):
    r = RECIPES[name]
    again = Recipe.from_json(json.loads(json.dumps(r.to_json())))
    assert again == r and again.description == r.description
    assert hash(again) == hash(r)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.name = "other"


def test_recipe_json_errors_are_clear():
    data = RECIPES["ddgm-cells"].to_json()
    with pytest.raises(ValueError, match="not a priors recipe"):
        Recipe.from_json({**data, "format": "something/else"})
    broken = {**data, "objective": {"type": "Denoising", "sigma_min": 0.1}}
    with pytest.raises(ValueError, match="invalid or missing fields"):
        Recipe.from_json(broken)


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(ValueError, match=r"unknown prior 'ddgm-cats'; available: .*ddgm-cells"):
        priors.load("ddgm-cats")


def _copy_bundle(name, directory):
    for suffix in (".safetensors", ".json"):
        shutil.copy(bundled_directory() / f"{name}{suffix}", directory / f"{name}{suffix}")


def test_missing_and_corrupt_weights_fail_clearly(tmp_path):
    name = "padis-patch-small"
    _copy_bundle(name, tmp_path)
    assert isinstance(priors.load(name, directory=tmp_path), PatchPrior)
    weights = tmp_path / f"{name}.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt.*SHA-256.*python -m priors train padis-patch-small"):
        priors.load(name, directory=tmp_path)
    # a truncated file whose checksum was recorded with it still fails when safetensors reads it
    meta_path = tmp_path / f"{name}.json"
    meta = json.loads(meta_path.read_text())
    weights.write_bytes(bytes(data[: len(data) // 3]))
    meta["weights"]["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="cannot read weights.*corrupt, truncated"):
        priors.load(name, directory=tmp_path)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="no weights for prior 'padis-patch-small'"):
        priors.load(name, directory=tmp_path)
    meta_path.unlink()
    with pytest.raises(FileNotFoundError, match="no metadata for prior 'padis-patch-small'"):
        priors.load(name, directory=tmp_path)


def test_weights_from_another_recipe_are_refused(tmp_path):
    name = "whole-ellipses-small"
    _copy_bundle(name, tmp_path)
    meta_path = tmp_path / f"{name}.json"
    meta = json.loads(meta_path.read_text())
    meta["recipe"]["optimization"]["steps"] += 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="different recipe"):
        priors.load(name, directory=tmp_path)


def test_train_command_end_to_end(tmp_path, capsys):
    """`python -m priors train NAME --steps 2` writes a bundle that loads; --resume extends the run."""
    out = tmp_path / "runs"
    assert main(["train", "padis-patch-small", "--steps", "2", "--out", str(out), "--no-progress"]) == 0
    prior = priors.load("padis-patch-small", directory=out)
    assert isinstance(prior, PatchPrior)
    meta = json.loads((out / "padis-patch-small.json").read_text())
    assert (
        meta["training"]["steps"] == 2
        and meta["training"]["recipe_steps"] == RECIPES["padis-patch-small"].optimization.steps
    )
    assert meta["training"]["command"] == "python -m priors train padis-patch-small --steps 2"
    assert len(meta["quality"]["sigmas"]) == 4
    assert (out / "padis-patch-small.md").read_text().startswith("# padis-patch-small")
    assert (out / "padis-patch-small_loss.png").stat().st_size > 1000
    assert main(["train", "padis-patch-small", "--steps", "3", "--out", str(out), "--resume", "--no-progress"]) == 0
    meta = json.loads((out / "padis-patch-small.json").read_text())
    assert meta["training"]["steps"] == 3 and len(meta["training"]["loss_curve"]) == 3
    assert main(["list"]) == 0
    assert "ddgm-cells" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "no-such-prior", "--out", str(out)])


@pytest.mark.parametrize("base", ["ddgm-cells", "dirac-blur", "cvdm-qpi"])
def test_tiny_variants_of_each_objective_train_and_load(base, tmp_path, monkeypatch):
    """The crop / standardize / blind path, the Dirac path and the CVDM path, on a tiny net and 4 images."""
    r = RECIPES[base]
    tiny = dataclasses.replace(
        r,
        name=f"tiny-{base}",
        data=dataclasses.replace(r.data, count=4),
        network=dataclasses.replace(r.network, channels=(8, 8)),
    )
    monkeypatch.setitem(RECIPES, tiny.name, tiny)
    train_recipe(tiny.name, tmp_path, steps=2, progress=False)
    prior = priors.load(tiny.name, directory=tmp_path)
    x = training_images(tiny, Split.TEST, 1)[0]
    if isinstance(tiny.objective, IncrementalReconstruction):
        assert prior(x, 0.3).shape == x.shape
    elif isinstance(tiny.objective, ConditionalDiffusion):
        assert prior.convention.name.startswith("zero-mean") and abs(float(x.mean())) < 1e-6
        c = prior.condition(tiny.objective.measurement.simulate(x, torch.Generator().manual_seed(0), 0.1))
        gamma = prior.gamma(0.5, prior.lam(c))
        assert prior.eps(x, c, gamma).shape == x.shape
        meta = json.loads((tmp_path / f"{tiny.name}.json").read_text())
        assert len(meta["quality"]["times"]) == 3 and meta["quality"]["schedule"]["gamma_t0_min"] > 0.9
    else:
        assert prior.conditioning.name == "BLIND" and prior.convention.name.startswith("standardized")
        assert prior.denoise(x, 0.5).shape == x.shape


def test_recipes_record_their_objective_and_network_consistently():
    for r in RECIPES.values():
        net = r.build_network()
        assert net.config["extra_channels"] == r.objective.extra_channels
        if isinstance(r.objective, PatchDenoising):
            assert net.config["conditional"]
    assert isinstance(RECIPES["ddgm-cells"].network, UNetSpec) and not RECIPES["ddgm-cells"].network.conditional
