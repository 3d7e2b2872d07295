"""Rebinning full-turn fan-beam data to parallel-beam data, so that parallel FBP inverts a fan beam.

A fan ray (theta, s) of `FanBeamRadon` leaves the source at angle gamma = atan(s / D_sd) to the central ray
and is the parallel line (phi, t) of `Radon` (the line x cos phi + y sin phi = t) with

    phi = theta - gamma,    t = D_so sin gamma.

Conversely the line (phi, t), phi in [0, pi), is seen twice in a full turn: at gamma = asin(t / D_so),
theta = phi + gamma, s = D_sd tan gamma, and reversed, at theta' = phi + pi - gamma, s' = -s.
"""

from __future__ import annotations

import functools
import math

import torch

from ...base import LinearOperator
from .fan import FanBeamRadon
from .geometry import detector_positions, full_range_angles_deg
from .joseph import CSR
from .parallel import Radon

# the largest gap between fan views may be this many mean gaps (2 pi / n), and never above 45 degrees
FULL_TURN_GAP_FACTOR = 3.0
MAX_GAP_RAD = math.pi / 4


class FanToParallel(LinearOperator):
    """R: fan-beam sinograms of `fan` -> parallel-beam sinograms of `self.parallel` (a `Radon` with
    `n_angles` views over [0, 180) degrees and bins `detector_spacing` apart, default D_so / D_sd times
    the fan's bins: their size at the centre of rotation).

        (R y)[phi, t] = 1/2 y~(phi + gamma, D_sd tan gamma) + 1/2 y~(phi + pi - gamma, -D_sd tan gamma),
        gamma = asin(t / D_so),

    with y~ bilinear in (theta, s), periodic in theta; lines outside the fan read 0. Averaging the two
    views of each line uses all the data. R is a sparse matrix (4 entries per row for each of the two
    reads) and the adjoint is its exact transpose. The fan's views must cover the full turn.
    """

    def __init__(self, fan: FanBeamRadon, *, n_angles: int | None = None, detector_spacing: float | None = None):
        if not isinstance(fan, FanBeamRadon):
            raise TypeError(f"FanToParallel rebins a FanBeamRadon, got {fan!r}")
        g = fan.geometry
        total = g.source_distance + g.detector_distance
        at_centre = g.detector_spacing * g.source_distance / total
        spacing = float(detector_spacing) if detector_spacing is not None else at_centre
        n_angles = int(n_angles) if n_angles is not None else max(1, g.n_views // 2)
        s_max = (g.n_detector - 1) / 2 * g.detector_spacing
        t_max = g.source_distance * math.sin(math.atan2(s_max, total))
        self.parallel = Radon(
            fan.in_shape,
            angles_deg=full_range_angles_deg(n_angles),
            n_detector=int(math.floor(2 * t_max / spacing + 1e-9)) + 1,
            detector_spacing=spacing,
            pixel_size=g.pixel_size,
            dtype=fan.dtype,
            device=fan.device,
        )
        super().__init__(fan.out_shape, self.parallel.out_shape, dtype=fan.dtype, device=fan.device)
        self.fan = fan
        _ = self._matrices  # fail now (a fan that does not cover the full turn), not on first use

    @functools.cached_property
    def _matrices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(R, R^T) as CSR in the operator's precision: built from float64 weights on first use and
        cached (rebuilt after `.to()`)."""
        rows, cols, values = _rebinning_entries(self.fan, self.parallel)
        shape = (self.parallel.n_views * self.parallel.n_detector, self.fan.n_views * self.fan.n_detector)
        return (
            _csr(rows, cols, values, shape).to_torch(self.dtype, self.device),
            _csr(cols, rows, values, shape[::-1]).to_torch(self.dtype, self.device),
        )

    def _map(self, matrix: torch.Tensor, y: torch.Tensor, shape_out: tuple[int, int]) -> torch.Tensor:
        """matrix applied to the (views, bins) of y (*, C, V, [D,] N): those axes become the rows of one
        sparse product, every other axis a column."""
        view_axis = y.ndim - len(self.in_shape) + 1  # (C, V, ...) per sample: views right after channels
        moved = y.movedim((view_axis, -1), (0, 1))
        out = torch.sparse.mm(matrix, moved.reshape(moved.shape[0] * moved.shape[1], -1))
        return out.reshape(*shape_out, *moved.shape[2:]).movedim((0, 1), (view_axis, -1))

    def _apply(self, y):
        return self._map(self._matrices[0], y, (self.parallel.n_views, self.parallel.n_detector))

    def _adjoint(self, z):
        return self._map(self._matrices[1], z, (self.fan.n_views, self.fan.n_detector))

    def __repr__(self):
        return f"FanToParallel({self.fan.n_views} fan views -> {self.parallel.n_views} parallel views)"


def _csr(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> CSR:
    """Entries (duplicates summed) as CSR with ascending columns in each row."""
    flat, where = torch.unique(rows * shape[1] + cols, return_inverse=True)  # sorted: row-major order
    summed = torch.zeros(flat.numel(), dtype=values.dtype).index_add_(0, where, values)
    rows, cols = flat // shape[1], flat % shape[1]
    crow = torch.zeros(shape[0] + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=shape[0]), 0)
    return CSR(crow.int(), cols.int(), summed, shape)


def _rebinning_entries(fan: FanBeamRadon, parallel: Radon) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row, column, value) of R's matrix (parallel views x bins, fan views x bins), float64 values."""
    g = fan.geometry
    total = g.source_distance + g.detector_distance
    theta = torch.tensor(g.angles_rad, dtype=torch.float64) % (2 * math.pi)
    order = torch.argsort(theta)
    ordered = theta[order]
    gaps = torch.cat([ordered.diff(), (ordered[:1] + 2 * math.pi) - ordered[-1:]])
    if float(gaps.max()) > min(FULL_TURN_GAP_FACTOR * 2 * math.pi / g.n_views, MAX_GAP_RAD):
        raise ValueError(
            f"rebinning {fan!r} needs views over the full turn (360 degrees), no gap over 45 degrees or "
            f"{FULL_TURN_GAP_FACTOR:g} mean gaps: its largest gap is {math.degrees(float(gaps.max())):.3g} degrees "
            f"for {g.n_views} views"
        )
    # periodic neighbours: extended[i] brackets the query, views[i] is its view index
    extended = torch.cat([ordered[-1:] - 2 * math.pi, ordered, ordered[:1] + 2 * math.pi])
    views = torch.cat([order[-1:], order, order[:1]])

    phi = torch.tensor(parallel.geometry.angles_rad, dtype=torch.float64)[:, None]
    t = detector_positions(parallel.n_detector, parallel.geometry.detector_spacing).double()[None, :]
    gamma = torch.asin((t / g.source_distance).clamp(-1, 1)).expand(phi.shape[0], -1)
    rows = torch.arange(gamma.numel()).reshape(gamma.shape)
    entries = []
    s = total * torch.tan(gamma)
    for theta_query, s_query in (((phi + gamma) % (2 * math.pi), s), ((phi + math.pi - gamma) % (2 * math.pi), -s)):
        upper = torch.searchsorted(extended, theta_query.reshape(-1)).clamp(1, extended.numel() - 1)
        upper = upper.reshape(gamma.shape)
        lower = upper - 1
        width = extended[upper] - extended[lower]
        w_upper = (theta_query - extended[lower]) / width
        u = s_query / g.detector_spacing + (g.n_detector - 1) / 2
        k = torch.floor(u)
        w_right = u - k
        for view, w_view in ((views[lower], 1 - w_upper), (views[upper], w_upper)):
            for bin_, w_bin in ((k, 1 - w_right), (k + 1, w_right)):
                valid = (bin_ >= 0) & (bin_ <= g.n_detector - 1) & (w_view * w_bin > 0)
                cols = view * g.n_detector + bin_.long().clamp(0, g.n_detector - 1)
                entries.append((rows[valid], cols[valid], 0.5 * (w_view * w_bin)[valid]))
    rows, cols, values = (torch.cat(parts) for parts in zip(*entries))
    return rows, cols, values
