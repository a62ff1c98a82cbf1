"""Pixel accuracy vs mIoU vs Dice on imbalanced masks, and soft Dice loss vs cross-entropy.

What it shows, measured, on synthetic masks:

- Dice and IoU of one prediction are tied: Dice = 2|A n B| / (|A| + |B|), IoU (Jaccard) =
  |A n B| / |A u B|, so Dice = 2 IoU / (1 + IoU) exactly, and Dice >= IoU. Checked on random
  mask pairs.
- Pixel accuracy is dominated by the largest class. On scenes that are ~90% background, a
  "model" that predicts background everywhere scores ~90% pixel accuracy, higher than a
  prediction that finds every object but also marks some background pixels wrongly. Mean IoU
  over classes (TP / (TP + FP + FN) per class, accumulated over the data set, then averaged:
  the semantic-segmentation standard) ranks them the right way round.
- Averages do not inherit the per-mask tie: the mean of per-image Dice is not
  2 mIoU / (1 + mIoU). The map is concave, so by Jensen's inequality mean Dice <= that, with
  equality only when every image has the same IoU; and two methods
  can be ranked differently by mean IoU and by mean Dice (one that is perfect on half the
  images and misses the rest vs one that is mediocre everywhere). Say which average you
  report, per image or pooled over the data set.
- Training with ~2% foreground pixels: a small conv net trained with unweighted per-pixel
  binary cross-entropy first learns the prior (its mean predicted probability matches the
  foreground fraction) and predicts no foreground at threshold 0.5 for the first ~100 steps;
  the soft Dice loss 1 - 2 sum(p m) / (sum p + sum m) (V-Net, Milletari et al. 2016, arXiv
  1606.04797, used squares, sum p^2 + sum m^2, in the denominator; the form here is the
  common variant, with +1 smoothing in the code) is a ratio, so it is not swamped by the
  many easy background pixels and reaches a useful Dice almost at once. What really happens
  with more steps: cross-entropy catches up (the full run shows the curves), which is why
  Dice + CE is a common default; Dice loss mainly fixes the early, prior-dominated phase and
  the threshold problem, it is not a better objective in every respect (its probabilities
  are poorly calibrated).

Run: dlprep demo segmentation-metrics
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True


def disks(n: int, side: int, r_lo: float, r_hi: float, g: torch.Generator):
    """(n, side, side) bool masks, one disk each at a random centre and radius; also the
    centres (n, 2) and radii (n,)."""
    pix = torch.arange(side, dtype=torch.float64) + 0.5
    yy, xx = torch.meshgrid(pix, pix, indexing="ij")
    r = r_lo + (r_hi - r_lo) * torch.rand(n, generator=g, dtype=torch.float64)
    c = r[:, None] + 1 + (side - 2 * r[:, None] - 2) * torch.rand(n, 2, generator=g)
    masks = (xx - c[:, 0, None, None]) ** 2 + (yy - c[:, 1, None, None]) ** 2 <= r[
        :, None, None
    ] ** 2
    return masks, c, r


def iou_dice(pred: torch.Tensor, true: torch.Tensor):
    """Per-image IoU and Dice of bool masks (n, H, W) -> two (n,) float64 tensors."""
    inter = (pred & true).sum((1, 2)).double()
    sizes = pred.sum((1, 2)).double() + true.sum((1, 2)).double()
    return inter / (sizes - inter), 2 * inter / sizes


def class_scores(pred: torch.Tensor, true: torch.Tensor, n_classes: int):
    """Pixel accuracy, per-class IoU and Dice accumulated over the whole data set."""
    acc = (pred == true).double().mean().item()
    ious, dices = [], []
    for k in range(n_classes):
        p, t = pred == k, true == k
        tp = (p & t).sum().item()
        fp, fn = (p & ~t).sum().item(), (~p & t).sum().item()
        ious.append(tp / (tp + fp + fn))
        dices.append(2 * tp / (2 * tp + fp + fn))
    return acc, ious, dices


def seg_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 1, 3, padding=1),
    )  # fmt: skip


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    # ---- 1. Dice = 2 IoU / (1 + IoU) for every single mask pair ----------------------------
    a, _, _ = disks(200, 32, 3, 12, g)
    b, _, _ = disks(200, 32, 3, 12, g)
    iou, dice = iou_dice(a.to(device), b.to(device))
    identity_err = (dice - 2 * iou / (1 + iou)).abs().max().item()
    dice_ge_iou = bool((dice >= iou - 1e-12).all())

    # ---- 2. pixel accuracy vs mIoU on scenes that are ~90% background ----------------------
    n_img, side = 32, 64
    large, _, _ = disks(n_img, side, 9, 13, g)  # class 1: one large object, ~7% of pixels
    small, _, _ = disks(n_img, side, 3, 5, g)  # class 2: one small object, ~1.5%
    labels = torch.zeros(n_img, side, side, dtype=torch.long)
    labels[large] = 1
    labels[small] = 2  # (small drawn on top where they overlap)
    labels = labels.to(device)
    all_bg = torch.zeros_like(labels)  # "predict background everywhere"
    flip = torch.rand(n_img, side, side, generator=g).to(device) < 0.15
    noisy = labels.clone()  # finds every object, but marks 15% of background as objects
    wrong = flip & (labels == 0)
    noisy[wrong] = torch.randint(1, 3, (n_img, side, side), generator=g).to(device)[wrong]
    scores = {
        "all background": class_scores(all_bg, labels, 3),
        "objects found, 15% of background mislabelled": class_scores(noisy, labels, 3),
    }
    fg_frac = (labels > 0).double().mean().item()
    rows = []
    for name, (acc, ious, dices) in scores.items():
        rows.append([name, f"{acc:.3f}", *(f"{v:.3f}" for v in ious),
                     f"{sum(ious) / 3:.3f}", f"{sum(dices) / 3:.3f}"])  # fmt: skip
    result.tables.append(
        Table(
            f"{n_img} scenes {side}x{side}: background {1 - fg_frac:.0%}, one large and one "
            "small object (IoU per class accumulated over the data set)",
            ["prediction", "pixel acc", "IoU bg", "IoU large", "IoU small", "mIoU", "mean Dice"],
            rows,
        )
    )
    (acc_bg, iou_bg, _), (acc_noisy, iou_noisy, _) = scores.values()
    miou_bg, miou_noisy = sum(iou_bg) / 3, sum(iou_noisy) / 3

    # ---- 3. averages over images: mean Dice vs mean IoU can rank methods differently -------
    n_avg = 40
    truth, centres, radii = disks(n_avg, 48, 6, 9, g)
    pix = torch.arange(48, dtype=torch.float64) + 0.5
    yy, xx = torch.meshgrid(pix, pix, indexing="ij")

    def disk_at(cx, cy, r):  # (n, 48, 48) disks at the given centres and radii
        return (xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2 <= r[
            :, None, None
        ] ** 2

    cx, cy = centres[:, 0], centres[:, 1]
    # method A: exact on half the images, and on the other half a disk somewhere else
    half = torch.arange(n_avg) % 2 == 0
    far = torch.where(cx > 24, cx - 2.2 * radii, cx + 2.2 * radii)  # no overlap at all
    pred_a = disk_at(torch.where(half, cx, far), cy, radii)
    # method B: every prediction shifted sideways by 0.6 radius (IoU ~0.45 each)
    pred_b = disk_at(cx + 0.6 * radii, cy, radii)
    iou_a, dice_a = iou_dice(pred_a.to(device), truth.to(device))
    iou_b, dice_b = iou_dice(pred_b.to(device), truth.to(device))
    m = {
        "A (perfect or missed)": (iou_a.mean().item(), dice_a.mean().item()),
        "B (mediocre everywhere)": (iou_b.mean().item(), dice_b.mean().item()),
    }
    result.tables.append(
        Table(
            f"Per-image averages over {n_avg} binary masks",
            ["method", "mean IoU", "mean Dice", "2 mIoU / (1 + mIoU)"],
            [[k, f"{i:.3f}", f"{d:.3f}", f"{2 * i / (1 + i):.3f}"] for k, (i, d) in m.items()],
        )
    )
    (ia, da), (ib, db) = m.values()
    jensen_gap = 2 * ia / (1 + ia) - da  # > 0 when the per-image IoUs differ (concave map)

    # ---- 4. training with 2% foreground: soft Dice loss vs cross-entropy --------------------
    def seg_data(n: int):  # noisy images of one small bright disk, and its mask
        masks, _, _ = disks(n, 24, 1.2, 2.5, g)
        x = masks.float() + 0.8 * torch.randn(n, 24, 24, generator=g)
        return x[:, None].to(device), masks[:, None].float().to(device)  # (n, 1, 24, 24)

    x_tr, m_tr = seg_data(512)
    x_te, m_te = seg_data(256)
    fg_pixels = m_tr.mean().item()
    steps, every, k_claim = ctx.pick(100, 400), 25, 100
    curves, at_k, mean_prob = {}, {}, {}
    for loss_name in ("cross-entropy", "soft Dice"):
        torch.manual_seed(ctx.seed)  # the same initial weights and batches for both
        batch_g = torch.Generator().manual_seed(ctx.seed + 1)
        model = seg_net().to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        curve = []
        for step in range(1, steps + 1):
            idx = torch.randint(0, 512, (32,), generator=batch_g).to(device)
            logits, m_b = model(x_tr[idx]), m_tr[idx]  # (32, 1, 24, 24)
            if loss_name == "cross-entropy":
                loss = F.binary_cross_entropy_with_logits(logits, m_b)
            else:
                p = torch.sigmoid(logits)
                loss = 1 - (2 * (p * m_b).sum() + 1) / (p.sum() + m_b.sum() + 1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % every == 0:
                with torch.no_grad():
                    p_te = torch.sigmoid(model(x_te))
                    pred = p_te > 0.5
                    d = 2 * (pred * m_te).sum() / (pred.sum() + m_te.sum())
                    curve.append(d.item())
                if step == k_claim:
                    at_k[loss_name] = curve[-1]
                    mean_prob[loss_name] = p_te.mean().item()
        curves[loss_name] = curve
    result.curves.append(
        Curve(
            f"Test Dice (threshold 0.5) every {every} steps, {fg_pixels:.1%} foreground pixels",
            "step",
            {f"{k} loss": v for k, v in curves.items()},
        )
    )

    result.metrics = {
        "dice_identity_max_error": identity_err,
        "pixel_accuracy": {"all_background": acc_bg, "noisy": acc_noisy},
        "miou": {"all_background": miou_bg, "noisy": miou_noisy},
        "per_image_means": {k: {"iou": i, "dice": d} for k, (i, d) in m.items()},
        "foreground_fraction_train": fg_pixels,
        f"test_dice_at_step_{k_claim}": at_k,
        f"mean_predicted_prob_at_step_{k_claim}": mean_prob,
        "final_test_dice": {k: v[-1] for k, v in curves.items()},
    }
    result.claim(
        "For any single prediction, Dice = 2 IoU / (1 + IoU) and Dice >= IoU.",
        identity_err < 1e-12 and dice_ge_iou,
        f"max |Dice - 2J/(1+J)| over 200 random mask pairs: {identity_err:.1e}",
    )
    result.claim(
        "Pixel accuracy rewards predicting the majority class: 'background everywhere' beats "
        "a prediction that finds every object, while mIoU ranks them the other way by a wide "
        "margin (>= 0.15).",
        acc_bg > acc_noisy and miou_noisy >= miou_bg + 0.15,
        f"all background: accuracy {acc_bg:.3f}, mIoU {miou_bg:.3f}; objects found: accuracy "
        f"{acc_noisy:.3f}, mIoU {miou_noisy:.3f}",
    )
    result.claim(
        "Averaged over images, mean IoU and mean Dice can rank two methods in opposite "
        "orders, and mean Dice falls below 2 mIoU / (1 + mIoU) when the per-image IoUs vary "
        "(Jensen: the map is concave).",
        ia > ib and db > da and jensen_gap > 0.05,
        f"A: mean IoU {ia:.3f}, mean Dice {da:.3f}; B: mean IoU {ib:.3f}, mean Dice {db:.3f}; "
        f"A: 2 mIoU/(1 + mIoU) - mean Dice = {jensen_gap:.3f}",
    )
    ce_k, dice_k = at_k["cross-entropy"], at_k["soft Dice"]
    result.claim(
        f"With {fg_pixels:.0%} foreground, after {k_claim} steps the soft-Dice-trained net "
        "segments the objects (test Dice >= 0.5) while the cross-entropy net lags far behind "
        "(>= 0.2 lower), still dominated by the background prior.",
        dice_k >= 0.5 and dice_k - ce_k >= 0.2,
        f"test Dice at threshold 0.5: soft Dice loss {dice_k:.3f}, cross-entropy {ce_k:.3f}",
    )
    result.claim(
        "The cross-entropy net is not broken but calibrated to the prior: its mean predicted "
        "foreground probability is within a factor 1.5 of the true foreground fraction.",
        fg_pixels / 1.5 <= mean_prob["cross-entropy"] <= 1.5 * fg_pixels,
        f"mean p (cross-entropy) {mean_prob['cross-entropy']:.4f}, foreground fraction "
        f"{fg_pixels:.4f}",
    )
    result.notes.append(
        f"Cross-entropy catches up with more training (test Dice after {steps} steps: "
        + ", ".join(f"{k} {v[-1]:.3f}" for k, v in curves.items())
        + ("; the full run trains 400 steps" if ctx.quick else "")
        + "). Dice + CE is a common default for this reason."
    )
    return result
