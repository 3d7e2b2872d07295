"""Tilt series in, volumes out: MRC, TIFF, NPY (memory-mapped both ways, so memory does not grow with
the number of slices), NPZ and PNG in; tilt angles from IMOD-style .rawtlt/.tlt files or a spec.

A tilt series is an array of shape (n_views, rows, cols): one projection image per tilt angle, rows
running along the tilt axis. A single sinogram (n_views, n_detector) is a tilt series of one row.

Nothing is lost and nothing is overwritten:
- an output is never one of the inputs, and an existing output is replaced only with --overwrite;
- the volume is written slice by slice into OUT.partial.EXT (memory-mapped) beside OUT, with a JSON
  sidecar OUT.EXT.partial.json listing the finished slices; only when every slice is done is the file
  renamed to OUT (an atomic rename in the same folder) and the sidecar removed. An interrupted run
  leaves both, and `--resume` continues it. Previews are written to a temporary file and renamed too.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from priors.data.files import (
    MRC_SUFFIXES,
    SUPPORTED,
    TIFF_SUFFIXES,
    FileFormatError,
    check_finite,
    existing_file,
    open_array,
    read_array,
    release,
)

__all__ = [
    "MRC_SUFFIXES",
    "SUPPORTED",
    "TIFF_SUFFIXES",
    "WRITABLE",
    "FileFormatError",
    "TiltSeries",
    "VolumeWriter",
    "atomic_write",
    "check_angles",
    "open_tilt_series",
    "parse_angles",
    "read_angles",
    "read_array",
    "read_tilt_series",
    "write_array",
]

WRITABLE = sorted(MRC_SUFFIXES | TIFF_SUFFIXES | {".npy"})


@dataclass(frozen=True)
class TiltSeries:
    """A tilt series as (n_views, rows, cols), memory-mapped where the format allows; `voxel_size` is
    the pixel size in angstrom from the file's header (None when it records none)."""

    path: Path
    data: np.ndarray
    voxel_size: float | None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)

    def sinograms(self, rows) -> np.ndarray:
        """The sinograms of the given rows (slices), (len(rows), n_views, cols) float32: only they are read
        (and their pages released again, so that reading every slice does not keep the file resident)."""
        out = np.ascontiguousarray(np.asarray(self.data[:, list(rows), :], dtype=np.float32).transpose(1, 0, 2))
        release(self.data)
        return out


def open_tilt_series(path, *, check: bool = True) -> TiltSeries:
    """The tilt series in `path` without reading it into memory (see `TiltSeries`); a 2-D file is one
    sinogram (n_views, n_detector). `check` reads it once, view by view, for NaN and Inf."""
    opened = open_array(path)
    data = opened.data
    if data.ndim == 2:
        data = data[:, None, :]
    if data.ndim != 3:
        raise ValueError(
            f"{path}: a tilt series has shape (n_views, rows, cols) or (n_views, n_detector), got {data.shape}"
        )
    if check:
        check_finite(data, path)
    return TiltSeries(Path(path), data, opened.voxel_size)


def read_tilt_series(path) -> np.ndarray:
    """A tilt series in memory as (n_views, rows, cols) float32."""
    series = open_tilt_series(path)
    return np.asarray(series.data, dtype=np.float32)


def read_angles(path) -> np.ndarray:
    """Tilt angles in degrees from an IMOD .rawtlt/.tlt file: one number per line (blank lines and
    lines starting with # are skipped)."""
    path = existing_file(path)
    angles = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            angles.append(float(text.split()[0]))
        except ValueError:
            raise ValueError(f"{path}, line {number}: expected an angle in degrees, got {text!r}") from None
    if not angles:
        raise ValueError(f"{path} holds no angles")
    return np.asarray(angles, dtype=np.float64)


def parse_angles(spec: str) -> np.ndarray:
    """Angles in degrees from 'start:stop:count' (count values, endpoints included) or a comma list."""
    spec = spec.strip()
    try:
        if ":" in spec:
            start, stop, count = spec.split(":")
            if int(count) < 1:
                raise ValueError
            return np.linspace(float(start), float(stop), int(count))
        return np.asarray([float(a) for a in spec.split(",")], dtype=np.float64)
    except ValueError:
        raise ValueError(
            f"cannot parse angles {spec!r}; use 'start:stop:count' (e.g. -60:60:61) "
            "or a comma-separated list of degrees"
        ) from None


