"""Reading images and stacks from files: MRC, TIFF, NPY/NPZ and PNG, memory-mapped where the format
allows (MRC, uncompressed TIFF, NPY), so that a large stack costs no memory until a part is read.
Errors name the file and the fix.

    open_array(path)   the data as an array-like (a numpy memmap where possible) plus the voxel size
    read_array(path)   the data in memory as float32, checked for NaN and Inf
    read_images(path)  2-D images from one stack file or a folder of files (for training a prior)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MRC_SUFFIXES = {".mrc", ".mrcs", ".st", ".ali", ".rec", ".map"}
TIFF_SUFFIXES = {".tif", ".tiff"}
SUPPORTED = sorted(MRC_SUFFIXES | TIFF_SUFFIXES | {".npy", ".npz", ".png"})

#: lengths of the TIFF/ImageJ units we recognise, in angstrom (MRC's unit)
_ANGSTROM_PER = {"a": 1.0, "angstrom": 1.0, "\u00c5": 1.0, "nm": 10.0, "micron": 1e4, "um": 1e4, "\u00b5m": 1e4}


class FileFormatError(ValueError):
    """A file that exists but cannot be used: wrong format, corrupt, or wrong contents."""


@dataclass(frozen=True)
class OpenedArray:
    """data: an array-like (a read-only numpy memmap for MRC, uncompressed TIFF and NPY; an array otherwise);
    voxel_size: the pixel size in angstrom recorded in the file (MRC header, ImageJ TIFF), or None."""

    data: np.ndarray
    voxel_size: float | None
    memory_mapped: bool


def existing_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    return path


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise FileFormatError(
            f"cannot read {path}: unsupported extension {suffix!r}; supported: {', '.join(SUPPORTED)}"
        )
    return suffix


def open_array(path) -> OpenedArray:
    """The file's array without reading it into memory where the format allows (see `OpenedArray`).
    The dtype is the file's (int16, uint8, float16, float32, ...): convert the parts you read."""
    path = existing_file(path)
    suffix = _suffix(path)
    voxel = None
    mapped = True
    try:
        if suffix in MRC_SUFFIXES:
            import mrcfile

            mrc = mrcfile.mmap(path, mode="r", permissive=False)
            data = mrc.data
            size = float(mrc.voxel_size.x)
            voxel = size if size > 0 else None
        elif suffix in TIFF_SUFFIXES:
            import tifffile

            voxel = _tiff_voxel_size(path)
            try:
                data = tifffile.memmap(path, mode="r")
            except ValueError:  # compressed or not contiguous: decode once into a temporary memmap
                data = tifffile.imread(path, out="memmap")
        elif suffix == ".npy":
            data = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            data, mapped = _read_small(path, suffix), False
    except FileFormatError:
        raise
    except Exception as error:  # corrupt or truncated files surface as many library-specific errors
        raise FileFormatError(f"could not read {path} as {suffix} data: {error}") from error
    if data is None or data.dtype.kind not in "fiu":
        raise FileFormatError(f"{path} holds {getattr(data, 'dtype', None)} data; expected real numbers")
    return OpenedArray(data, voxel, mapped)


def _read_small(path: Path, suffix: str) -> np.ndarray:
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if len(keys) != 1:
                raise FileFormatError(f"{path} holds arrays {keys}; save exactly one array")
            return archive[keys[0]]
    import matplotlib.image

    data = matplotlib.image.imread(path)
    if data.ndim == 3:  # RGB(A) -> luminance
        data = data[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=data.dtype)
    return data


def _tiff_voxel_size(path: Path) -> float | None:
    """The pixel size in angstrom of an ImageJ TIFF (XResolution in pixels per unit, unit in its metadata)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata or {}
        tag = tif.pages[0].tags.get("XResolution")
        unit = str(meta.get("unit", "")).lower()
        if tag is None or unit not in _ANGSTROM_PER:
            return None
        numerator, denominator = tag.value
        return denominator / numerator * _ANGSTROM_PER[unit] if numerator > 0 else None


def release(array) -> None:
    """Drop the pages of a memory-mapped array from this process's resident set (the file keeps the data;
    a later read maps them again). Reading or writing a large file through a memory map otherwise
    leaves every touched page resident, and the peak memory grows with the file. A no-op for arrays in
    memory and where madvise is unavailable."""
    import mmap

    handle = getattr(array, "_mmap", None)
    if handle is None or not hasattr(mmap, "MADV_DONTNEED") or getattr(handle, "closed", True):
        return
    try:
        handle.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):
        pass


def check_finite(data, path, chunk_axis: int = 0) -> None:
    """FileFormatError when data holds NaN or Inf; reads one index of `chunk_axis` at a time."""
    for i in range(data.shape[chunk_axis] if data.ndim else 1):
        part = np.asarray(data[(slice(None),) * chunk_axis + (i,)] if data.ndim else data)
        if part.dtype.kind == "f" and not np.isfinite(part).all():
            raise FileFormatError(f"{path} contains NaN or Inf values")
        if i % 16 == 15:
            release(data)
    release(data)


def read_array(path) -> np.ndarray:
    """The file's array in memory as float32 (MRC, TIFF, NPY, NPZ with one array, PNG), checked finite."""
    opened = open_array(path)
    data = np.array(opened.data, dtype=np.float32)
    if not np.isfinite(data).all():
        raise FileFormatError(f"{path} contains NaN or Inf values")
    return data


def read_images(path) -> list[np.ndarray]:
    """2-D float32 images from a stack file (a 2-D image or a 3-D stack (N, H, W)) or a folder of such
    files (read in name order; files of other types are ignored)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUPPORTED) if path.is_dir() else [path]
    if not files:
        raise FileFormatError(f"{path} holds no images; expected files with extensions {', '.join(SUPPORTED)}")
    images = []
    for file in files:
        data = read_array(file)
        if data.ndim == 2:
            images.append(data)
        elif data.ndim == 3:
            images.extend(data)
        else:
            raise FileFormatError(f"{file}: expected a 2-D image or a 3-D stack (N, H, W), got shape {data.shape}")
    return images
