"""A small, generic, resumable training loop: a model, a loss closure and a batch source.

    result = train(model, loss, batches, steps=2000, seed=0, checkpoint_path="run.pt", checkpoint_every=200)
    result = train(model, loss, batches, steps=4000, seed=0, resume_from="run.pt")   # continues the run

The loss is any callable `loss(model, batch, generator) -> scalar tensor` (e.g. `DSMLoss`, or a patch
or degradation loss written elsewhere). All randomness of a run flows through one `torch.Generator`
seeded by `seed` and stored in every checkpoint together with the model, optimizer (and scheduler)
states and the loss history, so a resumed run continues exactly as the uninterrupted one would.
Checkpoints are plain dicts of tensors and numbers, read back with `torch.load(weights_only=True)`.

On a small shared CPU, `torch.set_num_threads(1)` is often several times faster than the default for
small networks: idle intra-op threads spin while other processes hold the cores.

Several processes (torchrun) train one model together with `distributed=` (see
`priors.training.distributed`): the same loss curve as one process with the same global batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .distributed import Distributed

CHECKPOINT_FORMAT = "priors.training.checkpoint/1"

Loss = Callable[[nn.Module, object, torch.Generator], torch.Tensor]


@dataclass
class TrainResult:
    """What a run returns: the loss of every step since the run began (resumed steps included),
    the number of steps done, and the last checkpoint written (or None)."""

    history: list[float] = field(default_factory=list)
    step: int = 0
    checkpoint: Path | None = None


def random_batches(data: torch.Tensor, batch_size: int) -> Callable[[torch.Generator], torch.Tensor]:
    """A batch source drawing `batch_size` items of `data` (N, ...) uniformly with replacement from the
    run's generator (so resumed runs draw the same batches)."""
    if data.ndim < 1 or data.shape[0] < 1:
        raise ValueError(f"data must have a leading item axis with at least one item, got {tuple(data.shape)}")

    def draw(generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(data.shape[0], (batch_size,), generator=generator, device=generator.device)
        return data[idx.to(data.device)]

    return draw


class _Batches:
    """Batches from a callable source(generator) or from a re-iterable (cycled; skipped ahead on resume)."""

    def __init__(self, source, generator: torch.Generator, start: int):
        self.generator = generator
        if callable(source) and not isinstance(source, Iterable):
            self.draw = lambda: source(generator)
            return
        if not isinstance(source, Iterable):
            raise TypeError(
                f"data must be a callable(generator) -> batch or an iterable of batches, got {type(source).__name__}"
            )
        self.source, self.iterator = source, iter(source)
        self.draw = self._next
        for _ in range(start):
            self._next()

    def _next(self):
        try:
            return next(self.iterator)
        except StopIteration:
            self.iterator = iter(self.source)
            try:
                return next(self.iterator)
            except StopIteration:
                raise ValueError("the data iterable is empty") from None


def save_checkpoint(path, *, model, optimizer, generator, step, history, seed, scheduler=None) -> Path:
    """Write a checkpoint atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "seed": int(seed),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "generator": generator.get_state(),
        "history": torch.tensor(history, dtype=torch.float64),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path) -> dict:
    """Read a checkpoint with `torch.load(weights_only=True)`; a clear error for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"cannot read checkpoint {path}: {err.__class__.__name__}: {err}. "
            "The file is corrupt, truncated, or not a checkpoint written by priors.training."
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a priors.training checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return state


def train(
    model: nn.Module,
    loss: Loss,
    data,
    *,
    steps: int,
    seed: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    scheduler=None,
    grad_clip: float | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    resume_from: str | os.PathLike | None = None,
    progress: bool = True,
    callback: Callable[[int, float], None] | None = None,
    device: torch.device | str | None = None,
    distributed: Distributed | None = None,
) -> TrainResult:
    """Run `steps` optimisation steps in total (a resumed run does only the remaining ones).

    Args:
        model: the network (trained in place).
        loss: loss(model, batch, generator) -> scalar tensor.
        data: a callable(generator) -> batch (e.g. `random_batches`) or a re-iterable of batches
            (cycled over epochs; on resume the consumed batches are skipped, so it must be deterministic).
        steps: total number of steps of the run.
        seed: seeds the run's generator (data draws and loss noise).
        optimizer: an optimizer over model's parameters (default Adam(lr)).
        scheduler: optional learning-rate scheduler, stepped after every optimizer step.
        grad_clip: clip the global gradient norm to this value.
        checkpoint_path: where checkpoints go; written every `checkpoint_every` steps (0: only at the end).
        resume_from: a checkpoint to continue from (its model, optimizer, scheduler, generator, history).
        progress: show a tqdm progress bar.
        callback: called as callback(step, loss) after every step (on rank 0 only in a distributed run).
        device: the generator's device (default: that of the model's first parameter).
        distributed: this process's place in a data-parallel run (`distributed.from_environment()`):
            each rank runs the network on its share of every global batch, gradients are summed over
            ranks, and only rank 0 writes checkpoints and shows progress; the history (the global loss)
            is the same on every rank and equals the single-process one up to rounding.

    Raises FloatingPointError, naming the step, when the loss is not finite.
    """
    params = list(model.parameters())
    if device is None:
        device = params[0].device if params else torch.device("cpu")
    optimizer = optimizer if optimizer is not None else torch.optim.Adam(params, lr=lr)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    history: list[float] = []
    start = 0
    main = distributed is None or distributed.is_main
    if resume_from is not None:
        state = load_checkpoint(resume_from) if main else None
        if distributed is not None:
            state = distributed.broadcast(state)  # rank 0 reads; every rank resumes from the same state
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as err:
            raise ValueError(f"checkpoint {resume_from} does not fit this model: {err}") from None
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        history = [float(v) for v in state["history"]]
        start = int(state["step"])
        if int(state["seed"]) != int(seed):
            raise ValueError(f"checkpoint {resume_from} was written by a run with seed {state['seed']}, not {seed}")
    batches = _Batches(data, generator, start)
    result = TrainResult(history=history, step=start)
    net, scale = model, 1
    if distributed is not None and distributed.world_size > 1:
        net, scale = distributed.wrap(model), distributed.world_size

    written = [-1]

    def checkpoint(step):
        result.checkpoint = save_checkpoint(
            checkpoint_path,
            model=model,
            optimizer=optimizer,
            generator=generator,
            step=step,
            history=history,
            seed=seed,
            scheduler=scheduler,
        )
        written[0] = step

    from tqdm.auto import tqdm

    model.train()
    show = progress and main
    bar = tqdm(range(start, steps), initial=start, total=steps, disable=not show, desc="train", leave=False)
    for step in bar:
        value = loss(net, batches.draw(), generator)
        if not torch.isfinite(value):
            raise FloatingPointError(
                f"the loss is {float(value.detach())} at step {step}; lower the learning rate or check the data"
            )
        optimizer.zero_grad(set_to_none=True)
        (value * scale if scale != 1 else value).backward()  # DDP averages over ranks: times W sums the shares
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        history.append(float(value.detach()))
        result.step = step + 1
        if show:
            bar.set_postfix(loss=f"{history[-1]:.4g}")
        if callback is not None and main:
            callback(step, history[-1])
        if main and checkpoint_path is not None and checkpoint_every and (step + 1) % checkpoint_every == 0:
            checkpoint(step + 1)
    bar.close()
    if main and checkpoint_path is not None and written[0] != result.step:
        checkpoint(result.step)
    return result


def smoothed(history: list[float], window: int = 20) -> list[float]:
    """Running mean of a loss history (for reading noisy DSM losses)."""
    out, acc = [], 0.0
    for i, v in enumerate(history):
        acc += v
        if i >= window:
            acc -= history[i - window]
        out.append(acc / min(i + 1, window))
    return out
