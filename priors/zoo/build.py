"""Training a recipe into a bundle (weights, metadata, model card, loss curve) and loading bundles back.

A bundle is four files named after the recipe, in one directory (`priors/bundled/` for the shipped ones):

    NAME.safetensors   the network's state dict (float16 to ship small; loaded back as float32)
    NAME.json          the recipe that produced it, the network kwargs, the convention and sigma range,
                       the weights' SHA-256, training statistics and the measured quality checks
    NAME.md            the model card (written from the JSON)
    NAME_loss.png      the training loss curve
"""

from __future__ import annotations

import datetime
import json
import math
import os
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from ..data import Split, standardize
from ..protocol import UNIT, Convention, standardized, zero_mean
from ..training import (
    check_state,
    convention_from_json,
    file_sha256,
    read_shapes,
    read_state,
    sha256_from_json,
    smoothed,
    train,
)
from ..training.distributed import Distributed
from .catalog import RECIPES
from .recipes import (
    ConditionalDiffusion,
    Denoising,
    FileData,
    IncrementalReconstruction,
    Normalization,
    PatchDenoising,
    Recipe,
)

BUNDLE_FORMAT = "priors.zoo.bundle/1"
WEIGHTS_DTYPE = torch.float16
FINAL_LOSS_WINDOW = 100


def bundled_directory() -> Path:
    """The directory of the weights shipped with the package (`priors/bundled`)."""
    return Path(str(resources.files("priors") / "bundled"))


def names() -> list[str]:
    """The names of all recipes (each has bundled weights)."""
    return sorted(RECIPES)


def recipe(name: str) -> Recipe:
    """The recipe called `name`; ValueError listing the known names otherwise."""
    if name not in RECIPES:
        raise ValueError(f"unknown prior {name!r}; available: {', '.join(names())}")
    return RECIPES[name]


# ----------------------------------------------------------------------------------------------
# data


def training_images(r: Recipe, split: Split = Split.TRAIN, count: int | None = None):
    """(images (N, 1, size, size) in the network's units, their convention) for a recipe's data.

    STANDARDIZE declares `standardized(m, s)` with m, s the mean over the training images of their
    per-image mean and standard deviation in [0, 1] units: the affine map that best matches per-image
    standardization on this data (used by `to_convention`; see the model cards). ZERO_MEAN declares
    `zero_mean(m)` with m the images' average mean, in the same spirit."""
    images = r.data.images(split, count).tensor()
    if r.data.normalization is Normalization.UNIT:
        return images, UNIT
    flat = images.reshape(images.shape[0], -1)
    if r.data.normalization is Normalization.ZERO_MEAN:
        convention = zero_mean(round(float(flat.mean(1).mean()), 4))
        return 2 * (images - flat.mean(1).reshape(-1, 1, 1, 1)), convention
    convention = standardized(round(float(flat.mean(1).mean()), 4), round(float(flat.std(1).mean()), 4))
    return standardize(images), convention


_DIHEDRAL = [(k, flip) for flip in (False, True) for k in range(4)]