#: a series whose angles all lie within +-RADIAN_BOUND and span more than RADIAN_SPAN looks like radians
RADIAN_BOUND = 3.2
RADIAN_SPAN = 0.5


def check_angles(angles: np.ndarray, n_views: int, source: str, unit: str = "auto") -> np.ndarray:
    """The angles in degrees, checked: one per view, finite, and (unit 'auto') not radians in disguise:
    |angles| <= 3.2 with a span above 0.5 is refused (pass unit 'radians' to convert or 'degrees' to
    accept them as they are)."""
    angles = np.asarray(angles, dtype=np.float64)
    if len(angles) != n_views:
        raise ValueError(f"{source} gives {len(angles)} angles but the tilt series has {n_views} views")
    if not np.isfinite(angles).all():
        raise ValueError(f"{source}: the angles must be finite numbers")
    if unit == "radians":
        return np.degrees(angles)
    span = float(angles.max() - angles.min())
    if unit == "auto" and np.abs(angles).max() <= RADIAN_BOUND and span > RADIAN_SPAN:
        raise ValueError(
            f"{source}: the angles run from {angles.min():.4g} to {angles.max():.4g}, which looks like radians "
            f"({np.degrees(angles.min()):.1f} to {np.degrees(angles.max()):.1f} degrees); pass --radians to "
            "convert them, or --degrees if they really are degrees"
        )
    return angles


# ----------------------------------------------------------------------------------------------
# writing


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_writable_path(path: Path, option: str, *, inputs=(), overwrite: bool = False, suffixes=None) -> Path:
    """Refuse, before any work, an output that would overwrite an input (always), an existing file
    (unless `overwrite`), an unsupported extension or a folder that cannot be written. Creates the
    folder if missing."""
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ValueError(f"{option}: cannot write {path.suffix or 'a file without extension'!r} ({path}); "
                         f"use one of {', '.join(suffixes)}")
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise ValueError(f"{option} {path} is an input of this run; never overwriting an input, "
                             "choose another name")
    if path.exists() and not path.is_file():
        raise ValueError(f"{option} {path} exists and is not a file")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{option} {path} exists; pass --overwrite to replace it")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.remove(probe)
    except OSError as error:
        raise PermissionError(f"{option}: cannot write into the folder {folder}: {error.strerror or error}") from None
    return path


def atomic_write(path: Path, write) -> Path:
    """Call write(temporary_path) on a temporary file in path's folder (same extension), then rename it
    to path (atomic on POSIX): path is either its old self or complete, never half-written."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1) + "\n"))


def write_array(path, data: np.ndarray, *, voxel_size: float | None = None) -> Path:
    """Write float32 data by extension (MRC, TIFF or NPY) through a temporary file and a rename."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITABLE:
        raise ValueError(f"cannot write {path}: use .mrc, .tif or .npy")
    data = np.ascontiguousarray(data, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        mapped = _create(tmp, data.shape, voxel_size)
        mapped.array[...] = data
        mapped.close()

    return atomic_write(path, write)


class _Mapped:
    """A writable memory-mapped volume file and how to flush and close it."""

    def __init__(self, array, handle=None):
        self.array, self.handle = array, handle

    def flush(self) -> None:
        """Write the dirty pages to the file, then drop them from memory (see `release`)."""
        if self.handle is not None:
            self.handle.flush()
        else:
            self.array.flush()
        release(self.array)

    def close(self) -> None:
        self.flush()
        if self.handle is not None:
            self.handle.close()
        self.array = None


def _create(path: Path, shape, voxel_size: float | None) -> _Mapped:
    """A new float32 file of `shape` at path, memory-mapped for writing (its format by extension)."""
    suffix = path.suffix.lower()
    if suffix in MRC_SUFFIXES:
        import mrcfile

        mrc = mrcfile.new_mmap(path, tuple(shape), mrc_mode=2, overwrite=True)
        if voxel_size is not None:
            mrc.voxel_size = voxel_size
        return _Mapped(mrc.data, mrc)
    if suffix in TIFF_SUFFIXES:
        import tifffile

        extra = {}
        if voxel_size is not None:
            extra = {"imagej": True, "resolution": (1 / voxel_size, 1 / voxel_size),
                     "metadata": {"axes": "ZYX", "spacing": voxel_size, "unit": "angstrom"}}
        return _Mapped(tifffile.memmap(path, shape=tuple(shape), dtype="float32", **extra))
    return _Mapped(np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=tuple(shape)))


