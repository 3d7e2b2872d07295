"""Trained weights on disk: a safetensors file plus a small JSON of metadata beside it.

    save_weights("unet.safetensors", net, WeightsMetadata.for_network(net, prediction=..., ...))
    -> unet.safetensors  (the state dict)
    -> unet.json         (architecture and its kwargs, convention, sigma range, prediction, conditioning)

    prior = load_network_prior("unet.safetensors")     # rebuilds the network and wraps it as a NetworkPrior

Loading validates every metadata field first (each error names the field), checks the weights' SHA-256
when the metadata records it (`save_weights` does), sizes the network on the meta device (no memory)
and refuses one above `MAX_PARAMETERS`, and compares every key and shape of the file (read from its
header) with the network before building it; an unreadable file raises ValueError saying so. Nothing
is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..network import Conditioning, NetworkPrior, Prediction, VPSchedule
from ..protocol import UNIT, Convention

METADATA_FORMAT = "priors.weights/1"

#: the largest network `load_network_prior` builds unless told otherwise: 2.5e8 parameters, 1 GB in float32
MAX_PARAMETERS = 250_000_000


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
    sha256: str | None = field(default=None, compare=False)

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
            **({"sha256": self.sha256} if self.sha256 is not None else {}),
        }

    @classmethod
    def from_json(cls, data: dict, source: str = "metadata") -> WeightsMetadata:
        """Every field validated, each error naming it (ValueError "... has invalid or missing fields: ...")."""
        if not isinstance(data, dict) or data.get("format") != METADATA_FORMAT:
            raise ValueError(f"{source} is not priors weights metadata (expected format {METADATA_FORMAT!r})")
        architecture = data.get("architecture")
        if not isinstance(architecture, str) or not architecture:
            present = "architecture" in data
            raise _field_error(source, "architecture", "a class name (e.g. 'UNet')", architecture, present)
        kwargs = data.get("kwargs")
        if not isinstance(kwargs, dict):
            raise _field_error(source, "kwargs", "a JSON object of constructor arguments", kwargs, "kwargs" in data)
        extra = data.get("extra")
        if extra is not None and not isinstance(extra, dict):
            raise _field_error(source, "extra", "a JSON object or null", extra, True)
        return cls(
            architecture=architecture,
            kwargs=dict(kwargs),
            prediction=_enum_field(source, data, "prediction", Prediction),
            conditioning=_enum_field(source, data, "conditioning", Conditioning),
            convention=convention_from_json(data.get("convention"), source, present="convention" in data),
            sigma_range=sigma_range_from_json(data.get("sigma_range"), source),
            vp_betas=vp_betas_from_json(data.get("vp_betas"), source),
            extra=dict(extra or {}),
            sha256=sha256_from_json(data.get("sha256"), source, "sha256") if data.get("sha256") is not None else None,
        )


def _field_error(source: str, name: str, expected: str, value, present: bool) -> ValueError:
    given = f"got {json.dumps(value)[:80]}" if present else "it is missing"
    return ValueError(f"{source} has invalid or missing fields: {name!r} must be {expected}; {given}")


def _enum_field(source: str, data: dict, name: str, kind):
    values = [m.value for m in kind]
    try:
        return kind(data.get(name))
    except ValueError:
        raise _field_error(source, name, f"one of {values}", data.get(name), name in data) from None


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def convention_from_json(value, source: str = "metadata", *, present: bool = True) -> Convention:
    """The `convention` field {"scale": s > 0, "offset": o, "name": str} (finite numbers) as a Convention."""
    ok = (
        isinstance(value, dict)
        and _finite(value.get("scale"))
        and _finite(value.get("offset"))
        and isinstance(value.get("name"), str)
        and value["scale"] > 0
    )
    if not ok:
        raise _field_error(
            source, "convention", '{"scale": finite > 0, "offset": finite, "name": text} (the units of the training '
            "images, x = scale u + offset for u in [0, 1])", value, present,
        )
    return Convention(float(value["scale"]), float(value["offset"]), value["name"])


def sigma_range_from_json(value, source: str = "metadata") -> tuple[float, float] | None:
    """null, or [sigma_min, sigma_max] with 0 < sigma_min <= sigma_max finite."""
    if value is None:
        return None
    pair = isinstance(value, list) and len(value) == 2 and all(_finite(v) for v in value)
    if not (pair and 0 < value[0] <= value[1]):
        raise _field_error(source, "sigma_range", "null or [sigma_min, sigma_max] with 0 < sigma_min <= sigma_max",
                           value, True)
    return (float(value[0]), float(value[1]))


def vp_betas_from_json(value, source: str = "metadata") -> list[float] | None:
    """null, or a non-empty list of betas in (0, 1) (the DDPM schedule of a VP-trained network)."""
    if value is None:
        return None
    if not (isinstance(value, list) and value and all(_finite(b) and 0 < b < 1 for b in value)):
        raise _field_error(source, "vp_betas", "null or a non-empty list of numbers in (0, 1)", value, True)
    return [float(b) for b in value]


def sha256_from_json(value, source: str, name: str = "sha256") -> str:
    """A SHA-256 hex digest (64 hex digits, any case) from a metadata field, lower-cased."""
    if not (isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{64}", value)):
        raise _field_error(source, name, "the weights file's SHA-256 (64 hex digits)", value, value is not None)
    return value.lower()


def file_sha256(path) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        record = {**metadata.to_json(), "sha256": file_sha256(path)}
        metadata_path(path).write_text(json.dumps(record, indent=2))
    return path


def read_shapes(path) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of a safetensors file, from its header alone (nothing is loaded)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:
        raise ValueError(
            f"cannot read weights from {path}: {err.__class__.__name__}: {err}. "
            "The file is corrupt, truncated, or not a safetensors file."
        ) from None


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


def check_state(state: Mapping, model: nn.Module, source: str = "the weights") -> None:
    """Raise ValueError naming missing keys, unexpected keys and shape mismatches between state (tensors, or
    shapes as from `read_shapes`) and model (which may live on the meta device)."""
    expected = model.state_dict()
    shape = lambda v: tuple(v.shape) if isinstance(v, torch.Tensor) else tuple(v)  # noqa: E731
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: file {shape(state[k])} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if shape(state[k]) != tuple(expected[k].shape)
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


def skeleton(cls: type[nn.Module], kwargs: dict, source: str) -> nn.Module:
    """cls(**kwargs) built on the meta device: its parameter shapes without allocating their memory."""
    try:
        with torch.device("meta"):
            return cls(**kwargs)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{source} has invalid or missing fields: cannot build {cls.__name__} from 'kwargs' "
                         f"{json.dumps(kwargs)[:200]}: {err}") from None


def check_size(model: nn.Module, source: str, max_parameters: int) -> int:
    """The number of parameters of `model`; ValueError naming the architecture fields when above the bound."""
    count = sum(p.numel() for p in model.parameters())
    if count > max_parameters:
        config = getattr(model, "config", None)
        raise ValueError(
            f"{source}: the network described by 'kwargs' {json.dumps(config) if config else ''} has {count:,} "
            f"parameters ({count * 4 / 2**30:.1f} GiB in float32), above the limit of {max_parameters:,}; "
            "pass max_parameters=... to load it anyway"
        )
    return count


def load_network_prior(
    path,
    *,
    architectures: Mapping[str, type[nn.Module]] | None = None,
    device: torch.device | str = "cpu",
    max_parameters: int = MAX_PARAMETERS,
) -> NetworkPrior:
    """Rebuild the network named in the metadata, load its weights and wrap it as a NetworkPrior (eval mode).

    In this order, so that a bad file costs nothing: every metadata field validated; the weights' SHA-256
    compared with the one recorded (when recorded); the network sized on the meta device and refused
    above `max_parameters`; the file's keys and shapes (its header) compared with the network's; only
    then the network built and the weights loaded. `architectures` adds or overrides entries of the
    registry {"UNet": UNet}.
    """
    meta = read_metadata(path)
    source = str(metadata_path(path))
    registry = {**_architectures(), **(architectures or {})}
    if meta.architecture not in registry:
        raise ValueError(
            f"unknown architecture {meta.architecture!r} in {source}; known: {sorted(registry)}. "
            "Pass architectures={name: class}."
        )
    if meta.sha256 is not None and file_sha256(path) != meta.sha256:
        raise ValueError(f"the weights file {path} is corrupt or was replaced: its SHA-256 differs from {source}'s")
    cls = registry[meta.architecture]
    shell = skeleton(cls, meta.kwargs, source)
    check_size(shell, source, max_parameters)
    check_state(read_shapes(path), shell, source=f"the weights in {path}")
    model = cls(**meta.kwargs)
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
