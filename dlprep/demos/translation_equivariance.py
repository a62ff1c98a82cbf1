"""Convolution is shift-equivariant, not invariant; padding, stride and the head decide the rest.

What it shows, measured on random weights (float64, so "exact" means to rounding):

- Equivariance: a stride-1 convolution commutes with shifts, conv(shift(x)) = shift(conv(x)).
  With circular padding this is exact everywhere; with zero padding it holds in the interior
  and fails within a kernel radius of the border (zero padding tells the network where the
  border is, which is one way CNNs learn absolute position: Islam, Jia & Bruce 2020, "How
  Much Position Information Do Convolutional Neural Networks Encode?", arXiv 2001.08248).
- Stride breaks it: a stride-2 layer is equivariant only to shifts by multiples of 2 (a shift
  by 2 moves its output by 1); after a 1-pixel shift no shift of the output matches the old
  one. Azulay & Weiss (JMLR 2019, arXiv 1805.12177) show trained CNNs' outputs change a lot
  under 1-pixel shifts for this reason (subsampling ignores the sampling theorem).
- Invariance comes from the head: global average pooling of an equivariant feature map is
  exactly invariant to circular shifts, while a flatten + fully connected head is not
  invariant at all. With stride-2 layers in the body, GAP features change under 1-pixel shifts.
- Anti-aliasing (Zhang 2019, "Making Convolutional Networks Shift-Invariant Again", arXiv
  1904.11486): blurring before subsampling (max with stride 1, then a [1, 2, 1]² blur with
  stride 2: "BlurPool") reduces that change, but does not remove it.

The inputs are white noise, the worst case for aliasing (all frequencies present): a 1-pixel
shift moves a stride-2 layer's output about as far as a different noise image does. On smooth
natural images the change is smaller, but Azulay & Weiss measure it on trained ImageNet CNNs.

So "CNNs are translation invariant" is wrong as stated: convolution is equivariant, pooling
gives at most local, approximate invariance, and stride-based downsampling breaks even the
equivariance. (See also `dlprep demo pooling` for max pooling's local invariance.)

Run: dlprep demo translation-equivariance
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Circular shift of the last two (spatial) dims: nothing falls off the edge."""
    return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