def _reopen(path: Path) -> _Mapped:
    suffix = path.suffix.lower()
    if suffix in MRC_SUFFIXES:
        import mrcfile

        mrc = mrcfile.mmap(path, mode="r+")
        return _Mapped(mrc.data, mrc)
    if suffix in TIFF_SUFFIXES:
        import tifffile

        return _Mapped(tifffile.memmap(path, mode="r+"))
    return _Mapped(np.load(path, mmap_mode="r+"))


def partial_paths(output: Path) -> tuple[Path, Path]:
    """(the unfinished volume OUT.partial.EXT, its sidecar OUT.EXT.partial.json)."""
    output = Path(output)
    return output.with_name(f"{output.stem}.partial{output.suffix}"), output.with_name(f"{output.name}.partial.json")


class ResumeMismatch(ValueError):
    """--resume with settings that differ from the interrupted run's."""


class VolumeWriter:
    """The output volume (rows, thickness, cols), written slice by slice (see the module docstring).

    `record` holds every setting that changes the result (solver, prior, seed, geometry, input ...): a
    resumed run must match it exactly, or ResumeMismatch names the settings that differ."""

    def __init__(self, output: Path, shape, *, record: dict, voxel_size: float | None, resume: bool):
        self.output = Path(output)
        self.partial, self.sidecar = partial_paths(self.output)
        self.shape = tuple(int(s) for s in shape)
        self.record = json.loads(json.dumps(record))  # plain JSON types, compared after a round trip
        if resume:
            self.done = self._resume()
            self.mapped = _reopen(self.partial)
            if tuple(self.mapped.array.shape) != self.shape:
                raise ResumeMismatch(f"{self.partial} has shape {self.mapped.array.shape}, this run needs {self.shape}")
        else:
            self.done = set()
            self.mapped = _create(self.partial, self.shape, voxel_size)
            self._save()

    def _resume(self) -> set[int]:
        if not self.sidecar.is_file() or not self.partial.is_file():
            raise FileNotFoundError(f"--resume: no unfinished reconstruction for {self.output} "
                                    f"(expected {self.partial} and {self.sidecar})")
        state = json.loads(self.sidecar.read_text())
        earlier = state.get("record", {})
        differ = sorted(k for k in set(earlier) | set(self.record) if earlier.get(k) != self.record.get(k))
        if differ:
            details = "; ".join(f"{k}: was {earlier.get(k)!r}, now {self.record.get(k)!r}" for k in differ)
            raise ResumeMismatch(f"--resume: {self.partial} was started with other settings ({details}); "
                                 "rerun with the original settings, or start over with --overwrite")
        return {int(i) for i in state.get("done", [])}

    def _save(self) -> None:
        _write_json(self.sidecar, {"format": "solvers.reconstruct.partial/1", "output": self.output.name,
                                   "shape": list(self.shape), "done": sorted(self.done),
                                   "record": self.record})

    @property
    def remaining(self) -> list[int]:
        return [i for i in range(self.shape[0]) if i not in self.done]

    def write(self, rows, slices: np.ndarray) -> None:
        """Store finished slices, flush them to disk, then record them as done (in that order, so the
        sidecar never lists a slice that is not on disk)."""
        for r, s in zip(rows, slices):
            self.mapped.array[int(r)] = s
        self.mapped.flush()
        self.done.update(int(r) for r in rows)
        self._save()

    def close(self) -> None:
        """Flush and close, keeping the partial file (and the sidecar) as they are."""
        if self.mapped.array is not None:
            self.mapped.close()

    def finish(self) -> Path:
        """All slices done: close and rename the partial file to the output, remove the sidecar."""
        missing = self.remaining
        if missing:
            raise RuntimeError(f"{len(missing)} slices are not finished (first: {missing[0]})")
        self.close()
        os.replace(self.partial, self.output)
        self.sidecar.unlink(missing_ok=True)
        return self.output
