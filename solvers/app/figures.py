"""Figures: reconstructions side by side with their error maps, and previews of volumes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _image(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().reshape(t.shape[-2], t.shape[-1]).numpy()


def comparison_figure(x_true: torch.Tensor, rows, path, *, measurement: torch.Tensor | None = None, title=""):
    """Ground truth and each method's reconstruction (top, one grey scale: the truth's range) above
    their absolute error maps (bottom, one shared scale), for the first image of the batch."""
    truth = _image(x_true[0])
    lo, hi = float(truth.min()), float(truth.max())
    errors = [np.abs(_image(r.estimate[0]) - truth) for r in rows]
    emax = max(float(e.max()) for e in errors) or 1.0
    columns = len(rows) + 1
    fig, axes = plt.subplots(2, columns, figsize=(2.4 * columns, 5.2), squeeze=False)
    axes[0, 0].imshow(truth, cmap="gray", vmin=lo, vmax=hi)
    axes[0, 0].set_title("ground truth", fontsize=9)
    if measurement is not None:
        axes[1, 0].imshow(_image(measurement[0]), cmap="gray", aspect="auto")
        axes[1, 0].set_title("tilt series (views x detector)", fontsize=8)
    for j, (row, error) in enumerate(zip(rows, errors), start=1):
        axes[0, j].imshow(_image(row.estimate[0]), cmap="gray", vmin=lo, vmax=hi)
        axes[0, j].set_title(f"{row.name}\nPSNR {float(row.psnr[0]):.2f} dB, SSIM {float(row.ssim[0]):.3f}", fontsize=8)
        im = axes[1, j].imshow(error, cmap="magma", vmin=0, vmax=emax)
        axes[1, j].set_title(f"|error|, MSE {float(row.mse[0]):.3f}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[1, 1:].tolist(), shrink=0.8, label="absolute error")
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def volume_preview(volume, path, *, title="", voxel_size: float | None = None):
    """`preview_figure` written to path (PNG) through a temporary file and a rename."""
    from .io import atomic_write

    fig = preview_figure(volume, title=title, voxel_size=voxel_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    plt.close(fig)
    return path


def preview_figure(volume, *, title="", voxel_size: float | None = None):
    """Three orthogonal central sections of a (D, H, W) volume (rows, thickness, cols), or the image
    itself for D = 1: each at its true aspect ratio (square voxels), with its axes labelled (pixels, or
    angstrom when `voxel_size` is given) and one shared grey scale shown by a colour bar. Only the
    three sections are read (the volume may be a memory map)."""
    d, h, w = volume.shape
    middle_row, middle_col = _sections(volume)
    unit = "A" if voxel_size else "px"
    scale = voxel_size or 1.0
    # (section, name, horizontal axis, vertical axis, (width, height) in pixels)
    if d == 1:
        panels = [(np.asarray(volume[0]), "slice", "cols (x)", "thickness (z)", (w, h))]
    else:
        panels = [
            (np.asarray(volume[d // 2]), f"slice {d // 2}", "cols (x)", "thickness (z)", (w, h)),
            (middle_row, f"at thickness {h // 2}", "cols (x)", "rows: tilt axis (y)", (w, d)),
            (middle_col, f"at col {w // 2}", "thickness (z)", "rows: tilt axis (y)", (h, d)),
        ]
    values = np.concatenate([p[0].ravel() for p in panels])
    lo, hi = np.percentile(values, [0.5, 99.5])
    ratios = [pw / ph for *_, (pw, ph) in panels]
    height = min(4.0, 12.0 / sum(ratios))  # every panel this tall (inches), at most 12 inches of panels wide
    fig, axes = plt.subplots(1, len(panels), figsize=(height * sum(ratios) + 1.5 + 0.6 * len(panels), height + 1.3),
                             squeeze=False, layout="constrained", gridspec_kw={"width_ratios": ratios})
    image = None
    for ax, (section, name, xlabel, ylabel, (pw, ph)) in zip(axes[0], panels):
        image = ax.imshow(section, cmap="gray", vmin=lo, vmax=hi, aspect="equal", interpolation="nearest",
                          extent=(0, pw * scale, ph * scale, 0))
        ax.set_title(name, fontsize=8)
        ax.set_xlabel(f"{xlabel} [{unit}]", fontsize=7)
        ax.set_ylabel(f"{ylabel} [{unit}]", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="value (input units)")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _sections(volume, chunk: int = 16):
    """The central (rows x cols) and (rows x thickness) sections of a (D, H, W) volume, read `chunk` slices
    at a time with the memory map's pages released after each (so a large file is never all resident)."""
    from priors.data.files import release

    d, h, w = volume.shape
    by_row, by_col = np.empty((d, w), dtype=np.float32), np.empty((d, h), dtype=np.float32)
    for start in range(0, d, chunk):
        block = np.asarray(volume[start : start + chunk], dtype=np.float32)
        by_row[start : start + chunk], by_col[start : start + chunk] = block[:, h // 2, :], block[:, :, w // 2]
        release(volume)
    return by_row, by_col


def curve_figure(xs, curves: dict, path, *, xlabel: str, ylabel: str, title: str = "", log_x: bool = False):
    """Line plot of named curves (e.g. PSNR against stopping time)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, ys in curves.items():
        ax.plot(xs, ys, marker="o", ms=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log_x:
        ax.set_xscale("log")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
