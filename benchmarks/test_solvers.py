"""Time per step of our DDRM and DPS against deepinv's DDRM and DPS, with the same denoiser on the same
problem: 64 x 64 single-channel inpainting (half the pixels observed), batch 1, float32, one CPU thread.

The denoiser is a small noise-conditional U-Net from `priors.nets` (channels 32/64/64, one block per level)
with fixed random weights (seeded; its zero-initialised output layer is re-drawn so that it outputs
something), wrapped once as our `NetworkPrior` and, through `priors.interop.deepinv.to_deepinv`, as a
deepinv `Denoiser`: both libraries run exactly the same network code. The denoiser alone is timed in the
same run (forward without grad; forward + backward through the residual as in DPS), so that

    overhead = (solver time per step - denoiser time per step) / denoiser time per step

is computable. Subtracting two noisy times of ~20 ms resolves an overhead of a few percent poorly, so
every case also runs with a near-free network (`ScaledIdentity`, f(x, sigma) = c x): there the time per
step *is* the solver's own overhead (plus the near-free call), measured directly in microseconds, and

    overhead = (solver step with ScaledIdentity - ScaledIdentity call) / U-Net denoiser time per step.

The goals are an overhead under 10% for our DDRM (one forward per step) and DPS (one forward
and one backward per step), and our DPS at least 1.5x faster per step than deepinv's. That goal assumed
deepinv evaluates the denoiser twice per step (once for the unconditional score, once more under autograd
for the DPS term); deepinv 0.5 reuses one forward pass for both, so the two are bound by the same
forward + backward and run at the same speed (see test_dps_deepinv).

Times are process CPU time (`time.process_time`, one thread), which other load on a shared machine
disturbs far less than wall-clock time. A step is one denoiser evaluation (NFE), counted by a forward hook
on the network during the warm-up call: deepinv's ancestral DPS solver skips the denoiser at its last
time step t = 0, so it is given STEPS + 1 time steps to make STEPS evaluations, like ours.

    OMP_NUM_THREADS=1 python -m pytest benchmarks/test_solvers.py --benchmark-only -s

prints a table of per-step times and the ratios at the end (from the minimum over rounds, the least
disturbed by other load on the machine, and from the median).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import linops
from priors import Conditioning, NetworkPrior, Prediction
from priors.nets.unet import UNet
from solvers.ddrm import DDRM
from solvers.dps import DPS
from solvers.schedules import DDGMUnconditionalSchedule, Geometric

dinv = pytest.importorskip("deepinv")
from priors.interop.deepinv import to_deepinv as denoiser_for_deepinv  # noqa: E402

SHAPE = (1, 64, 64)
STEPS = 10
ROUNDS = 10
SIGMA_Y = 0.01
TIMES: dict[tuple[str, str], tuple[float, float]] = {}  # (network, case) -> (min, median) s per step

pytestmark = pytest.mark.benchmark(timer=time.process_time, group="solver step (64x64 inpainting, 1 thread, CPU time)")


@pytest.fixture(scope="module", autouse=True)
def _one_thread_and_report():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    _report()


class ScaledIdentity(torch.nn.Module):
    """f(x, sigma) = c x: a network that costs next to nothing, so a solver step with it is solver overhead."""

    def __init__(self):
        super().__init__()
        self.c = torch.nn.Parameter(torch.tensor(0.1), requires_grad=False)

    def forward(self, x, sigma):
        return self.c * x


def _unet():
    net = UNet(1, channels=(32, 64, 64), blocks=1, conditional=True, seed=0)
    with torch.no_grad():  # the output layer starts at zero; give it seeded random weights
        g = torch.Generator().manual_seed(1)
        net.head.weight.copy_(0.05 * torch.randn(net.head.weight.shape, generator=g))
    return net.eval().requires_grad_(False)


@pytest.fixture(scope="module", params=["unet", "scaled-identity"])
def problem(request):
    net = _unet() if request.param == "unet" else ScaledIdentity()
    prior = NetworkPrior(net, prediction=Prediction.EPS, conditioning=Conditioning.NOISE_LEVEL)
    g = torch.Generator().manual_seed(2)
    mask = torch.rand(SHAPE, generator=g) > 0.5
    x = torch.rand(1, *SHAPE, generator=g)
    A = linops.Mask(mask)
    y = A @ x + SIGMA_Y * torch.randn(1, *SHAPE, generator=g)
    physics = dinv.physics.Inpainting(
        img_size=SHAPE, mask=mask.float(), noise_model=dinv.physics.GaussianNoise(SIGMA_Y)
    )
    denoiser = denoiser_for_deepinv(prior)
    return dict(network=request.param, net=net, prior=prior, denoiser=denoiser, A=A, y=y, physics=physics, x=x)


def _count_evaluations(net, fn) -> int:
    """Run fn once (the warm-up) and count the network's forward calls."""
    calls = []
    handle = net.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        fn()
    finally:
        handle.remove()
    return len(calls)


