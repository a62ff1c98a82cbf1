"""Detection metrics by hand: IoU, greedy NMS and (COCO) average precision, checked by brute force.

What it shows, measured on a synthetic detector (boxes are (x1, y1, x2, y2) in pixels):

- IoU = area(A ∩ B) / area(A ∪ B). The closed form (intersection of the two intervals on each
  axis) equals a brute-force count of pixels on a rasterised grid.
- Greedy non-maximum suppression (NMS): sort by score, keep the best box, drop every box whose
  IoU with it exceeds a threshold, repeat. A second, recursive formulation of the same rule
  ("a box survives unless a higher-scoring SURVIVOR overlaps it too much") keeps exactly the
  same boxes. Without NMS every duplicate detection of an object counts as a false positive
  (each ground-truth box can be matched once), so AP collapses; NMS restores it.
- Average precision: rank detections by score, match each to the best still-unmatched
  ground-truth box of its image with IoU >= t, and take the area under the precision-recall
  curve after making precision monotone ("interpolated": p(r) = max precision at recall >= r).
  The exact all-point area (PASCAL VOC 2010+) matches a brute-force Riemann sum of the
  interpolated curve on a grid of 100001 recall values, and COCO's 101-point version is within
  about a point of it.
- COCO's headline metric (called "AP": COCO makes no distinction between AP and mAP) averages
  AP over IoU thresholds 0.50, 0.55, ..., 0.95 and over classes (one class here). Two
  detectors that find the same objects with the same scores, one with loose boxes and one with
  tight ones, have nearly the same AP@0.5 but very different AP@[.5:.95]: the COCO metric
  rewards localisation, AP@0.5 hardly does.

Real libraries (torchvision.ops.box_iou / nms, pycocotools) add details left out here: per-class
evaluation, "crowd" and ignored regions, area ranges, a cap of 100 detections per image.

Run: dlprep demo detection-metrics
"""

from __future__ import annotations

import itertools

import torch

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = False

GRID = 64  # images are GRID x GRID pixels


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, 4) x (M, 4) boxes (x1, y1, x2, y2) -> (N, M) IoU."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])  # (N,)
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # (M,)
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])  # (N, M, 2)
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])  # (N, M, 2)
    wh = (bottom_right - top_left).clamp(min=0)  # empty overlap -> 0 width or height
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def raster_iou(a: list[int], b: list[int]) -> float:
    """IoU of two integer boxes by counting the pixels each covers (the brute-force reference)."""
    ys, xs = torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing="ij")

    def mask(box):
        x1, y1, x2, y2 = box
        return (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)

    ma, mb = mask(a), mask(b)
    return ((ma & mb).sum() / (ma | mb).sum()).item()


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """Greedy NMS: indices of the kept boxes, best first."""
    order = scores.argsort(descending=True)
    iou = box_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > threshold  # every box overlapping the kept one too much goes
    return keep


