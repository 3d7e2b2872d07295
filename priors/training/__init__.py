"""Training priors: a generic resumable loop, the denoising score matching loss, weights on disk."""

from .dsm import DSMLoss, gaussian_dsm_minimum
from .loop import TrainResult, load_checkpoint, random_batches, save_checkpoint, smoothed, train
from .weights import (
    MAX_PARAMETERS,
    WeightsMetadata,
    check_state,
    convention_from_json,
    file_sha256,
    load_network_prior,
    load_weights,
    metadata_path,
    read_metadata,
    read_shapes,
    read_state,
    save_weights,
    sha256_from_json,
)

__all__ = [
    "MAX_PARAMETERS",
    "DSMLoss",
    "TrainResult",
    "WeightsMetadata",
    "check_state",
    "convention_from_json",
    "file_sha256",
    "gaussian_dsm_minimum",
    "load_checkpoint",
    "load_network_prior",
    "load_weights",
    "metadata_path",
    "random_batches",
    "read_metadata",
    "read_shapes",
    "read_state",
    "save_checkpoint",
    "save_weights",
    "sha256_from_json",
    "smoothed",
    "train",
]