def _run(benchmark, name, fn, problem, steps):
    """Time fn (`ROUNDS` rounds after a counted warm-up) and record the time per denoiser evaluation."""
    evaluations = _count_evaluations(problem["net"], fn)
    assert evaluations == steps, f"{name}: {evaluations} denoiser evaluations, expected {steps}"
    benchmark.extra_info["denoiser_evaluations_per_call"] = evaluations
    out = benchmark.pedantic(fn, rounds=ROUNDS, iterations=1)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:  # None under --benchmark-disable
        TIMES[problem["network"], name] = (stats.stats.min / steps, stats.stats.median / steps)
    return out


def test_denoiser_forward(benchmark, problem):
    prior, x = problem["prior"], problem["x"]

    def forward():
        with torch.no_grad():
            return prior.denoise(x, 0.5)

    assert _run(benchmark, "denoiser forward", forward, problem, 1).shape == x.shape


def test_denoiser_forward_backward(benchmark, problem):
    """What DPS needs per step: x0 = D(x, sigma) under autograd, then grad_x ||A x0 - y||^2."""
    prior, x, A, y = problem["prior"], problem["x"], problem["A"], problem["y"]

    def forward_backward():
        xg = x.detach().requires_grad_(True)
        x0 = prior.denoise(xg, 0.5)
        (grad,) = torch.autograd.grad((A @ x0 - y).pow(2).sum(), xg)
        return grad

    assert _run(benchmark, "denoiser forward+backward", forward_backward, problem, 1).shape == x.shape


def test_ddrm_ours(benchmark, problem):
    solver = DDRM(Geometric(1.0, 0.01, STEPS), sigma_y=SIGMA_Y, eta=0.85, eta_b=1.0)
    p = problem

    def run():
        return solver(p["y"], p["A"], p["prior"], generator=torch.Generator().manual_seed(0), progress=False).x

    out = _run(benchmark, "DDRM ours", run, p, STEPS)
    assert bool(torch.isfinite(out).all())


def test_ddrm_deepinv(benchmark, problem):
    sigmas = np.geomspace(1.0, 0.01, STEPS)  # as ours: no sigma = 0 call, one denoiser call per level
    model = dinv.sampling.DDRM(problem["denoiser"], sigmas=sigmas, eta=0.85, etab=1.0)

    def run():
        return model(problem["y"], problem["physics"], seed=1)

    out = _run(benchmark, "DDRM deepinv", run, problem, STEPS)
    assert bool(torch.isfinite(out).all())


def test_dps_ours(benchmark, problem):
    solver = DPS(DDGMUnconditionalSchedule.from_endpoints(1.0, 0.5, STEPS), zeta=1.0, rescaled=False)
    p = problem

    def run():
        return solver(p["y"], p["A"], p["prior"], generator=torch.Generator().manual_seed(0), progress=False).x

    out = _run(benchmark, "DPS ours", run, p, STEPS)
    assert bool(torch.isfinite(out).all())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64-state", "float32-state"])
