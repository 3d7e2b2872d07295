"""Reconstructing a real tilt series slice by slice with a diffusion prior or a classical method.

A tilt series (n_views, rows, cols) holds one projection image per tilt angle, rows along the tilt
axis. Row r of every view is the sinogram of slice r of the specimen, a slab of `thickness` x cols
pixels (the DDGM paper's 128 x 1568 case), reconstructed with the 2-D parallel-beam operator
A: (1, thickness, cols) -> (1, n_views, cols) into slice r of the volume (rows, thickness, cols).

Units: the priors work on zero-mean, unit-variance images, while real data come in arbitrary units.
With m0 and s0 the mean and standard deviation of an FBP of (at most 32 evenly spaced) slices, every
slice is solved in normalised units x_n = (x - m0) / s0, i.e. with y_n = (y - A(m0 1)) / s0 (exact, A
being linear), and mapped back. The noise std sigma of y (input units) is sigma / s0 in those units.

Slices are independent: slice r is reconstructed on its own, with its own random generator seeded from
(seed, r) (`slice_seed`), so the volume does not depend on how slices are grouped into tasks, on the
order they run in, or on how many workers run them. (torch's CPU kernels sum in an order that depends
on the number of threads, so bit-identity holds for a fixed number of threads per slice.)
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

import linops
from priors.tiled import TiledPrior


@dataclass(frozen=True)
class SlabGeometry:
    """The reconstructed slab: thickness (rows of each slice) and the detector sampling."""

    thickness: int | None = None  # default: the detector count (square slices)
    detector_spacing: float = 1.0
    pixel_size: float = 1.0
    method: linops.ProjectorMethod = linops.ProjectorMethod.AUTO  # fixed per run by `with_projector_method`

    def __post_init__(self):
        if self.thickness is not None and (isinstance(self.thickness, bool) or self.thickness < 1):
            raise ValueError(f"thickness must be a positive number of pixels, got {self.thickness!r}")
        if not (self.detector_spacing > 0 and self.pixel_size > 0):
            raise ValueError(f"detector_spacing and pixel_size must be positive, got {self.detector_spacing}, "
                             f"{self.pixel_size}")

    def operator(self, n_detector: int, angles_deg, device="cpu") -> linops.Radon:
        width = n_detector
        height = self.thickness or n_detector
        return linops.Radon(
            (1, height, width),
            angles_deg=torch.as_tensor(np.asarray(angles_deg), dtype=torch.float64),
            n_detector=n_detector,
            detector_spacing=self.detector_spacing,
            pixel_size=self.pixel_size,
            method=self.method,
            device=device,
        )

    def with_projector_method(self, A: linops.Radon, slices: int, applies_per_slice: int) -> SlabGeometry:
        """This geometry with the one projector method that every slice of the run uses.

        A matrix-free and a sparse adjoint sum in different orders, so under AUTO (which builds the matrix
        after enough applies) a slice's last bits would depend on the slices solved before it in the same
        process: on the batch size and on the worker. Deciding once, in the main process, keeps slice r a
        function of (seed, r) alone. The choice is AUTO's rent-or-buy rule applied to the whole run at once
        (`A.method_for` with slices x applies_per_slice columns): SPARSE when that many applies pay for the
        build and it fits in memory, else MATRIX_FREE."""
        if self.method is not linops.ProjectorMethod.AUTO:
            return self
        return dataclasses.replace(self, method=A.method_for(columns=max(1, slices * applies_per_slice)))


@functools.lru_cache(maxsize=4)
def slice_operator(geometry: SlabGeometry, n_detector: int, angles_deg: tuple, device: str) -> linops.Radon:
    """The slice operator, one per process and geometry (its sparse matrices are built once)."""
    return geometry.operator(n_detector, angles_deg, device)


#: A low estimate of an iterative solver's operator applies per slice (every default runs at least this many)
ITERATIVE_APPLIES_PER_SLICE = 50


def applies_per_slice(solver) -> int:
    """Operator applies per slice for the choice of projector method: one for FBP, else a low estimate."""
    from ..classical import FilteredBackprojection

    return 1 if isinstance(solver, FilteredBackprojection) else ITERATIVE_APPLIES_PER_SLICE


def tiled_if_wide(prior, width: int, height: int, tile: int, stride: int):
    """The prior itself for slices that fit a tile, else a TiledPrior with tiles of `tile` pixels (at
    most the slice's extent along each axis) every `stride` pixels."""
    if width <= tile and height <= tile:
        return prior
    patch = (min(tile, height), min(tile, width))
    return TiledPrior(prior, patch=patch, stride=(min(stride, patch[0]), min(stride, patch[1])))


def slice_seed(seed: int, index: int) -> int:
    """The seed of slice `index`'s generator: a hash of (seed, index) (numpy's SeedSequence), so that
    nearby seeds and slices get unrelated streams."""
    words = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


@dataclass(frozen=True)
class Normalisation:
    """x_n = (x - offset) / scale (see the module docstring)."""

    offset: float
    scale: float

    @classmethod
    def from_fbp(cls, sinograms: np.ndarray, A) -> Normalisation:
        """m0, s0 of the FBP of the given sinograms (k, n_views, cols)."""
        y = torch.from_numpy(np.ascontiguousarray(sinograms, dtype=np.float32))[:, None].to(A.device)
        with torch.no_grad():
            x = linops.fbp(A, y)
        scale = float(x.double().std()) if x.numel() > 1 else 0.0
        return cls(float(x.double().mean()), scale if scale > 0 else 1.0)


def sample_rows(rows: int, count: int = 32) -> list[int]:
    """At most `count` evenly spaced rows (the slices the normalisation and noise are measured on)."""
    return sorted({int(round(r)) for r in np.linspace(0, rows - 1, min(rows, count))})


@dataclass(frozen=True)
class SliceSetup:
    """Everything a worker needs to reconstruct slices (picklable; the prior travels separately)."""

    angles_deg: tuple
    n_detector: int
    geometry: SlabGeometry
    solver: object
    normalisation: Normalisation
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"
    tile: int = 128
    stride: int = 96
    svd: object = None  # spectral.SVDRequest for DDRM: the worker loads the cached SVD

    def operator(self) -> linops.Radon:
        return slice_operator(self.geometry, self.n_detector, tuple(self.angles_deg), self.device)


def reconstruct_rows(setup: SliceSetup, prior, rows, sinograms: np.ndarray) -> np.ndarray:
    """Slices `rows` (in input units), (len(rows), thickness, cols) float32, from their sinograms
    (len(rows), n_views, cols): one solver call per slice, each with its own generator (`slice_seed`)."""
    if setup.threads is not None and torch.get_num_threads() != setup.threads:
        torch.set_num_threads(setup.threads)
    A = setup.operator()
    if setup.svd is not None:
        setup.svd.load(A)
    height, width = A.in_shape[-2:]
    if prior is not None and not _is_patch_prior(prior):
        prior = tiled_if_wide(prior, width, height, setup.tile, setup.stride)
    m0, s0 = setup.normalisation.offset, setup.normalisation.scale
    device = setup.device
    with torch.no_grad():
        offset = A @ torch.full((1, *A.in_shape), m0, device=device)
    out = np.empty((len(rows), height, width), dtype=np.float32)
    for k, (r, y) in enumerate(zip(rows, sinograms)):
        y_n = (torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(device)[None, None] - offset) / s0
        generator = torch.Generator(device=device).manual_seed(slice_seed(setup.seed, r))
        result = setup.solver(y_n, A, prior, generator=generator, progress=False)
        out[k] = (result.x.detach()[0, 0] * s0 + m0).cpu().numpy()
    return out


def _is_patch_prior(prior) -> bool:
    from ..padis import ShiftedDenoiser

    return isinstance(prior, ShiftedDenoiser)


class InProcess:
    """Runs tasks here, one after the other (the default: no server, no extra process)."""

    workers = 1

    def run(self, setup, prior, chunks, read, on_done):
        for rows in chunks:
            on_done(rows, reconstruct_rows(setup, prior, rows, read(rows)))

    def close(self):
        pass


def run_slices(series, setup: SliceSetup, prior, writer, *, batch_size: int, executor=None,
               progress: bool = True, log=print) -> None:
    """Reconstruct the slices the writer still needs, `batch_size` slices per task, writing each task's
    slices as soon as it completes (with an estimate of the time left over the whole volume)."""
    executor = executor or InProcess()
    remaining = writer.remaining
    chunks = [remaining[i : i + batch_size] for i in range(0, len(remaining), batch_size)]
    bar = tqdm(total=len(remaining), desc="slices", unit="slice", disable=not progress)
    start, cpu = time.perf_counter(), time.process_time()

    def on_done(rows, slices):
        writer.write(rows, slices)
        bar.update(len(rows))

    try:
        executor.run(setup, prior, chunks, series.sinograms, on_done)
    finally:
        bar.close()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if remaining:
        n = len(remaining)
        log(f"{n} slices in {elapsed:.1f} s ({elapsed / n:.3g} s per slice; CPU time in this process "
            f"{cpu / n:.3g} s per slice)")


def reconstruct_tilt_series(
    series: np.ndarray,
    angles_deg: np.ndarray,
    solver,
    prior,
    *,
    geometry: SlabGeometry = SlabGeometry(),
    batch_size: int = 8,
    tile: int = 128,
    stride: int = 96,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> np.ndarray:
    """The volume (rows, thickness, cols) reconstructed from a tilt series (n_views, rows, cols) in memory
    (the library form of `python -m solvers reconstruct`, without files; solvers that use the noise
    level take it from their own fields)."""
    n_views, rows, cols = series.shape
    if len(angles_deg) != n_views:
        raise ValueError(f"{len(angles_deg)} angles for a tilt series of {n_views} views")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    angles = tuple(float(a) for a in angles_deg)
    A = slice_operator(geometry, cols, angles, device)
    geometry = geometry.with_projector_method(A, rows, applies_per_slice(solver))
    sinograms = lambda rs: np.ascontiguousarray(np.asarray(series[:, list(rs), :], dtype=np.float32)  # noqa: E731
                                                .transpose(1, 0, 2))
    normalisation = Normalisation.from_fbp(sinograms(sample_rows(rows)), A)
    setup = SliceSetup(angles, cols, geometry, solver, normalisation, seed=seed, device=device, tile=tile,
                       stride=stride)
    volume = np.empty((rows, *A.in_shape[-2:]), dtype=np.float32)
    for start in tqdm(range(0, rows, batch_size), desc="slices", disable=not progress):
        chunk = list(range(start, min(start + batch_size, rows)))
        volume[chunk] = reconstruct_rows(setup, prior, chunk, sinograms(chunk))
    return volume
