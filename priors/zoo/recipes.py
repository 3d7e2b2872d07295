"""Training recipes for the bundled priors: typed, frozen values that record everything a run needs.

A `Recipe` is data (the image family, size, count, seed and normalisation), a network (`UNetSpec`),
an objective (`Denoising`, `PatchDenoising`, `IncrementalReconstruction` or `ConditionalDiffusion`) and an optimisation
schedule. Each objective knows the loss it trains with and the prior it becomes, so training and
loading are the same few lines for every recipe. Recipes round-trip through JSON (`to_json` /
`Recipe.from_json`); the JSON beside each bundled weight file holds the recipe that produced it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, fields, is_dataclass

import torch
from torch import nn

import linops

from ..cvdm import (
    SCHEDULES,
    ConditionalDenoiser,
    ConditionalDiffusionModel,
    ConditionalDiffusionPrior,
    CVDMLoss,
    ScheduleSpec,
)
from ..data import Family, Split
from ..dirac import DegradationAwarePrior, DegradationProcess, GeometricNoise, IncrementalReconstructionLoss
from ..network import Conditioning, NetworkPrior, Prediction
from ..patch import PatchDSMLoss, PatchPrior
from ..protocol import Convention
from ..qpi import PhaseFromDefocus
from ..training import DSMLoss

RECIPE_FORMAT = "priors.zoo.recipe/1"


class Normalization(enum.Enum):
    """How the procedural images (in [0, 1]) are presented to the network.

    UNIT         as generated, in [0, 1] (convention `UNIT`).
    STANDARDIZE  zero mean and unit variance per image (`priors.data.standardize`, DDGM's setting).
    ZERO_MEAN    2 (u - mean(u)) per image: the [-1, 1] scale without the mean (phase images, which a
                 measurement determines only up to a constant; `priors.qpi`).
    """

    UNIT = "unit"
    STANDARDIZE = "standardize"
    ZERO_MEAN = "zero_mean"


@dataclass(frozen=True)
class DataSpec:
    """The training images: `ProceduralImages(family, size, count, seed, Split.TRAIN)`, normalised, then
    (per batch) `crop` x `crop` random crops (None: whole images) and, with `dihedral`, one of the 8
    flips / quarter turns of the square drawn per image."""

    family: Family
    size: int
    count: int
    seed: int = 0
    normalization: Normalization = Normalization.UNIT
    crop: int | None = None
    dihedral: bool = False

    def __post_init__(self):
        object.__setattr__(self, "family", Family(self.family))
        object.__setattr__(self, "normalization", Normalization(self.normalization))
        if self.crop is not None and not 8 <= self.crop <= self.size:
            raise ValueError(f"crop must lie in [8, size={self.size}], got {self.crop}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one training sample (after cropping)."""
        side = self.crop if self.crop is not None else self.size
        return (1, side, side)

    def describe(self) -> str:
        crop = f", random {self.crop} x {self.crop} crops" if self.crop else ""
        aug = ", random flips and quarter turns" if self.dihedral else ""
        return (f"`ProceduralImages(Family.{self.family.name}, size={self.size}, count={self.count}, "
                f"seed={self.seed}, split=Split.TRAIN)`{crop}{aug}.")

    def images(self, split: Split = Split.TRAIN, count: int | None = None):
        from ..data import ProceduralImages

        return ProceduralImages(self.family, self.size, self.count if count is None else count, self.seed, split)


class _Tiles:
    """Already-cut images, with the `.tensor()` of `ProceduralImages`."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def tensor(self) -> torch.Tensor:
        return self.images


@dataclass(frozen=True)
class FileData:
    """The user's own images (`python -m priors train NAME --images PATH`): every 2-D image of `source`
    (one MRC/TIFF/NPY/PNG stack or a folder of them, `priors.data.files.read_images`) cut into
    non-overlapping `size` x `size` tiles, row-major, constant tiles dropped; all tiles mapped to [0, 1]
    by the global minimum and maximum, then normalised like `DataSpec`. The last `held_out` tiles are
    the test split (the model card's quality check), the others the training split. `sha256` identifies
    the tiles (a changed file changes it, and loading the recipe's data then fails loudly)."""

    source: str
    size: int
    count: int
    held_out: int
    sha256: str
    normalization: Normalization = Normalization.STANDARDIZE
    crop: int | None = None
    dihedral: bool = True

    def __post_init__(self):
        object.__setattr__(self, "normalization", Normalization(self.normalization))
        if self.crop is not None and not 8 <= self.crop <= self.size:
            raise ValueError(f"crop must lie in [8, size={self.size}], got {self.crop}")

    @property
    def shape(self) -> tuple[int, int, int]:
        side = self.crop if self.crop is not None else self.size
        return (1, side, side)

    @classmethod
    def from_files(cls, source, size: int, *, crop: int | None = None, held_out_fraction: float = 0.1,
                   normalization: Normalization = Normalization.STANDARDIZE, dihedral: bool = True) -> FileData:
        """The spec of the tiles of `source` (reads the files once to count and hash them)."""
        tiles = file_tiles(source, size)
        if tiles.shape[0] < 2:
            raise ValueError(f"{source}: {tiles.shape[0]} tile of {size} x {size}; need at least 2 (one held out)")
        held_out = min(max(1, round(held_out_fraction * tiles.shape[0])), tiles.shape[0] - 1)
        count = tiles.shape[0] - held_out
        return cls(str(source), size, count, held_out, _digest(tiles), normalization, crop, dihedral)

    def tiles(self) -> torch.Tensor:
        tiles = file_tiles(self.source, self.size)
        if _digest(tiles) != self.sha256:
            raise ValueError(f"the images in {self.source} changed since this recipe was made (their SHA-256 differs)")
        return tiles

    def images(self, split: Split = Split.TRAIN, count: int | None = None):
        tiles = self.tiles()
        part = tiles[self.count :] if split is not Split.TRAIN else tiles[: self.count]
        return _Tiles(part if count is None else part[:count])

    def describe(self) -> str:
        return (f"{self.count} training tiles of {self.size} x {self.size} (and {self.held_out} held out) cut from "
                f"the images in `{self.source}` (SHA-256 {self.sha256[:12]})")


def file_tiles(source, size: int) -> torch.Tensor:
    """The non-overlapping size x size tiles of every image in `source`, (N, 1, size, size) in [0, 1]."""
    from ..data.files import read_images

    if size < 8:
        raise ValueError(f"the tile size must be at least 8 pixels, got {size}")
    tiles = []
    for index, image in enumerate(read_images(source)):
        h, w = image.shape
        if h < size or w < size:
            raise ValueError(f"{source}: image {index} is {h} x {w}, smaller than the tile size {size}; use a smaller "
                             "--size")
        for i in range(0, h - size + 1, size):
            for j in range(0, w - size + 1, size):
                tile = image[i : i + size, j : j + size]
                if float(tile.std()) > 1e-6 * max(float(abs(tile).max()), 1e-30):
                    tiles.append(torch.from_numpy(tile.copy()))
    if not tiles:
        raise ValueError(f"{source}: no non-constant {size} x {size} tiles")
    stack = torch.stack(tiles)[:, None].to(torch.float32)
    lo, hi = float(stack.min()), float(stack.max())
    return (stack - lo) / (hi - lo)


def _digest(tiles: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha256(tiles.numpy().tobytes()).hexdigest()


@dataclass(frozen=True)
class UNetSpec:
    """`priors.nets.UNet` constructor arguments (in_channels = 1; extra channels come from the objective)."""

    channels: tuple[int, ...]
    blocks: int = 1
    conditional: bool = True
    frequencies: int = 8
    groups: int = 8
    init_seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

    def build(self, extra_channels: int = 0):
        from ..nets import UNet

        return UNet(
            1,
            channels=self.channels,
            blocks=self.blocks,
            conditional=self.conditional,
            extra_channels=extra_channels,
            frequencies=self.frequencies,
            groups=self.groups,
            seed=self.init_seed,
        )


class _PlainNetwork:
    """Objectives whose network is the U-Net itself, with the objective's extra input channels."""

    def build(self, network: UNetSpec) -> nn.Module:
        return network.build(self.extra_channels)


@dataclass(frozen=True)
class Denoising(_PlainNetwork):
    """Whole-image denoising score matching (`DSMLoss`), log sigma ~ U[log sigma_min, log sigma_max];
    the prior is a `NetworkPrior`."""

    sigma_min: float
    sigma_max: float
    target: Prediction = Prediction.EPS
    conditioning: Conditioning = Conditioning.NOISE_LEVEL

    def __post_init__(self):
        object.__setattr__(self, "target", Prediction(self.target))
        object.__setattr__(self, "conditioning", Conditioning(self.conditioning))

    extra_channels = 0

    @property
    def sigma_range(self) -> tuple[float, float]:
        return (self.sigma_min, self.sigma_max)

    def loss(self, image_shape):
        return DSMLoss(self.sigma_min, self.sigma_max, self.target, self.conditioning)

    def wrap(self, model: nn.Module, convention: Convention, image_shape) -> NetworkPrior:
        return NetworkPrior(
            model,
            prediction=self.target,
            conditioning=self.conditioning,
            convention=convention,
            sigma_range=self.sigma_range,
        )


@dataclass(frozen=True)
class PatchDenoising(_PlainNetwork):
    """PaDIS patch denoising score matching (`PatchDSMLoss`) on the patches of random grid shifts, the
    network told each patch's position (2 + 4 frequencies channels); the prior is a `PatchPrior`."""

    patch: int
    sigma_min: float
    sigma_max: float
    target: Prediction = Prediction.EPS
    position_frequencies: int = 0

    def __post_init__(self):
        object.__setattr__(self, "target", Prediction(self.target))

    @property
    def extra_channels(self) -> int:
        from ..nets import position_channel_count

        return position_channel_count(self.position_frequencies)

    @property
    def sigma_range(self) -> tuple[float, float]:
        return (self.sigma_min, self.sigma_max)

    def loss(self, image_shape):
        return PatchDSMLoss(self.patch, self.sigma_min, self.sigma_max, self.target, self.position_frequencies)

    def wrap(self, model: nn.Module, convention: Convention, image_shape) -> PatchPrior:
        return PatchPrior(
            model,
            self.patch,
            prediction=self.target,
            frequencies=self.position_frequencies,
            convention=convention,
            sigma_range=self.sigma_range,
        )


class Degradation(enum.Enum):
    """The severity families of the Dirac networks."""

    BLUR = "blur"  # linops.GaussianBlurFamily: Gaussian blur, std(t) linear in t, reflect padding
    INPAINTING = "inpainting"  # linops.GaussianMaskFamily: smooth centred mask, width(t) linear in t


class SeverityConditioned(nn.Module):
    """Phi(y_t, t) = y_t + net(y_t, exp(4 t)): a residual, noise-conditional UNet told the severity t in
    place of sigma. The UNet embeds c = log(sigma) / 4, so here c = t exactly (t = 0 stays finite,
    unlike log t). The residual form starts training at Phi = y_t (the head is zero-initialised)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return y_t + self.net(y_t, torch.exp(4 * t.to(y_t.dtype)))


@dataclass(frozen=True)
class IncrementalReconstruction(_PlainNetwork):
    """Dirac's incremental-reconstruction loss (`IncrementalReconstructionLoss`, look-ahead dt) for the
    process y_t = A_t x0 + sigma_t z; A_t from `degradation` with its parameter ramping linearly from
    `severity[0]` (t = 0) to `severity[1]` (t = 1): the blur std or the mask width, in pixels. The
    prior is a `DegradationAwarePrior` around `SeverityConditioned(UNet)`."""

    degradation: Degradation
    dt: float
    severity: tuple[float, float]
    sigma_0: float = 0.01
    sigma_1: float = 0.05

    def __post_init__(self):
        object.__setattr__(self, "degradation", Degradation(self.degradation))
        object.__setattr__(self, "severity", tuple(float(v) for v in self.severity))

    extra_channels = 0

    @property
    def sigma_range(self) -> tuple[float, float]:
        return (self.sigma_0, self.sigma_1)

    def process(self, image_shape) -> DegradationProcess:
        ramp = linops.LinearRamp(*self.severity)
        if self.degradation is Degradation.BLUR:
            family = linops.GaussianBlurFamily(tuple(image_shape), ramp)
        else:
            family = linops.GaussianMaskFamily(tuple(image_shape), ramp)
        return DegradationProcess(family, GeometricNoise(self.sigma_0, self.sigma_1))

    def loss(self, image_shape):
        ir = IncrementalReconstructionLoss(self.process(image_shape), self.dt)

        def loss(model, x0, generator):
            return ir(SeverityConditioned(model), x0, generator)

        return loss

    def wrap(self, model: nn.Module, convention: Convention, image_shape) -> DegradationAwarePrior:
        return DegradationAwarePrior(SeverityConditioned(model), self.process(image_shape), convention=convention)


@dataclass(frozen=True)
class ConditionalDiffusion:
    """CVDM (`priors.cvdm`): a conditional prior p(x | y) for the measurement `measurement`, trained on
    pairs (x, y) simulated on the fly by the CVDM loss (`CVDMLoss`: noise term, L_beta with its boundary
    terms, KL to N(0, I) at t = 1, alpha times the second-derivative regulariser, weighted by `weights`).
    `schedule` picks the variant: `PixelSchedule` (CVDM), `GlobalSchedule` (CVDM-simple) or
    `LinearSchedule` (conditional DDPM). The network spec is the denoiser's U-Net (conditional: it is
    also told the mean noise level); the prior is a `ConditionalDiffusionPrior`."""

    measurement: PhaseFromDefocus
    schedule: ScheduleSpec
    alpha: float = 1e-3
    weights: tuple[float, float, float, float] = (1.0, 2.0, 2.0, 2.0)
    steps: int = 200

    def __post_init__(self):
        if isinstance(self.measurement, dict):
            fields_ = {k: v for k, v in self.measurement.items() if k != "type"}
            object.__setattr__(self, "measurement", PhaseFromDefocus(**fields_))
        if isinstance(self.schedule, dict):
            fields_ = dict(self.schedule)
            kind = fields_.pop("type", None)
            if kind not in SCHEDULES:
                raise ValueError(f"schedule type must be one of {sorted(SCHEDULES)}, got {kind!r}")
            object.__setattr__(self, "schedule", SCHEDULES[kind](**fields_))
        if not isinstance(self.measurement, PhaseFromDefocus):
            raise TypeError(f"measurement must be a PhaseFromDefocus, got {type(self.measurement).__name__}")
        if type(self.schedule).__name__ not in SCHEDULES:
            raise TypeError(f"schedule must be one of {sorted(SCHEDULES)}, got {type(self.schedule).__name__}")
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if len(self.weights) != 4 or self.alpha < 0 or self.steps < 2:
            raise ValueError(
                f"need four loss weights, alpha >= 0 and steps >= 2; got weights={self.weights}, "
                f"alpha={self.alpha}, steps={self.steps}"
            )

    @property
    def extra_channels(self) -> int:
        """The denoiser's extra input channels: the condition and the gamma map."""
        return self.measurement.condition_channels + 1

    @property
    def sigma_range(self) -> tuple[float, float]:
        """The range of the per-image intensity noise sigma_I the prior was trained on."""
        return self.measurement.noise

    def build(self, network: UNetSpec) -> ConditionalDiffusionModel:
        if not network.conditional:
            raise ValueError("the CVDM denoiser's UNetSpec must be conditional (it is told the mean noise level)")
        schedule = self.schedule.build(self.measurement.condition_channels, seed=network.init_seed + 1)
        denoiser = ConditionalDenoiser(network.build(self.extra_channels))
        config = {"schedule": type(self.schedule).__name__, "extra_channels": self.extra_channels}
        return ConditionalDiffusionModel(schedule, denoiser, config)

    def loss(self, image_shape):
        if tuple(image_shape) != self.measurement.image_shape:
            raise ValueError(
                f"the training images are {tuple(image_shape)} but the measurement is for "
                f"{self.measurement.image_shape}; set PhaseFromDefocus(size=...) to the data size"
            )
        return CVDMLoss(self.measurement, self.alpha, self.weights, self.steps)

    def wrap(self, model: nn.Module, convention: Convention, image_shape) -> ConditionalDiffusionPrior:
        return ConditionalDiffusionPrior(model, self.measurement, convention=convention)


Objective = Denoising | PatchDenoising | IncrementalReconstruction | ConditionalDiffusion
_OBJECTIVES = {
    cls.__name__: cls for cls in (Denoising, PatchDenoising, IncrementalReconstruction, ConditionalDiffusion)
}


@dataclass(frozen=True)
class Optimization:
    """Adam(lr) for `steps` steps of `batch_size` images, the learning rate warmed up linearly over
    `warmup` steps then decayed by a half cosine to `final_lr_fraction` lr; gradient norm clipped
    to `grad_clip`. `seed` seeds the run's generator (batches, crops, noise); a checkpoint every
    `checkpoint_every` steps."""

    steps: int
    batch_size: int
    lr: float = 2e-3
    warmup: int = 100
    final_lr_fraction: float = 0.05
    grad_clip: float | None = 1.0
    seed: int = 0
    checkpoint_every: int = 200

    def lr_factor(self, steps: int):
        """The learning-rate multiplier as a function of the step, for a run of `steps` steps."""
        warmup, floor = min(self.warmup, max(steps // 10, 1)), self.final_lr_fraction

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(steps - warmup, 1), 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        return factor


@dataclass(frozen=True)
class Recipe:
    """Everything that reproduces one bundled prior: `python -m priors train NAME`."""

    name: str
    data: DataSpec | FileData
    network: UNetSpec
    objective: Objective
    optimization: Optimization
    description: str = field(default="", compare=False)

    def __post_init__(self):
        if type(self.objective).__name__ not in _OBJECTIVES:
            raise TypeError(f"objective must be one of {sorted(_OBJECTIVES)}, got {type(self.objective).__name__}")

    def build_network(self) -> nn.Module:
        return self.objective.build(self.network)

    def to_json(self) -> dict:
        return {
            "format": RECIPE_FORMAT,
            "name": self.name,
            "description": self.description,
            "data": _to_json(self.data) | ({"type": "FileData"} if isinstance(self.data, FileData) else {}),
            "network": _to_json(self.network),
            "objective": {"type": type(self.objective).__name__, **_to_json(self.objective)},
            "optimization": _to_json(self.optimization),
        }

    @classmethod
    def from_json(cls, data: dict, source: str = "recipe") -> Recipe:
        if not isinstance(data, dict) or data.get("format") != RECIPE_FORMAT:
            raise ValueError(f"{source} is not a priors recipe (expected format {RECIPE_FORMAT!r})")
        try:
            objective = dict(data["objective"])
            kind = _OBJECTIVES[objective.pop("type")]
            spec = dict(data["data"])
            data_kind = {"DataSpec": DataSpec, "FileData": FileData}[spec.pop("type", "DataSpec")]
            return cls(
                name=str(data["name"]),
                data=data_kind(**spec),
                network=UNetSpec(**data["network"]),
                objective=kind(**objective),
                optimization=Optimization(**data["optimization"]),
                description=str(data.get("description", "")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{source} has invalid or missing fields: {err!r}") from None


def _to_json(value) -> dict:
    out = {}
    for f in fields(value):
        v = getattr(value, f.name)
        if is_dataclass(v):
            out[f.name] = {"type": type(v).__name__, **_to_json(v)}
        else:
            out[f.name] = v.value if isinstance(v, enum.Enum) else list(v) if isinstance(v, tuple) else v
    return out
