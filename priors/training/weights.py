"""Trained weights on disk: a safetensors file plus a small JSON of metadata beside it.

    save_weights("unet.safetensors", net, WeightsMetadata.for_network(net, prediction=..., ...))
    -> unet.safetensors  (the state dict)
    -> unet.json         (architecture and its kwargs, convention, sigma range, prediction, conditioning)

    prior = load_network_prior("unet.safetensors")     # rebuilds the network and wraps it as a NetworkPrior

Loading checks every key and shape against the model and names the ones that differ; an unreadable
file raises ValueError saying so. Nothing is unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..network import Conditioning, NetworkPrior, Prediction, VPSchedule
from ..protocol import UNIT, Convention

METADATA_FORMAT = "priors.weights/1"


def _architectures() -> dict[str, type[nn.Module]]:
    from ..nets import UNet

    return {"UNet": UNet}


@dataclass(frozen=True)
class WeightsMetadata:
    """What is needed to rebuild and use a trained network.

    Attributes:
        architecture: the class name (a key of the architecture registry, e.g. "UNet").
        kwargs: its constructor arguments (JSON-able; `UNet.config`).
        prediction, conditioning: how its output and noise input are to be read (see `NetworkPrior`).
        convention: the units of its training data.
        sigma_range: the (sigma_min, sigma_max) it was trained on, or None.
        vp_betas: the beta schedule of a VP-trained network, or None.
        extra: free-form JSON-able notes (dataset, steps, loss).
    """

    architecture: str
    kwargs: dict
    prediction: Prediction
    conditioning: Conditioning
    convention: Convention = UNIT
    sigma_range: tuple[float, float] | None = None
    vp_betas: list[float] | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def for_network(cls, model: nn.Module, **fields) -> WeightsMetadata:
        """Metadata for a model with a `config` dict (e.g. UNet): architecture and kwargs filled in."""
        config = getattr(model, "config", None)
        if not isinstance(config, Mapping):
            raise TypeError(f"{type(model).__name__} has no `config` dict; build WeightsMetadata(...) by hand")
        return cls(architecture=type(model).__name__, kwargs=dict(config), **fields)

    def to_json(self) -> dict:
        return {
            "format": METADATA_FORMAT,
            "architecture": self.architecture,
            "kwargs": self.kwargs,
            "prediction": self.prediction.value,
            "conditioning": self.conditioning.value,
            "convention": {
                "scale": self.convention.scale,
                "offset": self.convention.offset,
                "name": self.convention.name,
            },
            "sigma_range": list(self.sigma_range) if self.sigma_range is not None else None,
            "vp_betas": self.vp_betas,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict, source: str = "metadata") -> WeightsMetadata:
        if not isinstance(data, dict) or data.get("format") != METADATA_FORMAT:
            raise ValueError(f"{source} is not priors weights metadata (expected format {METADATA_FORMAT!r})")
        try:
            c = data["convention"]
            sr = data.get("sigma_range")
            return cls(
                architecture=data["architecture"],
                kwargs=dict(data["kwargs"]),
                prediction=Prediction(data["prediction"]),
                conditioning=Conditioning(data["conditioning"]),
                convention=Convention(float(c["scale"]), float(c["offset"]), str(c["name"])),
                sigma_range=(float(sr[0]), float(sr[1])) if sr is not None else None,
                vp_betas=data.get("vp_betas"),
                extra=dict(data.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ValueError(f"{source} has invalid or missing fields: {err!r}") from None


def metadata_path(weights_path) -> Path:
    """The JSON beside a weights file: unet.safetensors -> unet.json."""
    return Path(weights_path).with_suffix(".json")


def save_weights(path, model: nn.Module, metadata: WeightsMetadata | None = None) -> Path:
    """Write model.state_dict() to `path` (safetensors) and, if given, the metadata to path.json."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": METADATA_FORMAT})
    if metadata is not None:
        metadata_path(path).write_text(json.dumps(metadata.to_json(), indent=2))
    return path


def read_state(path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; ValueError for a missing-format, truncated or corrupt file."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    try:
        return load_file(str(path))
    except Exception as err:
        raise ValueError(
            f"cannot read weights from {path}: {err.__class__.__name__}: {err}. "
            "The file is corrupt, truncated, or not a safetensors file."
        ) from None


def check_state(state: Mapping[str, torch.Tensor], model: nn.Module, source: str = "the weights") -> None:
    """Raise ValueError naming missing keys, unexpected keys and shape mismatches between state and model."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if shapes:
            parts.append(f"shape mismatches [{'; '.join(shapes)}]")
        raise ValueError(
            f"{source} do not fit {type(model).__name__}: " + ", ".join(parts) + ". "
            "Was the model built with the same architecture kwargs (see the metadata JSON)?"
        )


def load_weights(path, model: nn.Module) -> nn.Module:
    """Load a safetensors file into `model` (in place, strictly checked); returns the model."""
    state = read_state(path)
    check_state(state, model, source=f"the weights in {path}")
    model.load_state_dict(state, strict=True)
    return model


def read_metadata(path) -> WeightsMetadata:
    """The metadata JSON beside a weights file (or the JSON file itself)."""
    path = Path(path)
    meta = path if path.suffix == ".json" else metadata_path(path)
    if not meta.is_file():
        raise FileNotFoundError(f"no metadata JSON at {meta} (written by save_weights(..., metadata=...))")
    try:
        data = json.loads(meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot parse metadata {meta}: {err}") from None
    return WeightsMetadata.from_json(data, source=str(meta))


def load_network_prior(
    path, *, architectures: Mapping[str, type[nn.Module]] | None = None, device: torch.device | str = "cpu"
) -> NetworkPrior:
    """Rebuild the network named in the metadata, load its weights and wrap it as a NetworkPrior (eval mode).

    `architectures` adds or overrides entries of the registry {"UNet": UNet}.
    """
    meta = read_metadata(path)
    registry = {**_architectures(), **(architectures or {})}
    if meta.architecture not in registry:
        raise ValueError(
            f"unknown architecture {meta.architecture!r} in {metadata_path(path)}; known: {sorted(registry)}. "
            "Pass architectures={name: class}."
        )
    try:
        model = registry[meta.architecture](**meta.kwargs)
    except TypeError as err:
        raise ValueError(f"cannot build {meta.architecture} from the kwargs in {metadata_path(path)}: {err}") from None
    load_weights(path, model)
    vp = VPSchedule(torch.tensor(meta.vp_betas, dtype=torch.float64)) if meta.vp_betas is not None else None
    prior = NetworkPrior(
        model,
        prediction=meta.prediction,
        conditioning=meta.conditioning,
        convention=meta.convention,
        sigma_range=meta.sigma_range,
        vp=vp,
    )
    return prior.to(device).eval()