def nms_recursive(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """The same rule, stated recursively: a box is kept unless some higher-scoring box that is
    itself kept overlaps it by more than the threshold."""
    iou = box_iou(boxes, boxes).tolist()
    s = scores.tolist()
    memo: dict[int, bool] = {}

    def kept(i: int) -> bool:
        if i not in memo:
            memo[i] = not any(
                s[j] > s[i] and iou[i][j] > threshold and kept(j) for j in range(len(s))
            )
        return memo[i]

    return sorted((i for i in range(len(s)) if kept(i)), key=lambda i: -s[i])


def pr_curve(dets, gts, threshold: float) -> tuple[list[float], list[float]]:
    """Precision and recall after each detection, in descending score order.

    dets: list of (image, score, box); gts: list per image of (G, 4) boxes. Each detection is
    matched to the unmatched ground-truth box of its image with the highest IoU >= threshold.
    """
    n_gt = sum(len(g) for g in gts)
    used = [torch.zeros(len(g), dtype=torch.bool) for g in gts]
    tp = fp = 0
    precision, recall = [], []
    for image, _, box in sorted(dets, key=lambda d: -d[1]):
        iou = box_iou(box[None], gts[image])[0].cpu()  # (G,)
        iou[used[image]] = -1.0  # each ground-truth box can be matched only once
        best = int(iou.argmax()) if len(iou) else -1
        if best >= 0 and iou[best] >= threshold:
            used[image][best] = True
            tp += 1
        else:
            fp += 1  # a miss, or a DUPLICATE of an object that is already matched
        precision.append(tp / (tp + fp))
        recall.append(tp / n_gt)
    return precision, recall


def ap_all_points(precision: list[float], recall: list[float]) -> float:
    """Exact area under the interpolated PR curve (PASCAL VOC 2010+ 'all points')."""
    p = [0.0] + precision + [0.0]
    r = [0.0] + recall + [recall[-1] if recall else 0.0]
    for i in range(len(p) - 2, -1, -1):  # envelope: precision made non-increasing in recall
        p[i] = max(p[i], p[i + 1])
    return sum((r[i + 1] - r[i]) * p[i + 1] for i in range(len(r) - 1))


def interpolated(precision: list[float], recall: list[float], r: torch.Tensor) -> torch.Tensor:
    """p_interp(r) = max precision over ranks whose recall is >= r (0 where none is)."""
    p = torch.tensor(precision, dtype=torch.float64)
    rec = torch.tensor(recall, dtype=torch.float64)
    reached = rec[None, :] >= r[:, None]  # (R, D)
    return torch.where(reached, p[None, :], torch.zeros(())).max(dim=1).values


def ap_brute_force(precision, recall, n: int = 100001) -> float:
    """Riemann sum of the interpolated curve on n recall values in [0, 1]."""
    r = torch.linspace(0, 1, n, dtype=torch.float64)
    out = torch.cat([interpolated(precision, recall, chunk) for chunk in r.split(5000)])
    return out.mean().item()


def ap_coco(precision, recall) -> float:
    """COCO: the mean of the interpolated precision at recall 0, 0.01, ..., 1 (101 points)."""
    r = torch.linspace(0, 1, 101, dtype=torch.float64)
    return interpolated(precision, recall, r).mean().item()


def jitter(box: torch.Tensor, sigma: float, g: torch.Generator) -> torch.Tensor:
    """Move each edge by sigma * (box size) * N(0, 1): a detector's localisation error."""
    w, h = box[2] - box[0], box[3] - box[1]
    noise = torch.randn(4, generator=g) * sigma * torch.stack([w, h, w, h])
    out = box + noise
    return torch.stack(
        [
            out[0],
            out[1],
            torch.maximum(out[2], out[0] + 1),
            torch.maximum(out[3], out[1] + 1),
        ]
    )


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    # ---- 1. IoU: closed form vs counting pixels ---------------------------------------------
    pairs = ctx.pick(100, 400)
    errors = []
    for _ in range(pairs):
        a = sorted(torch.randint(0, GRID, (2,), generator=g).tolist())
        b = sorted(torch.randint(0, GRID, (2,), generator=g).tolist())
        c = sorted(torch.randint(0, GRID, (2,), generator=g).tolist())
        d = sorted(torch.randint(0, GRID, (2,), generator=g).tolist())
        box_a = [
            a[0],
            c[0],
            a[1] + 1,
            c[1] + 1,
        ]  # integer boxes of width and height >= 1
        box_b = [b[0], d[0], b[1] + 1, d[1] + 1]
        closed = box_iou(torch.tensor([box_a], device=device).float(),
                         torch.tensor([box_b], device=device).float()).item()  # fmt: skip
        errors.append(abs(closed - raster_iou(box_a, box_b)))
    result.claim(
        "IoU = |A ∩ B| / |A ∪ B|: the closed form from the boxes' corners equals a pixel count "
        "of the intersection and union.",
        max(errors) < 1e-5,
        f"{pairs} random box pairs, max |closed form - pixel count| = {max(errors):.1e}",
    )

    # ---- a synthetic data set and a detector ----------------------------------------------
    n_images = ctx.pick(30, 100)
    gts, clean = (
        [],
        [],
    )  # clean: one detection per found object, before localisation error
    is_object = []  # True for a detection of a real object, False for a false alarm
    for image in range(n_images):
        n_obj = int(torch.randint(2, 6, (1,), generator=g))
        xy = torch.rand(n_obj, 2, generator=g) * (GRID - 20)
        wh = 8 + torch.rand(n_obj, 2, generator=g) * 12
        boxes = torch.cat([xy, xy + wh], dim=1)  # (n_obj, 4)
        gts.append(boxes.to(device))
        for k in range(n_obj):
            if torch.rand(1, generator=g) < 0.9:  # the detector finds 90% of the objects
                score = 0.4 + 0.6 * torch.rand(1, generator=g).item()
                clean.append((image, score, boxes[k]))
                is_object.append(True)
        for _ in range(2):  # and makes 2 false alarms per image, mostly with lower scores
            xy = torch.rand(2, generator=g) * (GRID - 20)
            box = torch.cat([xy, xy + 8 + torch.rand(2, generator=g) * 12])
            clean.append((image, 0.7 * torch.rand(1, generator=g).item(), box))
            is_object.append(False)

    def detector(sigma: float, seed: int):
        gj = torch.Generator().manual_seed(seed)
        return [(i, s, jitter(b, sigma, gj).to(device)) for i, s, b in clean]

    thresholds = [0.5 + 0.05 * k for k in range(10)]
    tight, loose = detector(0.04, ctx.seed + 1), detector(0.12, ctx.seed + 1)

    # ---- 2. AP three ways -----------------------------------------------------------------
    prec, rec = pr_curve(tight, gts, 0.5)
    ap_exact, ap_grid, ap_101 = (
        ap_all_points(prec, rec),
        ap_brute_force(prec, rec),
        ap_coco(prec, rec),
    )
    result.claim(
        "All-point AP (the exact area under the interpolated precision-recall curve) equals a "
        "brute-force Riemann sum of that curve; COCO's 101-point AP is within 0.01 of it.",
        abs(ap_exact - ap_grid) < 1e-4 and abs(ap_exact - ap_101) < 0.01,
        f"AP@0.5: all-point {ap_exact:.5f}, Riemann sum (100001 points) {ap_grid:.5f}, "
        f"101-point {ap_101:.5f}",
    )

    # ---- 3. NMS -------------------------------------------------------------------------------
    # the raw output of a dense detector: every object fires 4 overlapping boxes
    gd = torch.Generator().manual_seed(ctx.seed + 2)
    raw = []
    for (image, score, box), real in zip(tight, is_object, strict=True):
        raw.append((image, score, box))
        if real:  # a found object fires 3 more, lower-scored boxes around it
            for _ in range(3):
                raw.append((image, score * (0.7 + 0.25 * torch.rand(1, generator=gd).item()),
                            jitter(box.cpu(), 0.06, gd).to(device)))  # fmt: skip
    after, same_as_recursive = [], True
    for image in range(n_images):
        mine = [d for d in raw if d[0] == image]
        boxes = torch.stack([d[2] for d in mine])
        scores = torch.tensor([d[1] for d in mine], device=device)
        keep = nms(boxes, scores, 0.5)
        same_as_recursive &= keep == nms_recursive(boxes, scores, 0.5)
        after += [mine[i] for i in keep]
    result.claim(
        "Greedy NMS (keep the best box, drop its overlaps above IoU 0.5, repeat) keeps exactly "
        "the boxes of the recursive definition: a box survives unless a higher-scoring survivor "
        "overlaps it by more than the threshold.",
        same_as_recursive,
        f"{n_images} images, {len(raw)} raw boxes -> {len(after)} kept; identical: "
        f"{same_as_recursive}",
    )
    ap_raw = ap_all_points(*pr_curve(raw, gts, 0.5))
    ap_nms = ap_all_points(*pr_curve(after, gts, 0.5))
    result.claim(
        "Without NMS the duplicates count as false positives (a ground-truth box is matched "
        "once) and AP@0.5 drops by more than 0.2; after NMS it is back within 0.1 of the "
        "duplicate-free detector.",
        ap_raw < ap_exact - 0.2 and abs(ap_nms - ap_exact) < 0.1,
        f"AP@0.5: raw {ap_raw:.3f}, after NMS {ap_nms:.3f}, without duplicates {ap_exact:.3f}",
    )

    # ---- 4. AP@0.5 vs COCO AP@[.5:.95] ------------------------------------------------------
    ap_t = [ap_all_points(*pr_curve(tight, gts, t)) for t in thresholds]
    ap_l = [ap_all_points(*pr_curve(loose, gts, t)) for t in thresholds]
    coco_t, coco_l = sum(ap_t) / 10, sum(ap_l) / 10
    result.tables.append(
        Table(
            "AP at each IoU threshold (one class, all-point interpolation)",
            [
                "IoU threshold",
                "tight boxes (edge error 4%)",
                "loose boxes (edge error 12%)",
            ],
            [
                [f"{t:.2f}", round(a, 3), round(b, 3)]
                for t, a, b in zip(thresholds, ap_t, ap_l, strict=True)
            ]
            + [["mean = COCO AP", round(coco_t, 3), round(coco_l, 3)]],
        )
    )
    monotone = all(x >= y - 0.02 for seq in (ap_t, ap_l) for x, y in itertools.pairwise(seq))
    result.claim(
        "AP falls as the IoU threshold rises (a box good enough at 0.9 is good enough at 0.5).",
        monotone and ap_t[-1] < ap_t[0] and ap_l[-1] < ap_l[0],
        f"tight: {ap_t[0]:.3f} at 0.50 -> {ap_t[-1]:.3f} at 0.95; loose: {ap_l[0]:.3f} -> "
        f"{ap_l[-1]:.3f}",
    )
    result.claim(
        "Same detections, tighter boxes: AP@0.5 barely changes (< 0.1) but COCO AP@[.5:.95] "
        "rises by more than 0.2. AP@0.5 hardly measures localisation; the COCO metric does.",
        abs(ap_t[0] - ap_l[0]) < 0.1 and coco_t > coco_l + 0.2,
        f"AP@0.5: tight {ap_t[0]:.3f}, loose {ap_l[0]:.3f}; AP@[.5:.95]: tight {coco_t:.3f}, "
        f"loose {coco_l:.3f}",
    )
    result.metrics = {
        "ap50_all_points": ap_exact,
        "ap50_riemann": ap_grid,
        "ap50_coco_101": ap_101,
        "ap50_raw_duplicates": ap_raw,
        "ap50_after_nms": ap_nms,
        "coco_ap_tight": coco_t,
        "coco_ap_loose": coco_l,
        "ap_by_threshold_tight": ap_t,
        "ap_by_threshold_loose": ap_l,
    }
    result.notes.append(
        "VOC 2007 used an 11-point interpolation (recall 0, 0.1, ..., 1); VOC 2010+ the exact "
        "all-point area; COCO 101 points. The numbers differ slightly between the three, so "
        "always say which AP you quote."
    )
    return result