def batch_source(images: torch.Tensor, batch_size: int, crop: int | None, dihedral: bool):
    """A callable(generator) -> batch: `batch_size` images drawn with replacement, each cropped at a
    random place to crop x crop and (with `dihedral`) turned by a random element of the dihedral group."""
    N, _, H, W = images.shape

    def draw(generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(N, (batch_size,), generator=generator)
        x = images[idx]
        if crop is not None:
            top = torch.randint(H - crop + 1, (batch_size,), generator=generator).tolist()
            left = torch.randint(W - crop + 1, (batch_size,), generator=generator).tolist()
            x = torch.stack([x[b, :, i : i + crop, j : j + crop] for b, (i, j) in enumerate(zip(top, left))])
        if dihedral:
            group = torch.randint(8, (batch_size,), generator=generator).tolist()
            x = torch.stack([_turn(x[b], *_DIHEDRAL[g]) for b, g in enumerate(group)])
        return x.contiguous()

    return draw


def _turn(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    x = torch.rot90(x, k, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if flip else x


# ----------------------------------------------------------------------------------------------
# training


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


def train_recipe(
    name: str,
    out: str | os.PathLike,
    *,
    steps: int | None = None,
    resume: bool = False,
    progress: bool = True,
    command: str | None = None,
    recipe_value: Recipe | None = None,
    distributed: Distributed | None = None,
) -> Path:
    """Train recipe `name` from scratch (or `resume` its checkpoint in `out`) and write its bundle into
    `out`. `steps` overrides the recipe's step count (the recipe itself is recorded unchanged).
    `recipe_value` trains that recipe (e.g. on the user's own images) in place of the catalog's `name`.
    Returns the path of the metadata JSON.

    `distributed` (from `priors.training.distributed.from_environment()`, under torchrun): the processes
    share every global batch of the recipe (the loss curve of one process, up to rounding); rank 0 alone
    reads the checkpoint to resume from and writes the checkpoints and the bundle, and every rank
    returns once it is written."""
    r = recipe(name) if recipe_value is None else recipe_value
    main = distributed is None or distributed.is_main
    paths = BundlePaths(Path(out), name)
    total = r.optimization.steps if steps is None else int(steps)
    if total < 1:
        raise ValueError(f"steps must be at least 1, got {total}")
    if main:
        paths.directory.mkdir(parents=True, exist_ok=True)
        if resume and not paths.checkpoint.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint of {name} at {paths.checkpoint}")

    images, convention = training_images(r)
    model = r.build_network()
    opt = r.optimization
    optimizer = torch.optim.Adam(model.parameters(), lr=opt.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, opt.lr_factor(total))
    earlier = json.loads(paths.clock.read_text())["wall_time_s"] if main and resume and paths.clock.is_file() else 0.0
    start = time.perf_counter()

    def tick(step: int, _loss: float) -> None:
        if (step + 1) % opt.checkpoint_every == 0:
            _write_json(paths.clock, {"wall_time_s": earlier + time.perf_counter() - start, "step": step + 1})

    result = train(
        model,
        r.objective.loss(r.data.shape),
        batch_source(images, opt.batch_size, r.data.crop, r.data.dihedral),
        steps=total,
        seed=opt.seed,
        optimizer=optimizer,
        scheduler=scheduler,
        grad_clip=opt.grad_clip,
        checkpoint_path=paths.checkpoint,
        checkpoint_every=opt.checkpoint_every,
        resume_from=paths.checkpoint if resume else None,
        progress=progress,
        callback=tick,
        distributed=distributed,
    )
    if not main:
        distributed.barrier()  # wait for rank 0 to write the bundle
        return paths.metadata
    wall = earlier + time.perf_counter() - start
    _write_json(paths.clock, {"wall_time_s": wall, "step": result.step})
    history = result.history
    training = {
        "steps": result.step,
        "recipe_steps": r.optimization.steps,
        "wall_time_s": round(wall, 1),
        "final_loss": _final_loss(history),
        "initial_loss": _final_loss(history[:FINAL_LOSS_WINDOW]),
        "command": command or f"python -m priors train {name}" + (f" --steps {total}" if steps else ""),
        "threads": torch.get_num_threads(),
        "processes": distributed.world_size if distributed is not None else 1,
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "loss_curve": _decimate(history),
    }
    save_bundle(paths, r, model, convention, training)
    prior = load_file(paths.weights)
    quality = measure_quality(r, prior)
    meta = json.loads(paths.metadata.read_text())
    meta["quality"] = quality
    _write_json(paths.metadata, meta)
    plot_loss(history, paths.loss_plot, title=name)
    paths.card.write_text(model_card(meta))
    if distributed is not None:
        distributed.barrier()
    return paths.metadata


def _final_loss(history: list[float]) -> float | None:
    tail = history[-FINAL_LOSS_WINDOW:]
    return round(sum(tail) / len(tail), 6) if tail else None


def _decimate(history: list[float], points: int = 200) -> list[list[float]]:
    """(step, running mean) pairs at about `points` steps: enough to redraw the curve."""
    if not history:
        return []
    s = smoothed(history, max(len(history) // points, 1))
    stride = max(len(history) // points, 1)
    return [[i + 1, round(s[i], 6)] for i in range(stride - 1, len(history), stride)]


def _write_json(path: Path, data: dict) -> None:
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
    _write_json(paths.metadata, meta)


# ----------------------------------------------------------------------------------------------
# loading


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


# ----------------------------------------------------------------------------------------------
# quality checks

QUALITY_IMAGES = 8
QUALITY_SEED = 1234
QUALITY_SIGMAS = {
    Normalization.UNIT: (0.02, 0.05, 0.1, 0.2),
    Normalization.STANDARDIZE: (0.1, 0.3, 1.0, 3.0),
    Normalization.ZERO_MEAN: (0.02, 0.05, 0.1, 0.2),
}
QUALITY_TIMES = (0.25, 0.5, 0.75)
QUALITY_NOISE = 0.1  # sigma_I of the conditional priors' check (the middle of the seed's training range)
QUALITY_SEVERITIES = (0.25, 0.5, 0.75, 1.0)


def psnr(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) with the clean image's own range (max - min) as the peak: the PSNR in [0, 1]
    units for every family here, standardized or not (the generators span [0, 1] exactly)."""
    c = clean.reshape(clean.shape[0], -1)
    mse = (estimate.reshape(estimate.shape[0], -1) - c).pow(2).mean(1)
    peak = c.max(1).values - c.min(1).values
    return 10 * torch.log10(peak**2 / mse)


@torch.no_grad()
def measure_quality(r: Recipe, prior, count: int = QUALITY_IMAGES) -> dict:
    """Held-out (Split.TEST) checks, with fixed noise (seed `QUALITY_SEED`).

    Denoisers: the PSNR of denoise(x0 + sigma z, sigma) against that of the noisy input at a few sigmas,
    and the same on `count` training images (a gap between the two shows memorisation).
    Dirac networks: at a few severities t, the PSNR of Phi(y_t, t) against that of y_t, and the PSNR
    in the look-ahead domain the IR loss trains, A_tau Phi(y_t, t) vs A_tau x0 (tau = max(t - dt, 0)),
    against that of A_tau y_t."""
    clean, _ = training_images(r, Split.TEST, count)
    g = torch.Generator().manual_seed(QUALITY_SEED)
    out = {"images": clean.shape[0], "split": "test", "image_size": clean.shape[-1]}
    if isinstance(r.objective, ConditionalDiffusion):
        return {**out, **_conditional_quality(r.objective, prior, clean, g)}
    if isinstance(r.objective, IncrementalReconstruction):
        rows = []
        for t in QUALITY_SEVERITIES:
            y = prior.process.sample(clean, t, g)
            x0_hat = prior(y, t)
            tau = max(t - r.objective.dt, 0.0)
            A = prior.process.operator(tau)
            row = _row("t", t, y, x0_hat, clean)
            row["tau"] = round(tau, 4)
            row["input_psnr_at_tau"] = round(float(psnr(A @ y, A @ clean).mean()), 2)
            row["output_psnr_at_tau"] = round(float(psnr(A @ x0_hat, A @ clean).mean()), 2)
            rows.append(row)
        return {**out, "severities": rows}
    train_clean, _ = training_images(r, Split.TRAIN, min(count, r.data.count))
    rows = []
    for sigma in QUALITY_SIGMAS[r.data.normalization]:
        noisy = clean + sigma * torch.randn(clean.shape, generator=g)
        row = _row("sigma", sigma, noisy, prior.denoise(noisy, sigma), clean)
        noisy_train = train_clean + sigma * torch.randn(train_clean.shape, generator=g)
        row["train_output_psnr"] = round(float(psnr(prior.denoise(noisy_train, sigma), train_clean).mean()), 2)
        rows.append(row)
    return {**out, "sigmas": rows}


def _conditional_quality(obj: ConditionalDiffusion, prior, clean: torch.Tensor, g: torch.Generator) -> dict:
    """Conditional priors, at sigma_I = QUALITY_NOISE: the learned schedule (lambda(y) over the pixels,
    gamma at the boundary times t_0 = 1 / T and t_1 = 1 - 1 / T, where the loss wants 1 and 0) and the
    one-step estimate x0_hat = (z_t - sqrt(1 - gamma) eps_hat) / sqrt(gamma) at a few t, against the
    Tikhonov inverse the network is given (the classical reference)."""
    m = obj.measurement
    y = m.simulate(clean, g, QUALITY_NOISE)
    c = prior.condition(y)
    lam = prior.lam(c)
    T = obj.steps
    gamma_0, gamma_1 = prior.gamma(1 / T, lam), prior.gamma(1 - 1 / T, lam)
    reference = round(float(psnr(m.regularized_inverse(y, m.condition_regularization), clean).mean()), 2)
    rows = []
    for t in QUALITY_TIMES:
        gamma = prior.gamma(t, lam)
        z = gamma.sqrt() * clean + (1 - gamma).sqrt() * torch.randn(clean.shape, generator=g)
        x0_hat = (z - (1 - gamma).sqrt() * prior.eps(z, c, gamma)) / gamma.sqrt()
        rows.append({"t": t, "mean_gamma": round(float(gamma.mean()), 4),
                     "output_psnr": round(float(psnr(x0_hat, clean).mean()), 2)})
    schedule = {
        "lambda_mean": round(float(lam.mean()), 4),
        "lambda_min": round(float(lam.min()), 4),
        "lambda_max": round(float(lam.max()), 4),
        "gamma_t0_min": round(float(gamma_0.min()), 6),
        "gamma_t1_max": round(float(gamma_1.max()), 6),
        "rho_1": round(float(prior.rho(torch.ones(1))), 4),
    }
    return {"noise_sigma_I": QUALITY_NOISE, "tikhonov_psnr": reference, "times": rows, "schedule": schedule}


def _row(key: str, level: float, degraded, estimate, clean) -> dict:
    before, after = psnr(degraded, clean), psnr(estimate, clean)
    return {key: level, "input_psnr": round(float(before.mean()), 2), "output_psnr": round(float(after.mean()), 2)}


def refresh_card(name: str, directory: str | os.PathLike) -> Path:
    """Re-measure the quality of the bundle `name` in `directory` and rewrite its JSON and model card
    (the weights and training record are left as they are). Returns the card's path."""
    paths = BundlePaths(Path(directory), name)
    meta = read_bundle_metadata(name, paths.directory)
    meta["recipe"]["description"] = recipe(name).description
    meta["quality"] = measure_quality(recipe(name), load(name, directory=paths.directory))
    _write_json(paths.metadata, meta)
    paths.card.write_text(model_card(meta))
    return paths.card


# ----------------------------------------------------------------------------------------------
# loss plot and model card


def plot_loss(history: list[float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=80)
    steps = range(1, len(history) + 1)
    ax.plot(steps, history, color="0.8", lw=0.6, label="loss per step")
    ax.plot(steps, smoothed(history, max(len(history) // 50, 1)), color="C0", lw=1.5, label="running mean")
    if min(history) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


_DATA_NOTES = {
    Normalization.UNIT: "images in [0, 1] as generated (convention `UNIT`).",
    Normalization.STANDARDIZE: (
        "each image standardized to zero mean and unit variance (`priors.data.standardize`), DDGM's setting: "
        "give the network per-image standardized images. The declared convention `{conv}` is one fixed affine "
        "map, with the training set's average per-image mean and std in [0, 1] units; `to_convention` converts "
        "through it exactly, but it matches per-image standardization only on average (on 128 x 128 cells the "
        "per-image mean varies by about 0.03 and the std by about 0.013 around it)."
    ),
    Normalization.ZERO_MEAN: (
        "2 (u - mean(u)) per image: the [-1, 1] scale with each image's mean removed (phase is measured only "
        "up to a constant; `priors.qpi`). The declared convention `{conv}` uses the training set's average mean."
    ),
}


def model_card(meta: dict) -> str:
    """The markdown model card of a bundle, from its metadata JSON."""
    r = Recipe.from_json(meta["recipe"])
    d, net, obj, opt = r.data, r.network, r.objective, r.optimization
    tr, q = meta["training"], meta.get("quality", {})
    conv = meta["convention"]["name"]
    lines = [
        f"# {r.name}",
        "",
        r.description,
        "",
        "```python",
        "import priors",
        (f'prior = priors.load("{r.name}")   # {type_name(obj)}' if not isinstance(d, FileData) else
         f'prior = priors.zoo.load_file("{r.name}.safetensors")   # {type_name(obj)}'),
        "```",
        "",
        "## Data",
        f"- {d.describe()}",
        f"- Normalisation: {_DATA_NOTES[d.normalization].format(conv=conv)}",
        "",
        "## Model",
        f"- `UNet(channels={tuple(net.channels)}, blocks={net.blocks}, conditional={net.conditional}, "
        f"extra_channels={obj.extra_channels})`"
        + (" (the denoiser) and the schedule network" if isinstance(obj, ConditionalDiffusion) else "")
        + f", {meta['parameters']:,} parameters, "
        f"stored as {meta['weights']['dtype']} ({meta['weights']['bytes'] / 1e6:.2f} MB).",
        f"- {_objective_note(obj)}",
        f"- Convention: `{conv}`; " + _range_note(obj),
        "",
        "## Training",
        f"- Command: `{tr['command']}` "
        + (f"(recipe `{r.name}` in `priors/zoo/catalog.py`)." if not isinstance(d, FileData)
           else f"(its recipe is recorded in `{r.name}.json`; `python -m solvers reconstruct ... --prior "
                f"{r.name}.safetensors` uses it)."),
        f"- Adam, lr {opt.lr:g} (warm-up {opt.warmup} steps, cosine decay to {opt.final_lr_fraction:g} lr), "
        f"batch {opt.batch_size}, gradient clip {opt.grad_clip}, seed {opt.seed}.",
        f"- Steps: {tr['steps']}"
        + ("" if tr["steps"] == tr["recipe_steps"] else f" (recipe: {tr['recipe_steps']})")
        + f"; wall time {tr['wall_time_s'] / 60:.1f} min on {tr['threads']} CPU thread(s)"
        + (f" in each of {tr['processes']} processes (torchrun)" if tr.get("processes", 1) > 1 else "")
        + f" of a shared 2-core machine (torch {tr['torch']}, {tr['date']}).",
        f"- Loss (mean of the last {FINAL_LOSS_WINDOW} steps): {tr['final_loss']:.4g} "
        f"(first {FINAL_LOSS_WINDOW} steps: {tr['initial_loss']:.4g}).",
        "",
        f"![training loss]({r.name}_loss.png)",
        "",
        "## Quality check (measured)",
    ]
    lines += _quality_lines(obj, q)
    return "\n".join(lines) + "\n"


def type_name(obj) -> str:
    return {
        Denoising: "NetworkPrior",
        PatchDenoising: "PatchPrior",
        IncrementalReconstruction: "DegradationAwarePrior",
        ConditionalDiffusion: "ConditionalDiffusionPrior",
    }[type(obj)]


def _objective_note(obj) -> str:
    if isinstance(obj, Denoising):
        told = "blind: told no sigma" if obj.conditioning.name == "BLIND" else "told sigma"
        return (
            f"Predicts {obj.target.value} ({told}); denoising score matching, log sigma ~ "
            f"U[log {obj.sigma_min:g}, log {obj.sigma_max:g}]."
        )
    if isinstance(obj, PatchDenoising):
        return (
            f"PaDIS patch network on {obj.patch} x {obj.patch} patches of a random non-overlapping grid shift, "
            f"with {obj.extra_channels} position channels (frequencies={obj.position_frequencies}); predicts "
            f"{obj.target.value}; patch DSM, log sigma ~ U[log {obj.sigma_min:g}, log {obj.sigma_max:g}]."
        )
    if isinstance(obj, ConditionalDiffusion):
        m, sched = obj.measurement, obj.schedule
        return (
            f"CVDM conditional prior p(x | y), schedule `{sched!r}`; the denoiser eps_hat(z_t, y, gamma) sees "
            f"z_t, the condition [y / {m.y_scale:g}, Tikhonov inverse (mu = {m.condition_regularization:g})] and "
            f"the gamma map. Loss: noise + L_beta + KL + {obj.alpha:g} (d^2 gamma / dt^2)^2, weights "
            f"{obj.weights}, boundary times 1 / {obj.steps} and 1 - 1 / {obj.steps}. Measurement: two-shot TIE, "
            f"wavelength {m.wavelength:g} um, pixel {m.pixel_size:g} um, defocus +-{m.defocus:g} um, phase up to "
            f"{m.phase_max:g} rad, intensity noise sigma_I ~ U({m.noise[0]:g}, {m.noise[1]:g}) (`{m!r}`)."
        )
    family = "Gaussian blur std" if obj.degradation.name == "BLUR" else "inpainting mask width"
    return (
        f"Phi(y_t, t) = y_t + UNet(y_t, exp(4 t)) predicts x0 (the UNet embeds log(sigma) / 4 = t); "
        f"{family} {obj.severity[0]:g} -> {obj.severity[1]:g} px linear in t; incremental-reconstruction "
        f"loss with dt = {obj.dt:g}, w = 1 / sigma_t^2."
    )


def _range_note(obj) -> str:
    if isinstance(obj, ConditionalDiffusion):
        return "the sampler is `solvers.CVDM` (Algorithm 2); images of the measurement's size only."
    if isinstance(obj, IncrementalReconstruction):
        return (
            f"t in [0, 1], noise sigma_t = {obj.sigma_0:g} ({obj.sigma_1:g} / {obj.sigma_0:g})^t "
            f"(`GeometricNoise({obj.sigma_0:g}, {obj.sigma_1:g})`); 64 x 64 images only (the process is fixed)."
        )
    lo, hi = obj.sigma_range
    return f"`sigma_range = ({lo:g}, {hi:g})` in these units."


def _quality_lines(obj, q: dict) -> list[str]:
    if not q:
        return ["(not measured)"]
    head = (
        f"{q['images']} held-out images (`Split.TEST`, {q['image_size']} x {q['image_size']}), fixed noise; "
        "PSNR in dB with each clean image's range as the peak (= PSNR in [0, 1] units)."
    )
    if "times" in q:
        sched = q["schedule"]
        return [
            f"{q['images']} held-out images (`Split.TEST`, {q['image_size']} x {q['image_size']}), measured at "
            f"sigma_I = {q['noise_sigma_I']:g}; PSNR in dB with each clean image's range as the peak.",
            "",
            f"- Schedule: lambda(y) over the pixels {sched['lambda_min']:.3g} .. {sched['lambda_max']:.3g} "
            f"(mean {sched['lambda_mean']:.3g}), rho(1) = {sched['rho_1']:.3g}; "
            f"gamma(t_0) >= {sched['gamma_t0_min']:.4g} "
            f"and gamma(t_1) <= {sched['gamma_t1_max']:.3g} for every pixel (the loss wants 1 and 0).",
            f"- The Tikhonov inverse the network is given: {q['tikhonov_psnr']:.2f} dB.",
            "",
            "| t | mean gamma | PSNR of the one-step x0_hat(z_t, y) |",
            "|---|---|---|",
            *[f"| {row['t']:g} | {row['mean_gamma']:.3g} | {row['output_psnr']:.2f} |" for row in q["times"]],
        ]
    if "severities" in q:
        rows = [
            "| t | PSNR of y_t | PSNR of Phi(y_t, t) | tau = t - dt | PSNR of A_tau y_t | PSNR of A_tau Phi(y_t, t) |",
            "|---|---|---|---|---|---|",
            *[
                f"| {row['t']:g} | {row['input_psnr']:.2f} | {row['output_psnr']:.2f} | {row['tau']:g} "
                f"| {row['input_psnr_at_tau']:.2f} | {row['output_psnr_at_tau']:.2f} |"
                for row in q["severities"]
            ],
        ]
        note = [
            "",
            "The IR loss fits A_tau Phi to A_tau x0, so the look-ahead columns are what the network is trained "
            "for (and what the Dirac sampler uses: y_{t - dt} is built from A_{t - dt} Phi). Phi itself is only "
            "weakly constrained where A_tau attenuates strongly: with a small dt its one-step estimate at large "
            "t can carry more fine detail than the MMSE estimate would (and a lower PSNR).",
        ]
        return [head, "", *rows, *(note if obj.dt < 1 else [])]
    rows = [
        "| sigma | noisy PSNR | denoised PSNR | denoised PSNR on training images |",
        "|---|---|---|---|",
        *[
            f"| {row['sigma']:g} | {row['input_psnr']:.2f} | {row['output_psnr']:.2f} "
            f"| {row['train_output_psnr']:.2f} |"
            for row in q["sigmas"]
        ],
    ]
    return [head, "", *rows]


def psnr_gain(q: dict) -> float:
    """The smallest PSNR gain (dB) over the rows of a quality record (for quick summaries)."""
    rows = q.get("sigmas") or q.get("severities") or []
    return min((row["output_psnr"] - row["input_psnr"] for row in rows), default=math.nan)