def test_dps_deepinv(benchmark, problem, dtype):
    """deepinv's DPS (VP SDE, DDPM solver), without its final extra denoising call. deepinv 0.5 evaluates the
    denoiser once per step (the unconditional score reuses the output of the DPS term's forward pass) and
    not at all at t = 0, hence STEPS + 1 time steps. Its default keeps the sampler state in float64 (the
    denoiser always runs in float32)."""
    rng = torch.Generator().manual_seed(1)
    model = dinv.sampling.DPS(problem["denoiser"], num_steps=STEPS + 1, dtype=dtype, weight=1.0, rng=rng)

    def run():
        return model(problem["y"], problem["physics"], seed=1, denoise_output=False)

    name = f"DPS deepinv ({'float64' if dtype == torch.float64 else 'float32'} state)"
    out = _run(benchmark, name, run, problem, STEPS)
    assert out.shape == problem["x"].shape


def _report():
    if not TIMES:
        return
    lines = ["", f"per-step times, {STEPS} steps per call, {ROUNDS} rounds, CPU time: min / median"]
    networks = sorted({network for network, _ in TIMES})
    for network in networks:
        unit, scale = ("ms", 1e3) if network == "unet" else ("us", 1e6)
        lines.append(f"  network {network} ({unit} per step):")
        for (net, name), (lo, med) in TIMES.items():
            if net == network:
                lines.append(f"    {name:32s} {scale * lo:9.2f} / {scale * med:9.2f}")

    def t(network, name, i):
        return TIMES.get((network, name), (None, None))[i]

    def ratio(network, a, b):
        values = [(t(network, a, i), t(network, b, i)) for i in range(2)]
        return None if None in values[0] else tuple(x / y for x, y in values)

    rows = [
        ("DDRM ours / denoiser forward", "DDRM ours", "denoiser forward"),
        ("DDRM deepinv / denoiser forward", "DDRM deepinv", "denoiser forward"),
        ("DPS ours / denoiser forward+backward", "DPS ours", "denoiser forward+backward"),
        ("DPS deepinv f64 / denoiser fwd+bwd", "DPS deepinv (float64 state)", "denoiser forward+backward"),
        ("DPS deepinv f64 / DPS ours", "DPS deepinv (float64 state)", "DPS ours"),
        ("DPS deepinv f32 / DPS ours", "DPS deepinv (float32 state)", "DPS ours"),
        ("DDRM deepinv / DDRM ours", "DDRM deepinv", "DDRM ours"),
    ]
    for network in networks:
        lines.append(f"  ratios with network {network} (min / median):")
        for label, a, b in rows:
            r = ratio(network, a, b)
            if r is not None:
                lines.append(f"    {label:40s} {r[0]:7.3f} / {r[1]:7.3f}")
    overheads = [
        ("DDRM ours", "denoiser forward"),
        ("DDRM deepinv", "denoiser forward"),
        ("DPS ours", "denoiser forward+backward"),
        ("DPS deepinv (float64 state)", "denoiser forward+backward"),
        ("DPS deepinv (float32 state)", "denoiser forward+backward"),
    ]
    if {"unet", "scaled-identity"} <= set(networks):
        lines.append(
            "  solver overhead per step = (step - call) with scaled-identity, relative to the U-Net call (min):"
        )
        for solver, call in overheads:
            values = [t("scaled-identity", solver, 0), t("scaled-identity", call, 0), t("unet", call, 0)]
            if None not in values:
                own = values[0] - values[1]
                lines.append(
                    f"    {solver:32s} {1e6 * own:8.1f} us = {100 * own / values[2]:5.2f}% of the U-Net {call}"
                )
    print("\n".join(lines))
