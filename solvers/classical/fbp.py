"""Filtered backprojection as a solver: the classical one-shot inverse of the Radon transform (parallel beam,
or a full-turn fan beam rebinned to parallel beam)."""

from __future__ import annotations

from dataclasses import dataclass

from linops import FanBeamRadon, FilterWindow, Radon, fbp

from ..start import start
from ..tracking import Result


@dataclass(frozen=True)
class FilteredBackprojection:
    """x = FBP(y) = (d / p^2) A^T [dtheta_i (h_W * y_i)]  (Kak & Slaney ch. 3; `linops.fbp`):

    each view y_i is filtered along the detector by the ramp |nu| times the apodization window W
    (`FilterWindow`), weighted by the angular width dtheta_i it stands for, and backprojected by the
    operator's own transpose (d: detector spacing, p: pixel size). For `linops.Radon` (parallel beam) and
    `linops.FanBeamRadon` over the full turn (rebinned first, `linops.FanToParallel`); other operators
    raise TypeError. One step in the trace; no prior, no randomness.
    """

    window: FilterWindow = FilterWindow.RAM_LAK

    def __post_init__(self):
        if not isinstance(self.window, FilterWindow):
            raise TypeError(f"FilteredBackprojection: window must be a FilterWindow, got {self.window!r}")

    def __call__(self, y, A, prior=None, *, generator=None, callback=None, progress=True, x_true=None) -> Result:
        if not isinstance(A, (Radon, FanBeamRadon)):
            raise TypeError(
                f"FilteredBackprojection inverts the parallel-beam linops.Radon and the full-turn FanBeamRadon, "
                f"got {A!r}; for other operators (compositions, deepinv physics) use CGLSReconstruction, "
                "LSQRReconstruction or TVReconstruction."
            )
        run = start("FBP", y, A, steps=1, callback=callback, progress=progress, x_true=x_true)
        y, track = run.y, run.track
        x = fbp(A, y, self.window)
        track.step(0, 0.0, x)
        return track.result(x)
