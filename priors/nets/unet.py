"""A small U-Net for denoisers: noise-conditional (log-sigma Fourier features) or blind, with optional
extra input channels (e.g. patch-position maps), sized to train on a CPU in minutes.

Architecture (L = len(channels) levels, each with `blocks` residual blocks):

    x (B, in + extra, H, W) -> 3x3 conv -> [ResBlock x blocks -> 2x2 avg-pool]  (levels 0..L-2)
                                         -> ResBlock x blocks at level L-1 (the bottleneck)
                                         -> [nearest 2x upsample -> concat skip -> ResBlock x blocks]  (L-2..0)
                                         -> GroupNorm, SiLU, 3x3 conv (zero-initialised) -> (B, out, H, W)

    ResBlock(h, e) = skip(h) + conv(SiLU(GN(conv(SiLU(GN(h))) + W e)))

The noise embedding e (conditional networks only) is an MLP of Fourier features of c = log(sigma) / 4:
[c, sin(2^k pi c), cos(2^k pi c)], k = 0..K-1, added per channel in every block. Images whose side is
not a multiple of 2^(L-1) are padded (replicate) and cropped back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _groups(channels: int, wanted: int) -> int:
    g = min(wanted, channels)
    while channels % g:
        g -= 1
    return g


class SigmaEmbedding(nn.Module):
    """e(sigma) = MLP([c, sin(2^k pi c), cos(2^k pi c)]_{k<K}), c = log(sigma) / 4."""

    def __init__(self, dim: int, frequencies: int = 8):
        super().__init__()
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(frequencies, dtype=torch.float32), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * frequencies + 1, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        c = (torch.log(sigma) / 4).to(self.freqs.dtype)[:, None]
        angles = c * self.freqs
        return self.mlp(torch.cat([c, torch.sin(angles), torch.cos(angles)], dim=1))


class ResBlock(nn.Module):
    """Pre-activation residual block with an optional per-channel embedding shift."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int | None, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in, groups), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out) if emb_dim else None
        self.norm2 = nn.GroupNorm(_groups(c_out, groups), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, h: torch.Tensor, e: torch.Tensor | None) -> torch.Tensor:
        out = self.conv1(F.silu(self.norm1(h)))
        if self.emb is not None:
            out = out + self.emb(e)[:, :, None, None]
        out = self.conv2(F.silu(self.norm2(out)))
        return self.skip(h) + out


class UNet(nn.Module):
    """A compact U-Net f(x, sigma, extra) -> (B, out_channels, H, W).

    Args:
        in_channels: image channels.
        out_channels: output channels (default: in_channels).
        channels: feature channels per level; len(channels) levels, halving the resolution between them.
        blocks: residual blocks per level (on the way down and on the way up).
        conditional: True for a noise-conditional network called as f(x, sigma) with sigma (B,) (or a
            float); False for a blind one called as f(x) (DDGM's denoiser).
        extra_channels: channels concatenated to x at the input (e.g. `patch_position_channels`), passed
            as `extra` (B, extra_channels, H, W).
        embedding_dim: width of the sigma embedding (default 4 * channels[0]).
        frequencies: number of Fourier frequencies of the log-sigma embedding.
        groups: GroupNorm groups (reduced to a divisor of each width).
        seed: if given, parameters are initialised from this seed (the global RNG is left untouched).

    `config` holds these arguments (JSON-able) for `priors.training.save_weights`.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int | None = None,
        channels: Sequence[int] = (32, 64, 64),
        blocks: int = 1,
        conditional: bool = True,
        extra_channels: int = 0,
        embedding_dim: int | None = None,
        frequencies: int = 8,
        groups: int = 8,
        seed: int | None = None,
    ):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or any(c <= 0 for c in channels) or blocks < 1 or in_channels < 1 or extra_channels < 0:
            raise ValueError(
                f"UNet needs positive channels, blocks >= 1, in_channels >= 1, extra_channels >= 0; got "
                f"channels={channels}, blocks={blocks}, in_channels={in_channels}, extra_channels={extra_channels}"
            )
        out_channels = in_channels if out_channels is None else int(out_channels)
        embedding_dim = (4 * channels[0] if embedding_dim is None else int(embedding_dim)) if conditional else None
        self.config = dict(
            in_channels=int(in_channels),
            out_channels=out_channels,
            channels=list(channels),
            blocks=int(blocks),
            conditional=bool(conditional),
            extra_channels=int(extra_channels),
            embedding_dim=embedding_dim,
            frequencies=int(frequencies),
            groups=int(groups),
        )
        self.in_channels, self.extra_channels, self.conditional = in_channels, extra_channels, conditional
        self.levels = len(channels)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self._build(
                in_channels + extra_channels, out_channels, channels, blocks, embedding_dim, frequencies, groups
            )

    def _build(self, c_in, c_out, channels, blocks, emb, frequencies, groups):
        self.embedding = SigmaEmbedding(emb, frequencies) if emb else None
        self.stem = nn.Conv2d(c_in, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        c = channels[0]
        skips = []
        for width in channels:
            level = nn.ModuleList()
            for _ in range(blocks):
                level.append(ResBlock(c, width, emb, groups))
                c = width
            self.down.append(level)
            skips.append(c)
        self.up = nn.ModuleList()
        for i in reversed(range(len(channels) - 1)):
            level = nn.ModuleList()
            c_cat = c + skips[i]
            for _ in range(blocks):
                level.append(ResBlock(c_cat, channels[i], emb, groups))
                c_cat = channels[i]
            c = channels[i]
            self.up.append(level)
        self.head_norm = nn.GroupNorm(_groups(c, groups), c)
        self.head = nn.Conv2d(c, c_out, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(
        self, x: torch.Tensor, sigma: torch.Tensor | float | None = None, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"UNet expects x of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if self.conditional and sigma is None:
            raise ValueError("this UNet is noise-conditional: call it as net(x, sigma)")
        if not self.conditional and sigma is not None:
            raise ValueError("this UNet is blind (conditional=False): call it as net(x), without sigma")
        if self.extra_channels:
            if extra is None or extra.shape != (x.shape[0], self.extra_channels, *x.shape[2:]):
                got = None if extra is None else tuple(extra.shape)
                raise ValueError(
                    f"this UNet takes {self.extra_channels} extra input channels: pass extra of shape "
                    f"({x.shape[0]}, {self.extra_channels}, {x.shape[2]}, {x.shape[3]}), got {got}"
                )
            x_in = torch.cat([x, extra.to(x.dtype)], dim=1)
        elif extra is not None:
            raise ValueError("this UNet has extra_channels=0 but got an `extra` input")
        else:
            x_in = x
        e = None
        if self.conditional:
            s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
            e = self.embedding(s.expand(x.shape[0]) if s.numel() == 1 else s)
        H, W = x.shape[-2:]
        m = 2 ** (self.levels - 1)
        ph, pw = (-H) % m, (-W) % m
        if ph or pw:
            x_in = F.pad(x_in, (0, pw, 0, ph), mode="replicate")
        h = self.stem(x_in)
        skips = []
        for i, level in enumerate(self.down):
            for block in level:
                h = block(h, e)
            if i < self.levels - 1:
                skips.append(h)
                h = F.avg_pool2d(h, 2)
        for level in self.up:
            skip = skips.pop()
            h = torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="nearest"), skip], dim=1)
            for block in level:
                h = block(h, e)
        out = self.head(F.silu(self.head_norm(h)))
        return out[..., :H, :W]
