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


def volume_preview(volume: np.ndarray, path, *, title=""):
    """Three orthogonal central sections of a (D, H, W) volume, or the image itself for D = 1."""
    volume = np.asarray(volume)
    d, h, w = volume.shape
    sections = [volume[d // 2]] if d == 1 else [volume[d // 2], volume[:, h // 2, :], volume[:, :, w // 2]]
    names = ["slice"] if d == 1 else ["central slice (H x W)", "D x W", "D x H"]
    lo, hi = np.percentile(volume, [0.5, 99.5])
    fig, axes = plt.subplots(1, len(sections), figsize=(4 * len(sections), 4), squeeze=False)
    for ax, section, name in zip(axes[0], sections, names):
        ax.imshow(section, cmap="gray", vmin=lo, vmax=hi, aspect="auto")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


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
