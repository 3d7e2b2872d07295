"""Data-parallel training (priors/training/distributed.py): 2 CPU processes (gloo on loopback) sharing
each global batch give the loss curve and the weights of one process with the same batch, for the
three losses of the zoo (whole-image DSM, patch DSM, Dirac's incremental reconstruction), and resume
from a checkpoint that only rank 0 reads. `torchrun ... -m priors train` end to end is marked slow."""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import linops
from priors.dirac import DegradationProcess, GeometricNoise, IncrementalReconstructionLoss
from priors.nets import UNet, position_channel_count
from priors.patch import PatchDSMLoss
from priors.training import DSMLoss, load_checkpoint, random_batches, train
from priors.training.distributed import Distributed, ShardedModel, shard_bounds
from priors.zoo.recipes import SeverityConditioned

STEPS = 4
WORLD = 2
LOSSES = ("dsm", "patch", "ir")


def case(name, optimizer="sgd"):
    """(model, loss, batch source, optimizer) of a tiny run; the global batch of 5 is shared 3 + 2."""
    images = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    if name == "dsm":
        model, loss = UNet(1, channels=(8, 8), seed=0), DSMLoss(0.05, 5.0)
    elif name == "patch":
        model = UNet(1, channels=(8, 8), extra_channels=position_channel_count(0), seed=0)
        loss = PatchDSMLoss(4, 0.05, 5.0)
    else:
        family = linops.GaussianBlurFamily((1, 8, 8), linops.LinearRamp(0.0, 1.5))
        ir = IncrementalReconstructionLoss(DegradationProcess(family, GeometricNoise(0.01, 0.05)), dt=0.1)
        model = UNet(1, channels=(8, 8), seed=0)

        def loss(m, x0, g):
            return ir(SeverityConditioned(m), x0, g)

    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=ADAM_LR)
    return model, loss, random_batches(images, 5), opt


ADAM_LR = 3e-3


def run(name, distributed=None, steps=STEPS, checkpoint=None, resume=None, optimizer="sgd"):
    model, loss, data, opt = case(name, optimizer)
    result = train(model, loss, data, steps=steps, seed=7, optimizer=opt, grad_clip=1.0, progress=False,
                   distributed=distributed, checkpoint_path=checkpoint, resume_from=resume)
    return result.history, {k: v.detach().clone() for k, v in model.state_dict().items()}


def ranked_runs(rank, port, out):
    """This rank's share of the runs: every loss with SGD, and Adam resumed from a 2-step checkpoint."""
    out = Path(out)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=120))
    try:
        d = Distributed(rank, WORLD)
        results = {name: run(name, d, checkpoint=out / f"{name}-rank{rank}.pt") for name in LOSSES}
        results["resumed"] = run("dsm", d, resume=out / "two-steps.pt", optimizer="adam")
    finally:
        dist.destroy_process_group()
    torch.save(results, out / f"rank{rank}.pt")


def _child(rank, port, out):
    torch.set_num_threads(1)
    ranked_runs(rank, port, out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_same_run(a, b, what, weights_atol=1e-6):
    (history_a, weights_a), (history_b, weights_b) = a, b
    assert len(history_a) == len(history_b) == STEPS
    torch.testing.assert_close(torch.tensor(history_a), torch.tensor(history_b), rtol=1e-6, atol=0, msg=what)
    for k in weights_a:
        torch.testing.assert_close(weights_a[k], weights_b[k], rtol=0, atol=weights_atol, msg=f"{what}: {k}")


@pytest.mark.usefixtures("one_thread")
def test_two_processes_train_like_one(tmp_path):
    """Rank 1 in a spawned process, rank 0 in this one (one interpreter start instead of two). SGD runs
    agree to 1e-6 in loss and weights. With Adam the loss agrees to 1e-6 too, but a weight whose exact
    gradient is zero (a conv bias before a GroupNorm) gets rounding noise that Adam normalises into
    steps of up to lr: its weights agree to within a few lr."""
    port = free_port()
    child = mp.get_context("spawn").Process(target=_child, args=(1, port, str(tmp_path)))
    child.start()
    try:
        single = {name: run(name) for name in LOSSES}
        single["adam"] = run("dsm", optimizer="adam")
        run("dsm", steps=2, checkpoint=tmp_path / "two-steps.pt", optimizer="adam")
        ranked_runs(0, port, tmp_path)
    finally:
        child.join(timeout=180)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0, f"rank 1 failed (exit code {child.exitcode})"
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for name in LOSSES:
        assert_same_run(ranks[0][name], single[name], f"{name}: 2 processes vs one")
        assert ranks[0][name][0] == ranks[1][name][0], "every rank logs the same global loss"
        assert (tmp_path / f"{name}-rank0.pt").is_file() and not (tmp_path / f"{name}-rank1.pt").exists()
        assert load_checkpoint(tmp_path / f"{name}-rank0.pt")["step"] == STEPS
    assert_same_run(ranks[1]["resumed"], single["adam"], "Adam, resumed on 2 processes from a 1-process checkpoint",
                    weights_atol=3 * ADAM_LR)


def test_shard_bounds_cover_the_batch_once():
    for n in range(2, 12):
        for world in range(1, n + 1):
            bounds = [shard_bounds(n, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1


def test_a_batch_smaller_than_the_world_is_refused():
    sharded = ShardedModel(torch.nn.Identity(), Distributed(0, 4))
    with pytest.raises(ValueError, match="a global batch of 3 rows cannot be shared by 4 processes"):
        sharded(torch.zeros(3, 1))


@pytest.mark.slow
def test_torchrun_trains_a_zoo_recipe_like_one_process(tmp_path):
    """`torchrun --standalone --nproc_per_node 2 -m priors train NAME` against `python -m priors train NAME`:
    the same checkpointed loss history (float64) and close weights; one bundle, written by rank 0."""
    name, steps = "padis-patch-tiny", 3  # Adam, lr 2e-3
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    common = ["-m", "priors", "train", name, "--steps", str(steps), "--no-progress"]
    subprocess.run([sys.executable, *common, "--out", str(tmp_path / "one")], check=True, env=env, timeout=600)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    subprocess.run([*torchrun, *common, "--out", str(tmp_path / "two")], check=True, env=env, timeout=600)
    one, two = (load_checkpoint(tmp_path / d / f"{name}.ckpt.pt") for d in ("one", "two"))
    torch.testing.assert_close(two["history"], one["history"], rtol=1e-6, atol=0)
    for k in one["model"]:  # Adam: rounding on zero-gradient weights becomes steps of up to lr (see above)
        torch.testing.assert_close(two["model"][k], one["model"][k], rtol=0, atol=3 * 2e-3)
    card = json.loads((tmp_path / "two" / f"{name}.json").read_text())
    assert card["training"]["processes"] == 2 and card["training"]["steps"] == steps
