"""Synthetic data that more than one demo uses (demos make their data; nothing is downloaded)."""

from __future__ import annotations

import math

import torch


def grating_images(
    angle: torch.Tensor, freq: torch.Tensor, noise: float, g: torch.Generator, side: int = 16
) -> torch.Tensor:
    """(n, 1, side, side) sinusoidal stripes: image i at orientation angle[i] (radians) and
    freq[i] cycles per image, with random phase and contrast, plus Gaussian pixel noise."""
    n = angle.shape[0]
    phase = 2 * math.pi * torch.rand(n, generator=g)
    contrast = 0.5 + 0.5 * torch.rand(n, generator=g)
    coords = torch.arange(side).float()
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")  # (side, side) each
    along = xx * angle.cos()[:, None, None] + yy * angle.sin()[:, None, None]  # (n, side, side)
    images = contrast[:, None, None] * torch.sin(
        2 * math.pi * freq[:, None, None] * along / side + phase[:, None, None]
    )
    images = images + noise * torch.randn(n, side, side, generator=g)
    return images[:, None]
