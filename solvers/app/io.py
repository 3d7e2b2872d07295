"""Reading tilt series and images, writing reconstructions: MRC, TIFF, NPY/NPZ and PNG; tilt angles
from IMOD-style .rawtlt/.tlt files or a command-line spec. Errors name the file and the fix.

A tilt series is an array of shape (n_views, rows, cols): one projection image per tilt angle,
rows running along the tilt axis. A single sinogram (n_views, n_detector) is a tilt series of one row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MRC_SUFFIXES = {".mrc", ".mrcs", ".st", ".ali", ".rec", ".map"}
TIFF_SUFFIXES = {".tif", ".tiff"}
SUPPORTED = sorted(MRC_SUFFIXES | TIFF_SUFFIXES | {".npy", ".npz", ".png"})


class FileFormatError(ValueError):
    """A file that exists but cannot be used: wrong format, corrupt, or wrong contents."""


def _existing(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    return path


def read_array(path) -> np.ndarray:
    """An image or stack as float32, by file extension (MRC, TIFF, NPY, NPZ with one array, PNG)."""
    path = _existing(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise FileFormatError(
            f"cannot read {path}: unsupported extension {suffix!r}; supported: {', '.join(SUPPORTED)}"
        )
    try:
        if suffix in MRC_SUFFIXES:
            import mrcfile

            with mrcfile.open(path, permissive=False) as mrc:
                data = np.asarray(mrc.data)
        elif suffix in TIFF_SUFFIXES:
            import tifffile

            data = tifffile.imread(path)
        elif suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                if len(keys) != 1:
                    raise FileFormatError(f"{path} holds arrays {keys}; save exactly one array")
                data = archive[keys[0]]
        else:  # .png
            import matplotlib.image

            data = matplotlib.image.imread(path)
            if data.ndim == 3:  # RGB(A) -> luminance
                data = data[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=data.dtype)
    except FileFormatError:
        raise
    except Exception as error:  # corrupt or truncated files surface as many library-specific errors
        raise FileFormatError(f"could not read {path} as {suffix} data: {error}") from error
    data = np.asarray(data)
    if data.dtype.kind not in "fiu":
        raise FileFormatError(f"{path} holds {data.dtype} data; expected real numbers")
    if not np.isfinite(data).all():
        raise FileFormatError(f"{path} contains NaN or Inf values")
    return data.astype(np.float32, copy=False)


def read_tilt_series(path) -> np.ndarray:
    """A tilt series as (n_views, rows, cols) float32; a 2-D file is one sinogram (n_views, n_detector)."""
    data = read_array(path)
    if data.ndim == 2:
        return data[:, None, :]
    if data.ndim != 3:
        raise ValueError(
            f"{path}: a tilt series has shape (n_views, rows, cols) or (n_views, n_detector), got {data.shape}"
        )
    return data


def read_angles(path) -> np.ndarray:
    """Tilt angles in degrees from an IMOD .rawtlt/.tlt file: one number per line (blank lines and
    lines starting with # are skipped)."""
    path = _existing(path)
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
            return np.linspace(float(start), float(stop), int(count))
        return np.asarray([float(a) for a in spec.split(",")], dtype=np.float64)
    except ValueError:
        raise ValueError(
            f"cannot parse angles {spec!r}; use 'start:stop:count' (e.g. -60:60:61) "
            "or a comma-separated list of degrees"
        ) from None


def check_angles(angles: np.ndarray, n_views: int, source: str) -> np.ndarray:
    if len(angles) != n_views:
        raise ValueError(f"{source} gives {len(angles)} angles but the tilt series has {n_views} views")
    return angles


def write_array(path, data: np.ndarray) -> Path:
    """Write float32 data by extension: MRC, TIFF or NPY."""
    path = Path(path)
    suffix = path.suffix.lower()
    data = np.ascontiguousarray(data, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in MRC_SUFFIXES:
        import mrcfile

        with mrcfile.new(path, overwrite=True) as mrc:
            mrc.set_data(data)
    elif suffix in TIFF_SUFFIXES:
        import tifffile

        tifffile.imwrite(path, data)
    elif suffix == ".npy":
        np.save(path, data)
    else:
        raise ValueError(f"cannot write {path}: use .mrc, .tif or .npy")
    return path
