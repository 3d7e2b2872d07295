"""Small networks for priors: a U-Net and position encodings for patch networks."""

from .position import coordinate_grid, fourier_position_features, patch_position_channels, position_channel_count
from .unet import ResBlock, SigmaEmbedding, UNet

__all__ = [
    "ResBlock",
    "SigmaEmbedding",
    "UNet",
    "coordinate_grid",
    "fourier_position_features",
    "patch_position_channels",
    "position_channel_count",
]
