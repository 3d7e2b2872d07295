"""Weights metadata and bundle cards are validated field by field before any network is built: a
mandatory checksum for bundled priors, named errors for a missing / null / invalid convention, a
mistyped vp_betas or prediction, and networks sized (on the meta device) and refused above a bound."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

import priors
from priors.nets import UNet
from priors.network import Conditioning, Prediction
from priors.protocol import SYMMETRIC
from priors.training import WeightsMetadata, load_network_prior, metadata_path, read_metadata, save_weights
from priors.zoo import bundled_directory

BUNDLE = "whole-ellipses-tiny"


@pytest.fixture
def bundle(tmp_path):
    """A copy of a bundled prior and a function that rewrites its card."""
    for suffix in (".safetensors", ".json"):
        shutil.copy(bundled_directory() / f"{BUNDLE}{suffix}", tmp_path / f"{BUNDLE}{suffix}")
    card = tmp_path / f"{BUNDLE}.json"

    def edit(change):
        meta = json.loads(card.read_text())
        change(meta)
        card.write_text(json.dumps(meta))

    return tmp_path, edit


def _set(path, value):
    def change(meta):
        *parents, last = path
        for key in parents:
            meta = meta[key]
        if value is KeyError:
            del meta[last]
        else:
            meta[last] = value

    return change


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("weights", "sha256"), KeyError, r"'weights.sha256' must be the weights file's SHA-256.*it is missing"),
        (("weights", "sha256"), None, r"'weights.sha256' must be .*it is missing"),
        (("weights", "sha256"), "abc", r"'weights.sha256' must be .*64 hex digits.*got \"abc\""),
        (("weights",), [], r"'weights' must be a JSON object"),
        (("convention",), KeyError, r"'convention' must be .*it is missing"),
        (("convention",), None, r"'convention' must be .*got null"),
        (("convention", "scale"), 0.0, r"'convention' must be .*scale.*finite > 0"),
        (("convention", "scale"), math.nan, r"'convention' must be"),
        (("convention", "offset"), "1", r"'convention' must be"),
        (("convention", "name"), 3, r"'convention' must be"),
    ],
    ids=lambda v: str(v)[:20],
)
def test_bundle_fields_are_checked_before_loading(bundle, path, value, message):
    """Before: no sha256 loaded silently unchecked; a missing convention raised KeyError, a null one
    TypeError, and scale 0 loaded a prior that divides by zero."""
    directory, edit = bundle
    edit(_set(path, value))
    with pytest.raises(ValueError, match=message):
        priors.load(BUNDLE, directory=directory)


def test_the_unedited_copy_loads(bundle):
    assert priors.load(BUNDLE, directory=bundle[0]) is not None


def test_every_shipped_card_records_its_checksum():
    for name in priors.zoo.names():
        meta = json.loads((bundled_directory() / f"{name}.json").read_text())
        assert len(meta["weights"]["sha256"]) == 64


class CountingUNet(UNet):
    """UNet that counts how often it is built with real memory (not on the meta device)."""

    built = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if next(self.parameters()).device.type != "meta":
            type(self).built += 1


@pytest.fixture
def weights(tmp_path):
    net = UNet(1, channels=(8, 16), seed=0)
    meta = WeightsMetadata.for_network(net, prediction=Prediction.EPS, conditioning=Conditioning.NOISE_LEVEL,
                                       convention=SYMMETRIC, sigma_range=(0.01, 10.0))
    path = save_weights(tmp_path / "net.safetensors", net, meta)
    CountingUNet.built = 0

    def edit(change):
        card = metadata_path(path)
        data = json.loads(card.read_text())
        change(data)
        card.write_text(json.dumps(data))

    return path, edit


def load(path, **kwargs):
    return load_network_prior(path, architectures={"UNet": CountingUNet}, **kwargs)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("convention", KeyError, r"'convention' must be .*it is missing"),
        ("convention", None, r"'convention' must be .*got null"),
        ("convention", {"scale": -2, "offset": 0, "name": "x"}, r"'convention' must be"),
        ("vp_betas", "linear", r"'vp_betas' must be null or a non-empty list of numbers in \(0, 1\); got \"linear\""),
        ("vp_betas", [0.1, "x"], r"'vp_betas' must be"),
        ("vp_betas", [0.5, 1.5], r"'vp_betas' must be"),
        ("vp_betas", [], r"'vp_betas' must be"),
        ("sigma_range", [1.0], r"'sigma_range' must be"),
        ("sigma_range", [2.0, 1.0], r"'sigma_range' must be"),
        ("prediction", "noise", r"'prediction' must be one of \['eps', 'x0', 'score'\]; got \"noise\""),
        ("conditioning", KeyError, r"'conditioning' must be one of .*it is missing"),
        ("kwargs", [8, 16], r"'kwargs' must be a JSON object"),
        ("architecture", 3, r"'architecture' must be a class name"),
        ("extra", "notes", r"'extra' must be a JSON object or null"),
        ("sha256", "zz", r"'sha256' must be"),
    ],
    ids=lambda v: str(v)[:16],
)
def test_metadata_fields_are_named_when_invalid(weights, field, value, message):
    """Before: KeyError / TypeError from inside (vp_betas 'linear' failed in torch.tensor after the
    network was built), or silent acceptance (betas out of (0, 1), a reversed sigma range)."""
    path, edit = weights
    edit(_set((field,), value))
    with pytest.raises(ValueError, match=message):
        read_metadata(path)
    with pytest.raises(ValueError, match=message):
        load(path)
    assert CountingUNet.built == 0


def test_valid_vp_betas_load(weights):
    path, edit = weights
    edit(_set(("vp_betas",), [0.0001 * (i + 1) for i in range(100)]))
    prior = load(path)
    assert prior.vp is not None and CountingUNet.built == 1


def test_a_gigabyte_network_is_refused_before_it_is_built(weights):
    """A card describing a 1e11-parameter UNet beside a small weights file: refused from its size on the
    meta device, naming 'kwargs' and the count (before: the network was allocated first)."""
    path, edit = weights
    edit(lambda meta: meta["kwargs"].update(channels=[32768, 32768]))
    expected = r"'kwargs' .*\"channels\": \[32768, 32768\].* parameters .*GiB.*max_parameters"
    with pytest.raises(ValueError, match=expected):
        load(path)
    assert CountingUNet.built == 0
    # the bound is an argument: a smaller one refuses the real network too
    edit(lambda meta: meta["kwargs"].update(channels=[8, 16]))
    with pytest.raises(ValueError, match="above the limit of 1,000"):
        load(path, max_parameters=1000)
    assert load(path) is not None and CountingUNet.built == 1


def test_shapes_are_compared_with_the_file_header_before_building(weights):
    path, edit = weights
    edit(lambda meta: meta["kwargs"].update(channels=[8, 32]))
    with pytest.raises(ValueError, match=r"shape mismatches"):
        load(path)
    assert CountingUNet.built == 0
    edit(lambda meta: meta["kwargs"].update(channels=[0, 16]))
    with pytest.raises(ValueError, match=r"cannot build CountingUNet from 'kwargs'.*positive channels"):
        load(path)


def test_recorded_checksum_is_verified(weights):
    """save_weights records the file's SHA-256; a file changed afterwards is refused (before: no checksum,
    the altered weights loaded silently)."""
    path, _ = weights
    assert len(json.loads(metadata_path(path).read_text())["sha256"]) == 64
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # a bit of the last tensor's data: still a valid safetensors file
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256 differs"):
        load(path)
    assert CountingUNet.built == 0
    assert torch.isfinite(next(iter(priors.training.read_state(path).values()))).all()
