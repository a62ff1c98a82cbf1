"""Keypoints by Gaussian heatmaps (argmax / soft-argmax) vs direct coordinate regression.

What it shows, measured. The task: find one keypoint, a faint Gaussian blob at a random
sub-pixel position in a noisy 32x32 image. Three heads on the same small conv trunk (three
3x3 convolutions of 8 channels, one of them stride 2, so its feature map is 16x16):

- Heatmap regression (as in the pose estimators of Tompson et al. 2014, Newell et al. 2016,
  Xiao et al. 2018 and HRNet, Sun et al. 2019, arXiv 1902.09212): a 3x3 conv outputs one
  16x16 map, trained with MSE against a Gaussian centred on the true point. The keypoint is
  read at the peak. The head is convolutional, so every position is trained by every image:
  finding the blob is the same local pattern wherever it is.
- Direct regression from the flattened feature map (a linear layer to (x, y)): it must learn
  a separate weight for every position, so with the same data it is less accurate and
  generalises worse (a train/test gap); with more data and steps the gap narrows (full run).
- Direct regression from globally average-pooled features: pooling a translation-equivariant
  feature map throws position away, so it does no better than always guessing the mean
  position (zero padding at the borders could leak some absolute position; here it does not
  help measurably).

Decoding: the argmax of a heatmap is quantised to its grid (here a 2-pixel step at stride 2;
4 pixels at the usual stride 4), so the error has a floor of about 0.77 px even for a perfect
map. A local soft-argmax (the weighted mean of the 3x3 neighbourhood of the peak, one of the
sub-pixel fixes next to the quarter-offset shift and DARK) removes most of that floor. The
full soft-argmax over the whole map (integral regression, Sun et al. 2018) is differentiable
and can be trained end to end.

Run: dlprep demo heatmap-regression
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

SIDE, STRIDE = 32, 2
GRID = SIDE // STRIDE  # the 16 x 16 heatmap; cell j is centred on pixel STRIDE * j
WIDTH = 8  # trunk channels


def make_images(n: int, g: torch.Generator):
    """(n, 1, 32, 32) noisy images of one Gaussian blob (sigma 1.5 px) and its (x, y)."""
    xy = 3 + (SIDE - 7) * torch.rand(n, 2, generator=g)  # sub-pixel positions in [3, 28]
    pix = torch.arange(SIDE).float()
    gx = torch.exp(-((pix[None, :] - xy[:, :1]) ** 2) / (2 * 1.5**2))  # (n, 32)
    gy = torch.exp(-((pix[None, :] - xy[:, 1:]) ** 2) / (2 * 1.5**2))
    images = gy[:, :, None] * gx[:, None, :] + 0.3 * torch.randn(n, SIDE, SIDE, generator=g)
    return images[:, None], xy


def heatmap_target(xy: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """(n, 1, 16, 16) Gaussian heatmaps centred on the keypoints (sigma in pixels)."""
    centres = STRIDE * torch.arange(GRID, device=xy.device).float()
    gx = torch.exp(-((centres[None, :] - xy[:, :1]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((centres[None, :] - xy[:, 1:]) ** 2) / (2 * sigma**2))
    return (gy[:, :, None] * gx[:, None, :])[:, None]


def decode(heatmaps: torch.Tensor):
    """Argmax (on the grid) and local soft-argmax (3x3 around the peak) -> two (n, 2)."""
    n = heatmaps.shape[0]
    idx = heatmaps.reshape(n, -1).argmax(1)  # (n,)
    row, col = idx // GRID, idx % GRID
    argmax = STRIDE * torch.stack([col, row], 1).float()
    windows = F.unfold(heatmaps, 3, padding=1)  # (n, 9, 256): every cell's 3x3 neighbourhood
    w = (
        windows[torch.arange(n, device=heatmaps.device), :, idx].clamp(min=0).reshape(n, 3, 3)
    )  # (n, 3, 3) at peak
    off = torch.tensor([-1.0, 0.0, 1.0], device=heatmaps.device)
    total = w.sum((1, 2)).clamp(min=1e-12)
    dx = (w.sum(1) * off).sum(1) / total  # weighted mean column offset, in cells
    dy = (w.sum(2) * off).sum(1) / total
    soft = STRIDE * torch.stack([col + dx, row + dy], 1)
    return argmax, soft


def trunk() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, WIDTH, 3, padding=1), nn.ReLU(),
        nn.Conv2d(WIDTH, WIDTH, 3, stride=STRIDE, padding=1), nn.ReLU(),
        nn.Conv2d(WIDTH, WIDTH, 3, padding=1), nn.ReLU(),
    )  # fmt: skip


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    n_train, steps = ctx.pick(512, 2048), ctx.pick(200, 800)
    x_tr, xy_tr = make_images(n_train, g)
    x_te, xy_te = make_images(500, g)
    x_tr, xy_tr, x_te, xy_te = (t.to(device) for t in (x_tr, xy_tr, x_te, xy_te))

    heads = {
        "heatmap": lambda: nn.Conv2d(WIDTH, 1, 3, padding=1),  # (n, 1, 16, 16)
        "flatten + linear": lambda: nn.Sequential(nn.Flatten(), nn.Linear(WIDTH * GRID * GRID, 2)),
        "global avg pool + MLP": lambda: nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(WIDTH, 64), nn.ReLU(), nn.Linear(64, 2)
        ),
    }
    errors: dict[str, tuple[float, float]] = {}  # (train, test) mean distance in pixels

    def dist(pred, xy):
        return (pred - xy).norm(dim=1).mean().item()

    for name, make_head in heads.items():
        torch.manual_seed(ctx.seed)  # the same trunk initialisation for every head
        model = nn.Sequential(trunk(), make_head()).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        batch_g = torch.Generator().manual_seed(ctx.seed + 1)  # the same batches too
        for _ in range(steps):
            idx = torch.randint(0, n_train, (32,), generator=batch_g).to(device)
            out = model(x_tr[idx])
            if name == "heatmap":
                loss = 100 * F.mse_loss(out, heatmap_target(xy_tr[idx]))
            else:  # coordinates scaled to [-0.5, 0.5]
                loss = F.mse_loss(out, xy_tr[idx] / SIDE - 0.5)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            if name == "heatmap":
                am_tr, soft_tr = decode(model(x_tr[:500]))
                am_te, soft_te = decode(model(x_te))
                errors["heatmap, argmax"] = (dist(am_tr, xy_tr[:500]), dist(am_te, xy_te))
                errors["heatmap, local soft-argmax"] = (
                    dist(soft_tr, xy_tr[:500]),
                    dist(soft_te, xy_te),
                )
                perfect_am, _ = decode(heatmap_target(xy_te))  # decoding the ideal maps
                floor = dist(perfect_am, xy_te)
            else:
                pred_tr = (model(x_tr[:500]) + 0.5) * SIDE
                pred_te = (model(x_te) + 0.5) * SIDE
                errors[name] = (dist(pred_tr, xy_tr[:500]), dist(pred_te, xy_te))
    mean_guess = dist(xy_tr.mean(0, keepdim=True).expand_as(xy_te), xy_te)
    result.tables.append(
        Table(
            f"Mean localisation error (pixels) on a 32x32 image, {n_train} training images, "
            f"{steps} Adam steps; always guessing the mean position: {mean_guess:.2f} px",
            ["head", "train error", "test error"],
            [[k, f"{tr:.2f}", f"{te:.2f}"] for k, (tr, te) in errors.items()],
        )
    )

    soft, am = errors["heatmap, local soft-argmax"][1], errors["heatmap, argmax"][1]
    flat, gap = errors["flatten + linear"][1], errors["global avg pool + MLP"][1]
    result.metrics = {
        "test_error_px": {k: te for k, (_, te) in errors.items()},
        "train_error_px": {k: tr for k, (tr, _) in errors.items()},
        "argmax_floor_on_perfect_heatmaps_px": floor,
        "mean_position_guess_error_px": mean_guess,
    }
    result.claim(
        "With the same trunk, data and steps, heatmap regression (soft-argmax decoding) "
        "localises the keypoint at least 1.5x more accurately than regressing (x, y) from the "
        "flattened feature map.",
        flat >= 1.5 * soft,
        f"test error: heatmap {soft:.2f} px, flatten + linear {flat:.2f} px",
    )
    result.claim(
        "Regressing from globally pooled features can hardly localise at all: pooling a "
        "translation-equivariant map discards position (error >= 0.9x that of always "
        "guessing the mean position).",
        gap >= 0.9 * mean_guess,
        f"test error: global avg pool {gap:.2f} px, mean-position guess {mean_guess:.2f} px",
    )
    result.claim(
        f"Argmax decoding is quantised to the stride-{STRIDE} grid (its error is close to the "
        "floor it has even on perfect heatmaps); a local soft-argmax around the peak cuts the "
        "error by >= 1.3x.",
        am <= floor * 1.3 and am >= 1.3 * soft,
        f"argmax {am:.2f} px (floor on perfect maps {floor:.2f} px), local soft-argmax "
        f"{soft:.2f} px",
    )
    tr_flat, te_flat = errors["flatten + linear"]
    result.notes.append(
        f"Flatten + linear has a train/test gap ({tr_flat:.2f} vs {te_flat:.2f} px): it needs "
        "a weight per position, so it is data-hungry. "
        + (
            "With 4x the data and steps (the full run) it narrows the gap to the heatmap, "
            "but stays behind."
            if ctx.quick
            else "Compare with the quick run (4x less data and fewer steps)."
        )
    )
    return result
