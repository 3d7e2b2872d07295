"""The preamble every solver shares, written once: `start(...)` checks the problem (`solvers.problem`:
y against A and the prior, the data's units), reads the noise levels of the schedule, checks them against
the range the prior was trained for (`priors.SigmaRanged`), opens the run's `Tracker` and hands back the
prior with its calls counted.

    run = start("DDRM", y, A, prior, needs=("denoise",), schedule=self.schedule, callback=callback,
                progress=progress, x_true=x_true, convention=convention)
    y, denoise = run.y, run.prior.denoise            # y in the prior's units; calls are counted
    for n, sigma in enumerate(run.sigmas):
        ...                                          # the algorithm box
        run.track.step(n, sigma, x)
    return run.track.result(x)                       # x back in the data's units

A solver without a schedule (Dirac's severities, the classical iterations) passes `steps=` instead: the
number of records its trace will hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from priors.protocol import SigmaRanged

from .checks import check_int
from .problem import Problem, check_problem
from .tracking import StepRecord, Tracker

__all__ = ["Run", "start", "check_sigma_range"]


@dataclass(frozen=True)
class Run:
    """A started run: the checked problem, the schedule's noise levels (empty without a schedule), the
    tracker, and the prior with its denoise / score / eps / call counted in the trace (None without one)."""

    problem: Problem
    sigmas: list[float]
    track: Tracker
    prior: object | None

    @property
    def y(self) -> torch.Tensor:
        """The measurement in the prior's units (what the loop iterates against)."""
        return self.problem.y

    @property
    def x_shape(self) -> tuple[int, ...]:
        """(B, *A.in_shape): the shape of the iterate."""
        return self.problem.x_shape

    @property
    def batch(self) -> int:
        """B, the number of measurements solved at once (y has shape (B, *A.out_shape))."""
        return self.problem.batch

    def zeros(self) -> torch.Tensor:
        """A real zero image batch of the iterate's shape, in A's precision, on A's device."""
        return self.problem.zeros()


def check_sigma_range(prior, sigmas: list[float]) -> None:
    """Raise (the prior's ValueError) when the positive noise levels of a schedule leave the range the prior
    was trained for; a prior that declares no range (not `priors.SigmaRanged`) is not checked. A level of
    0 (DDGM's deterministic end) asks nothing of the prior."""
    positive = [s for s in sigmas if s > 0]
    if positive and isinstance(prior, SigmaRanged):
        prior.check_sigma(max(positive), min(positive))


def start(
    solver: str,
    y,
    A,
    prior=None,
    *,
    needs: tuple[str, ...] = (),
    schedule=None,
    steps: int | None = None,
    callback: Callable[[StepRecord], None] | None = None,
    progress: bool = True,
    x_true=None,
    convention=None,
) -> Run:
    """Check the problem, read and range-check the schedule, open the tracker (see the module docstring).

    Args:
        solver: the name errors, the progress bar and the trace's records carry.
        y, A, prior, x_true, convention: as the solver was called (checked by `check_problem`).
        needs: the prior methods the loop calls (a missing prior or method raises TypeError).
        schedule: an object whose `sigmas()` gives the noise levels, largest first; the trace then holds
            one record per level. Give it, or `steps`, not both.
        steps: the number of records the trace will hold, for a solver without a noise schedule.
        callback, progress: as the solver was called (passed to the `Tracker`).
    """
    if (schedule is None) == (steps is None):
        raise TypeError(
            f"{solver}: start(...) needs exactly one of schedule= (a noise schedule) or steps= (a record count), "
            f"got schedule={schedule!r}, steps={steps!r}"
        )
    if schedule is not None and not callable(getattr(schedule, "sigmas", None)):
        raise TypeError(f"{solver}: schedule must have a sigmas() method (a solvers.schedules.Schedule), "
                        f"got {schedule!r}")
    if steps is not None:
        check_int(solver, "steps", steps, 0)
    problem = check_problem(solver, y, A, prior, needs=needs, convention=convention, x_true=x_true)
    sigmas = [] if schedule is None else schedule.sigmas().tolist()
    check_sigma_range(problem.prior, sigmas)
    track = problem.track(len(sigmas) if schedule is not None else steps, callback=callback, progress=progress)
    watched = None if problem.prior is None else track.watch(problem.prior)
    return Run(problem, sigmas, track, watched)
