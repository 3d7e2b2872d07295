"""Bundle I/O: the four files a trained recipe is shipped as, written and read back with every field checked.

A bundle is four files named after the recipe, in one directory (`priors/bundled/` for the shipped ones):

    NAME.safetensors   the network's state dict (float16 to ship small; loaded back as float32)
    NAME.json          the recipe that produced it, the network kwargs, the convention and sigma range,
                       the weights' SHA-256, training statistics and the measured quality checks
    NAME.md            the model card (written from the JSON, `priors.zoo.cards`)
    NAME_loss.png      the training loss curve
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from ..protocol import Convention
from ..training import check_state, convention_from_json, file_sha256, read_shapes, read_state, sha256_from_json
from .catalog import RECIPES, recipe
from .recipes import FileData, Recipe

BUNDLE_FORMAT = "priors.zoo.bundle/1"
WEIGHTS_DTYPE = torch.float16
#: the training record's final_loss is the mean loss of the last this many steps
FINAL_LOSS_WINDOW = 100


def bundled_directory() -> Path:
    """The directory of the weights shipped with the package (`priors/bundled`)."""
    return Path(str(resources.files("priors") / "bundled"))


@dataclass(frozen=True)
class BundlePaths:
    directory: Path
    name: str

    @property
    def weights(self) -> Path:
        return self.directory / f"{self.name}.safetensors"

    @property
    def metadata(self) -> Path:
        return self.directory / f"{self.name}.json"

    @property
    def card(self) -> Path:
        return self.directory / f"{self.name}.md"

    @property
    def loss_plot(self) -> Path:
        return self.directory / f"{self.name}_loss.png"

    @property
    def checkpoint(self) -> Path:
        return self.directory / f"{self.name}.ckpt.pt"

    @property
    def clock(self) -> Path:
        return self.directory / f"{self.name}.wall.json"


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def save_bundle(paths: BundlePaths, r: Recipe, model: nn.Module, convention: Convention, training: dict) -> None:
    """Write NAME.safetensors (float16) and NAME.json."""
    from safetensors.torch import save_file

    state = {
        k: (v.detach().to(WEIGHTS_DTYPE) if v.is_floating_point() else v.detach()).cpu().contiguous().clone()
        for k, v in model.state_dict().items()
    }
    save_file(state, str(paths.weights), metadata={"format": BUNDLE_FORMAT, "name": r.name})
    meta = {
        "format": BUNDLE_FORMAT,
        "name": r.name,
        "recipe": r.to_json(),
        "architecture": type(model).__name__,
        "kwargs": getattr(model, "config", {}),
        "parameters": sum(p.numel() for p in model.parameters()),
        "convention": {"scale": convention.scale, "offset": convention.offset, "name": convention.name},
        "sigma_range": list(r.objective.sigma_range),
        "weights": {
            "file": paths.weights.name,
            "dtype": str(WEIGHTS_DTYPE).removeprefix("torch."),
            "sha256": file_sha256(paths.weights),
            "bytes": paths.weights.stat().st_size,
        },
        "training": training,
    }
    write_json(paths.metadata, meta)


def read_bundle_metadata(name: str, directory: str | os.PathLike | None = None) -> dict:
    """The parsed NAME.json of a bundle (default directory: the bundled one)."""
    paths = BundlePaths(Path(directory) if directory is not None else bundled_directory(), name)
    if not paths.metadata.is_file():
        raise FileNotFoundError(
            f"no metadata for prior {name!r} at {paths.metadata}; rebuild it with `python -m priors train {name}`"
        )
    try:
        meta = json.loads(paths.metadata.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot parse {paths.metadata}: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{paths.metadata} is not a priors bundle (expected format {BUNDLE_FORMAT!r})")
    return meta


def load(name: str, *, directory: str | os.PathLike | None = None, device: torch.device | str = "cpu"):
    """The trained prior `name`, ready to use: a `NetworkPrior`, `PatchPrior` or `DegradationAwarePrior`
    with its convention and sigma range, in eval mode, parameters frozen (gradients still flow to x).

    Reads `directory`/NAME.safetensors and NAME.json (default: the weights bundled with the package;
    no network access). Every field is checked before anything is built: the recipe must be the
    registered one, the convention valid, and the weights' SHA-256 (mandatory) must match the file;
    the file's keys and shapes are compared with the network's on the meta device. Raises ValueError
    for an unknown name (listing the available ones), a missing or invalid field (named), a weights
    file that is corrupt or does not match its recorded checksum or recipe, FileNotFoundError for a
    missing file.
    """
    r = recipe(name)
    paths = BundlePaths(Path(directory) if directory is not None else bundled_directory(), name)
    source = str(paths.metadata)
    meta = read_bundle_metadata(name, paths.directory)
    trained = Recipe.from_json(meta.get("recipe"), source=source)
    if trained != r:
        raise ValueError(
            f"the weights of {name!r} in {paths.directory} were trained with a different recipe than the one "
            f"registered in priors.zoo; retrain them with `python -m priors train {name}`"
        )
    return _load_bundle(r, paths, meta, device)


def load_file(weights, *, device: torch.device | str = "cpu"):
    """The prior of a bundle given by its weights file NAME.safetensors (beside NAME.json), built from the
    recipe recorded in NAME.json: what `python -m priors train NAME --images PATH` writes, or a copy of
    a bundled prior (whose recipe must then match the catalog's)."""
    weights = Path(weights)
    paths = BundlePaths(weights.parent, weights.stem)
    meta = read_bundle_metadata(paths.name, paths.directory)
    r = Recipe.from_json(meta.get("recipe"), source=str(paths.metadata))
    if r.name in RECIPES and r.name == paths.name and not isinstance(r.data, FileData):
        return load(paths.name, directory=paths.directory, device=device)
    return _load_bundle(r, paths, meta, device)


def _load_bundle(r: Recipe, paths: BundlePaths, meta: dict, device):
    """Validate every field of the bundle's metadata, the weights' checksum (mandatory) and their shapes
    (against the network built on the meta device), then build the prior."""
    name, source = paths.name, str(paths.metadata)
    convention = convention_from_json(meta.get("convention"), source, present="convention" in meta)
    weights = meta.get("weights")
    if not isinstance(weights, dict):
        raise ValueError(f"{source} has invalid or missing fields: 'weights' must be a JSON object with the file's "
                         f"sha256; got {json.dumps(weights)[:80]}")
    expected = sha256_from_json(weights.get("sha256"), source, "weights.sha256")
    if not paths.weights.is_file():
        raise FileNotFoundError(
            f"no weights for prior {name!r} at {paths.weights}; rebuild them with `python -m priors train {name}`"
        )
    if file_sha256(paths.weights) != expected:
        raise ValueError(
            f"the weights file {paths.weights} is corrupt: its SHA-256 differs from the one recorded in "
            f"{paths.metadata.name}; reinstall the package or retrain with `python -m priors train {name}`"
        )
    with torch.device("meta"):
        shell = r.build_network()
    check_state(read_shapes(paths.weights), shell, source=f"the weights in {paths.weights}")
    state = read_state(paths.weights)
    model = r.build_network()
    model.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()})
    prior = r.objective.wrap(model, convention, (1, r.data.size, r.data.size))
    prior.requires_grad_(False)
    return prior.to(device).eval()
