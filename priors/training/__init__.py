"""Training priors: a generic resumable loop, the denoising score matching loss, weights on disk."""

from .dsm import DSMLoss, gaussian_dsm_minimum
from .loop import TrainResult, load_checkpoint, random_batches, save_checkpoint, smoothed, train
from .weights import (
    WeightsMetadata,
    check_state,
    load_network_prior,
    load_weights,
    metadata_path,
    read_metadata,
    read_state,
    save_weights,
)

__all__ = [
    "DSMLoss",
    "TrainResult",
    "WeightsMetadata",
    "check_state",
    "gaussian_dsm_minimum",
    "load_checkpoint",
    "load_network_prior",
    "load_weights",
    "metadata_path",
    "random_batches",
    "read_metadata",
    "read_state",
    "save_checkpoint",
    "save_weights",
    "smoothed",
    "train",
]
