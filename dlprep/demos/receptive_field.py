"""Theoretical vs effective receptive field of a conv stack, measured by gradients; gridding.

What it shows:

- The theoretical receptive field (RF) of n stacked 3×3 stride-1 convolutions is (2n + 1)² input
  pixels: r = 1 + sum (k - 1)·d·(product of the strides below). Measured: the input pixels
  with a non-zero gradient of one output pixel fill exactly that square.
- The *effective* receptive field (ERF; Luo, Li, Urtasun & Zemel 2016, "Understanding the
  Effective Receptive Field in Deep Convolutional Neural Networks", arXiv 1701.04128) is where
  that gradient's energy actually sits. Backprop through n layers convolves the kernels n
  times, so by the central limit theorem the ERF is roughly Gaussian and its radius grows like
  sqrt(n), while the theoretical RF grows like n. Measured on random ReLU stacks (He init,
  averaged over several nets and inputs): the rms radius of the gradient energy grows with
  the square root of depth, and at 16 layers 95% of the energy lies in a box covering a
  small fraction of the theoretical RF. So "the RF covers the whole object" is not the same as
  "the network uses the whole RF"; downsampling and dilation grow the RF much faster than
  depth alone, which is why real networks use them. (Luo et al. also find that training
  enlarges the ERF somewhat; these are random, untrained weights.)
- Dilation and gridding: three 3×3 layers with dilation 2, 2, 2 span 13×13 pixels but only
  every other row and column reaches the output (about 29% of the span: the "gridding"
  artefact; Wang et al. 2018, "Understanding Convolution for Semantic Segmentation", arXiv
  1702.08502, who propose dilation rates without a common factor, such as 1, 2, 3). Dilations
  1, 2, 3 span the same 13×13 and reach every pixel.

Run: dlprep demo receptive-field
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True


def gradient_energy(layers: list[nn.Module], size: int, channels: int, device, g) -> torch.Tensor:
    """Squared gradient of the centre output pixel (all channels) w.r.t. each input pixel."""
    x = torch.randn(1, channels, size, size, generator=g).to(device).requires_grad_(True)
    h = x  # (1, C, size, size); every layer keeps the size (padding), so the centre is fixed
    for layer in layers:
        h = layer(h)
    centre = size // 2
    h[0, :, centre, centre].sum().backward()
    return x.grad[0].pow(2).sum(0)  # (size, size)


def relu_stack(n: int, channels: int, device) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for _ in range(n):
        conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        layers += [conv.to(device), nn.ReLU()]
    return layers


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    channels = 16
    depths = ctx.pick([2, 4, 8, 16], [2, 4, 8, 16, 32])
    repeats = ctx.pick(8, 32)  # random nets (and inputs) averaged per depth

    # ---- 1. theoretical vs effective receptive field, by depth ------------------------------
    rows, stats = [], {}
    for n in depths:
        size = 2 * n + 1 + 4  # the theoretical RF plus a margin of 2 pixels on each side
        energy = torch.zeros(size, size, dtype=torch.float64, device=device)
        for _ in range(repeats):
            energy += gradient_energy(relu_stack(n, channels, device), size, channels, device, g)
        p = energy / energy.sum()  # (size, size): where the gradient energy sits
        offsets = torch.arange(size, device=device) - size // 2
        dist2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
        rms_radius = math.sqrt((p * dist2).sum().item())
        box = torch.maximum(offsets[:, None].abs(), offsets[None, :].abs())  # Chebyshev radius
        r95 = next(r for r in range(size) if p[box <= r].sum().item() >= 0.95)
        support = int((energy > 0).sum().item())
        stats[n] = {
            "theoretical_rf": 2 * n + 1,
            "support_pixels": support,
            "rms_radius": rms_radius,
            "box_radius_95": r95,
            "area_fraction_95": (2 * r95 + 1) ** 2 / (2 * n + 1) ** 2,
        }
        rows.append(
            [
                n,
                f"{2 * n + 1}×{2 * n + 1}",
                support == (2 * n + 1) ** 2,
                f"{rms_radius:.2f}",
                f"{rms_radius / math.sqrt(n):.2f}",
                f"{2 * r95 + 1}×{2 * r95 + 1}",
                f"{100 * stats[n]['area_fraction_95']:.0f}%",
            ]
        )
    result.tables.append(
        Table(
            f"n stacked 3×3 conv + ReLU layers ({channels} channels, He init, {repeats} random "
            "nets each): theoretical RF vs where the gradient energy of the centre output sits",
            [
                "n",
                "theoretical RF",
                "non-zero gradient fills it",
                "rms radius",
                "rms radius / sqrt(n)",
                "box with 95% of energy",
                "of the RF's area",
            ],
            rows,
        )
    )

    # ---- 2. dilation: span vs coverage (gridding) --------------------------------------------
    coverage = {}
    for dilations in ((2, 2, 2), (1, 2, 3)):
        span = 1 + sum(2 * d for d in dilations)
        size = span + 4
        layers = []
        for d in dilations:
            conv = nn.Conv2d(4, 4, 3, padding=d, dilation=d, bias=False)
            nn.init.normal_(conv.weight)
            layers.append(conv.to(device))
        energy = gradient_energy(layers, size, 4, device, g)
        c, half = size // 2, span // 2
        inside = energy[c - half : c + half + 1, c - half : c + half + 1]  # (span, span)
        outside = (energy > 0).sum() - (inside > 0).sum()  # pixels reached outside the span
        coverage[dilations] = {
            "span": span,
            "covered_fraction": (inside > 0).to(torch.float64).mean().item(),
            "reached_outside_span": int(outside.item()),
        }
    result.tables.append(
        Table(
            "Three dilated 3×3 layers: how much of the spanned square reaches the output",
            ["dilations", "span", "pixels with non-zero gradient"],
            [
                [str(d), f"{v['span']}×{v['span']}", f"{100 * v['covered_fraction']:.0f}%"]
                for d, v in coverage.items()
            ],
        )
    )

    # ---- metrics and claims ------------------------------------------------------------------
    result.metrics = {
        "by_depth": {str(n): s for n, s in stats.items()},
        "dilation_coverage": {str(d): v for d, v in coverage.items()},
    }
    n_lo, n_hi = depths[0], depths[-1]
    result.claim(
        "The theoretical RF of n stacked 3×3 convs is (2n+1)²: exactly the input pixels with a "
        "non-zero gradient of one output pixel.",
        all(s["support_pixels"] == s["theoretical_rf"] ** 2 for s in stats.values()),
        ", ".join(f"n={n}: {s['support_pixels']} pixels" for n, s in stats.items()),
    )
    slope = math.log(stats[n_hi]["rms_radius"] / stats[n_lo]["rms_radius"]) / math.log(n_hi / n_lo)
    result.claim(
        "The effective RF grows like sqrt(depth), not like depth: the rms radius of the gradient "
        f"energy from n={n_lo} to n={n_hi} grows with exponent 0.4-0.6 (the theoretical RF: 1).",
        0.4 <= slope <= 0.6,
        f"rms radius {stats[n_lo]['rms_radius']:.2f} -> {stats[n_hi]['rms_radius']:.2f}; "
        f"log-log slope {slope:.2f}",
    )
    s16 = stats[16]
    result.claim(
        "At 16 layers, 95% of the gradient energy lies in a box covering under 30% of the "
        "theoretical receptive field's area.",
        s16["area_fraction_95"] < 0.3,
        f"box {2 * s16['box_radius_95'] + 1}×{2 * s16['box_radius_95'] + 1} of 33×33 = "
        f"{100 * s16['area_fraction_95']:.0f}%",
    )
    grid, hdc = coverage[(2, 2, 2)], coverage[(1, 2, 3)]
    result.claim(
        "Dilations 2, 2, 2 leave holes (gridding): only (7/13)² ~ 29% of their 13×13 span "
        "reaches the output; dilations 1, 2, 3 span the same square and cover all of it.",
        abs(grid["covered_fraction"] - 49 / 169) < 1e-9
        and hdc["covered_fraction"] == 1.0
        and grid["reached_outside_span"] == 0
        and hdc["reached_outside_span"] == 0,
        f"2,2,2: {100 * grid['covered_fraction']:.1f}% covered; 1,2,3: "
        f"{100 * hdc['covered_fraction']:.1f}%",
    )
    return result
