"""Data-parallel training over processes (torchrun, DistributedDataParallel) that equals one process.

    torchrun --nproc_per_node 2 -m priors train NAME                       # 2 processes on this machine
    torchrun --nnodes 2 --nproc_per_node 4 --rdzv-backend c10d \\
             --rdzv-endpoint HOST:29500 --rdzv-id RUN -m priors train NAME  # 8 processes on 2 machines

How the work is shared. Every process seeds its generator with the run's seed (not with its rank), so
every process draws the same global batch and the same noise (sigmas, eps, grid shifts, severities) as
one process would: drawing is cheap, the network is not. The loss calls the network through
`ShardedModel`, which runs it only on this rank's contiguous share of the rows of every batch-sized
argument (rows [N r / W, N (r + 1) / W), near enough: `shard_bounds`) and gathers the other ranks'
outputs without gradient, so every rank evaluates the exact global loss (the logged loss is the global
mean, the same on every rank). Its backward gives the gradient of this rank's share alone; DDP's
all-reduce averages over the W ranks, and the loss is scaled by W before backward, so the sum of the
shares, the full-batch gradient, reaches every rank. The optimizer then takes the same step everywhere.
Only rank 0 writes checkpoints, weights and cards.

So W processes with global batch B give the loss curve of one process with batch B, up to floating
point (the gradient is summed in a different order). The loss must draw its randomness before it calls
the model, call it once on batch-aligned tensors, and be a mean of per-row terms: true of `DSMLoss`,
`PatchDSMLoss` (rows are patches) and `IncrementalReconstructionLoss`.

Backends: gloo on CPU; nccl when CUDA is available (each rank's network on cuda:LOCAL_RANK; the data and
the loss stay on the CPU, so the random stream is the single-process one).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Distributed:
    """This process's place in a data-parallel run (an initialised default process group)."""

    rank: int
    world_size: int
    device: torch.device = torch.device("cpu")

    def __post_init__(self):
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must lie in [0, world_size={self.world_size}), got {self.rank}")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files and shows progress."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def broadcast(self, obj):
        """rank 0's `obj` on every rank (pickled)."""
        if self.world_size == 1:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def wrap(self, model: nn.Module) -> nn.Module:
        """`model` on this rank's device inside DDP, called through `ShardedModel`."""
        model.to(self.device)
        ids = [self.device.index] if self.device.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        return ShardedModel(ddp, self)


def from_environment(backend: str | None = None) -> Distributed | None:
    """The run torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
    MASTER_PORT), with the default process group initialised; None outside torchrun (WORLD_SIZE unset
    or 1). `backend`: "gloo" or "nccl" (default: nccl when CUDA is available, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world)
    return Distributed(rank, world, device)


@contextmanager
def distributed_run(backend: str | None = None):
    """`from_environment(backend)` for the duration of a with-block, the process group destroyed after."""
    distributed = from_environment(backend)
    try:
        yield distributed
    finally:
        if distributed is not None and dist.is_initialized():
            dist.destroy_process_group()


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, stop) of rank's contiguous share of n rows: the first n % W ranks take one row more."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class ShardedModel(nn.Module):
    """model(*args) on the full batch, computed by W ranks together: this rank runs the (DDP) model on its
    rows of every argument whose first axis has the batch size N (that of the first argument), the outputs
    of all ranks are gathered, and the result has the gradient of this rank's rows only (see the module
    docstring for why the loss is then scaled by W)."""

    def __init__(self, ddp: nn.Module, distributed: Distributed):
        super().__init__()
        self.ddp, self.distributed = ddp, distributed

    def forward(self, *args, **kwargs):
        d = self.distributed
        first = args[0]
        n, home = first.shape[0], first.device
        if n < d.world_size:
            raise ValueError(
                f"a global batch of {n} rows cannot be shared by {d.world_size} processes; use a batch of at "
                f"least {d.world_size}"
            )
        start, stop = shard_bounds(n, d.rank, d.world_size)

        def local(v):
            if isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == n:
                return v[start:stop].to(d.device)
            return v.to(d.device) if isinstance(v, torch.Tensor) else v

        mine = self.ddp(*(local(a) for a in args), **{k: local(v) for k, v in kwargs.items()})
        if not isinstance(mine, torch.Tensor):
            raise TypeError(f"ShardedModel shares models that return one tensor, got {type(mine).__name__}")
        rows = [b - a for a, b in (shard_bounds(n, r, d.world_size) for r in range(d.world_size))]
        padded = mine.new_zeros((max(rows), *mine.shape[1:]))
        padded[: mine.shape[0]] = mine.detach()
        gathered = [torch.empty_like(padded) for _ in range(d.world_size)]
        dist.all_gather(gathered, padded)
        parts = [mine if r == d.rank else gathered[r][: rows[r]] for r in range(d.world_size)]
        return torch.cat(parts).to(home)