class BlurPool(nn.Module):
    """Zhang 2019: max over 2×2 windows at stride 1, then a [1,2,1]² blur subsampled by 2."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
        kernel = (k[:, None] * k[None, :]) / 16  # (3, 3), sums to 1
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone())
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.pad(x, (0, 1, 0, 1), mode="circular"), 2, stride=1)
        x = F.pad(x, (1, 1, 1, 1), mode="circular")
        return F.conv2d(x, self.kernel, stride=2, groups=self.channels)


def body(downsample: str, channels: int) -> nn.Sequential:
    """Three circular 3×3 conv + ReLU stages; after each, nothing, 2×2 max pool or BlurPool."""
    layers: list[nn.Module] = []
    c_in = 3
    for _ in range(3):
        layers += [nn.Conv2d(c_in, channels, 3, padding=1, padding_mode="circular"), nn.ReLU()]
        if downsample == "max pool":
            layers.append(nn.MaxPool2d(2))
        elif downsample == "blur pool":
            layers.append(BlurPool(channels))
        c_in = channels
    return nn.Sequential(*layers)


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    dt = torch.float64
    result = DemoResult()
    n, size = ctx.pick(8, 32), 32
    x = torch.randn(n, 3, size, size, generator=g, dtype=dt).to(device)  # (N, 3, H, W)
    shifts = [(1, 0), (0, 1), (3, -2), (5, 7)]

    # ---- 1. a stride-1 convolution commutes with shifts -----------------------------------------
    circ = nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular").to(device, dt)
    zero = nn.Conv2d(3, 8, 3, padding=1).to(device, dt)
    with torch.no_grad():
        zero.load_state_dict(circ.state_dict())
        circ_err = max(rel(circ(shift(x, *s)), shift(circ(x), *s)) for s in shifts)
        # zero padding: compare away from the border (1 pixel of kernel radius + the shift)
        dy, dx = 3, 2
        a, b = zero(shift(x, dy, dx)), shift(zero(x), dy, dx)  # (N, 8, H, W)
        band = torch.zeros(size, size, dtype=torch.bool, device=device)
        for r in (0, size - 1, dy - 1, dy, dy + 1):  # rows near the image border or the seam
            band[r % size, :] = True
        for col in (0, size - 1, dx - 1, dx, dx + 1):
            band[:, col % size] = True
        interior_err = (a - b)[..., ~band].abs().max().item()
        border_err = (a - b)[..., band].abs().max().item()

    # ---- 2. stride 2: equivariant only to even shifts --------------------------------------------
    strided = nn.Conv2d(3, 8, 3, stride=2, padding=1, padding_mode="circular").to(device, dt)
    with torch.no_grad():
        y = strided(x)  # (N, 8, 16, 16)
        even_err = rel(strided(shift(x, 2, 2)), shift(y, 1, 1))
        y_odd = strided(shift(x, 1, 0))
        # the best any shift of the old output can do at matching the new one
        odd_best = min(rel(y_odd, shift(y, i, j)) for i in range(-2, 3) for j in range(-2, 3))
        y_other = strided(torch.randn(x.shape, generator=g, dtype=dt).to(device))
        unrelated = rel(y_other, y)

    # ---- 3. the head: flatten + FC vs global average pooling, and what downsampling does -------
    channels = 16
    rows, change = [], {}
    for downsample in ("none", "max pool", "blur pool"):
        torch.manual_seed(ctx.seed)  # the same conv weights for the three bodies
        net = body(downsample, channels).to(device, dt)
        with torch.no_grad():
            f, f1 = net(x), net(shift(x, 1, 1))  # (N, 16, h, w)
            f_other = net(torch.randn(x.shape, generator=g, dtype=dt).to(device))
            gap, gap1, gap_other = f.mean((2, 3)), f1.mean((2, 3)), f_other.mean((2, 3))
            # per-image relative change of the GAP features, averaged over the batch
            change[downsample] = {
                "gap_1px": ((gap1 - gap).norm(dim=1) / gap.norm(dim=1)).mean().item(),
                "gap_other_image": ((gap_other - gap).norm(dim=1) / gap.norm(dim=1)).mean().item(),
                "flatten_1px": ((f1 - f).flatten(1).norm(dim=1) / f.flatten(1).norm(dim=1))
                .mean()
                .item(),
            }
            if downsample != "none":
                total_stride = size // f.shape[-1]
                f8 = net(shift(x, total_stride, total_stride))
                change[downsample]["gap_stride_shift"] = rel(f8.mean((2, 3)), gap)
        c = change[downsample]
        rows.append(
            [
                downsample,
                f"{c['flatten_1px']:.3f}",
                f"{c['gap_1px']:.2e}",
                f"{c['gap_other_image']:.3f}",
                f"{c.get('gap_stride_shift', 0.0):.1e}",
            ]
        )

    result.tables.append(
        Table(
            "A single conv layer (random weights, float64): relative error of "
            "conv(shift x) vs shift(conv x)",
            ["layer", "compared", "error"],
            [
                ["3×3, stride 1, circular padding", "everywhere", f"{circ_err:.1e}"],
                ["3×3, stride 1, zero padding", "interior", f"{interior_err:.1e}"],
                ["3×3, stride 1, zero padding", "border band", f"{border_err:.2f} (abs)"],
                ["3×3, stride 2", "shift by 2 vs output shifted by 1", f"{even_err:.1e}"],
                ["3×3, stride 2", "shift by 1 vs best output shift", f"{odd_best:.2f}"],
                ["3×3, stride 2", "an unrelated image", f"{unrelated:.2f}"],
            ],
        )
    )
    result.tables.append(
        Table(
            "Three conv stages (circular padding) then a head: relative change of the features "
            "when the image is shifted by 1 pixel (mean over the batch)",
            [
                "downsampling after each stage",
                "flattened map",
                "GAP",
                "GAP, unrelated image",
                "GAP, shift by total stride",
            ],
            rows,
        )
    )

    # ---- metrics and claims ------------------------------------------------------------------
    result.metrics = {
        "circular_conv_equivariance_error": circ_err,
        "zero_pad_interior_error": interior_err,
        "zero_pad_border_error": border_err,
        "stride2_even_shift_error": even_err,
        "stride2_odd_shift_best_error": odd_best,
        "stride2_unrelated_image": unrelated,
        "feature_change": change,
    }
    result.claim(
        "A stride-1 convolution is translation-equivariant: conv(shift x) = shift(conv x) "
        "exactly with circular padding, and with zero padding everywhere except near the border.",
        circ_err < 1e-12 and interior_err < 1e-12 and border_err > 1e-3,
        f"circular {circ_err:.1e}; zero padding: interior {interior_err:.1e}, border band "
        f"{border_err:.2f}",
    )
    result.claim(
        "A stride-2 conv is equivariant only to even shifts: shifting the input by 2 shifts the "
        "output by 1, but after a 1-pixel shift no shift of the output matches (relative error "
        "> 0.3; the detail compares an unrelated image).",
        even_err < 1e-12 and odd_best > 0.3,
        f"even shift {even_err:.1e}; odd shift, best match {odd_best:.2f}; unrelated image "
        f"{unrelated:.2f}",
    )
    none, mp, bp = change["none"], change["max pool"], change["blur pool"]
    result.claim(
        "Invariance comes from the head: without downsampling, GAP features are exactly "
        "invariant to a 1-pixel shift, while the flattened map (what an FC head sees) changes "
        "by more than half its norm.",
        none["gap_1px"] < 1e-12 and none["flatten_1px"] > 0.5,
        f"GAP {none['gap_1px']:.1e}; flattened {none['flatten_1px']:.2f}",
    )
    result.claim(
        "With max-pool downsampling a 1-pixel shift moves the GAP features at least half as far "
        "as replacing the image by another noise image; they are invariant only to shifts by "
        "the total stride (8).",
        mp["gap_1px"] > 0.5 * mp["gap_other_image"] and mp["gap_stride_shift"] < 1e-12,
        f"1-pixel shift {mp['gap_1px']:.3f}, unrelated image {mp['gap_other_image']:.3f}, "
        f"shift by 8 {mp['gap_stride_shift']:.1e}",
    )
    result.claim(
        "Blurring before subsampling (BlurPool) reduces the 1-pixel change at least 1.5x but "
        "does not remove it.",
        bp["gap_1px"] * 1.5 <= mp["gap_1px"] and bp["gap_1px"] > 1e-6,
        f"max pool {mp['gap_1px']:.4f}, blur pool {bp['gap_1px']:.4f}",
    )
    return result
