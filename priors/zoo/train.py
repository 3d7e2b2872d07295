"""Training a recipe into a bundle: the network trained from scratch (or resumed), then its bundle written
(`priors.zoo.bundle`), its quality measured (`priors.zoo.checks`) and its card drawn (`priors.zoo.cards`)."""

from __future__ import annotations

import datetime
import json
import os
import time
from pathlib import Path

import torch

from ..training import smoothed, train
from ..training.distributed import Distributed
from .bundle import FINAL_LOSS_WINDOW, BundlePaths, load_file, save_bundle, write_json
from .cards import model_card, plot_loss
from .catalog import recipe
from .checks import measure_quality
from .images import batch_source, training_images
from .recipes import Recipe


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
            write_json(paths.clock, {"wall_time_s": earlier + time.perf_counter() - start, "step": step + 1})

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
    write_json(paths.clock, {"wall_time_s": wall, "step": result.step})
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
    write_json(paths.metadata, meta)
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
