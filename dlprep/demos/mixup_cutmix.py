"""Mixup and CutMix from scratch, then what mixup really does to accuracy and confidence.

What it shows:
- Mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization", arXiv 1710.09412):
  train on x = lam * x_i + (1 - lam) * x_j with the label lam * y_i + (1 - lam) * y_j,
  lam ~ Beta(alpha, alpha). alpha sets how much mixing: alpha = 1 draws lam uniformly,
  alpha = 0.2 (the paper's ImageNet range is 0.1-0.4) keeps most lam near 0 or 1. Because
  cross-entropy is linear in the target, the soft-label loss equals
  lam * CE(out, y_i) + (1 - lam) * CE(out, y_j), which is how most code writes it.
- CutMix (Yun et al. 2019, arXiv 1905.04899): paste a box from x_j into x_i, with side
  sqrt(1 - lam) times the image's and a uniformly random centre, clipped at the border; the
  label weight is the pixel fraction. Clipping (and integer box sizes) make the pasted area
  differ from the sampled 1 - lam, so the reference implementation recomputes
  lam = 1 - box area / image area afterwards. Measured here: with that correction the label
  weight equals the pasted pixel fraction exactly; without it the label is off by about 20
  percentage points on average (about 18 on 224x224 images: not a small-image artefact).
- An experiment on procedurally generated images (oriented gratings, 4 classes, 200
  training images, a small CNN), plain training vs mixup (alpha = 1), in two regimes: clean
  images (the task is easy) and noisy images (the network overfits its 200 examples).

What really happens (small scale, so only what holds over seeds is claimed):
- Mixup always lowers the model's confidence (mean max-probability on the test set), by a
  lot. Whether that is better calibration depends on the regime: where plain training is
  overconfident (noisy images) mixup's expected calibration error (ECE) is lower; where plain
  training is already well calibrated (clean images) mixup makes the model UNDERconfident
  and its ECE is worse. Mixup is a confidence penalty, not a calibration guarantee (Wang et
  al. 2023, "On the Pitfall of Mixup for Uncertainty Calibration", CVPR; Thulasidasan et al.
  2019 report the improvement on real data sets).
- Accuracy changes are small at this scale. Over seeds 0-9 mixup was 0-2 points lower on
  clean images and 0.5-6 points higher on noisy ones: too small against the seed-to-seed
  spread of a single run to claim. The accuracy gains in the papers come from large models
  trained for long on real data.

Run: dlprep demo mixup-cutmix
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table
from dlprep.demos._data import grating_images

STATISTICAL = True

SIDE = 16
N_CLASSES = 4


def gratings(n: int, noise: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n images (n, 1, 16, 16) of sinusoidal stripes; the class is the orientation (4 angles).

    Frequency, phase and contrast are random, then Gaussian pixel noise is added.
    """
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    angle = labels.float() * math.pi / N_CLASSES  # 0, 45, 90, 135 degrees
    freq = 1.5 + 2.0 * torch.rand(n, generator=g)  # cycles per image
    return grating_images(angle, freq, noise, g, SIDE), labels


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 8, 8, 8)
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, 4, 4)
        nn.Flatten(), nn.Linear(16 * 4 * 4, N_CLASSES),
    )  # fmt: skip


def cutmix_box(lam: float, g: torch.Generator) -> tuple[int, int, int, int]:
    """The reference CutMix box: side sqrt(1 - lam) of the image's, uniform centre, clipped."""
    cut = math.sqrt(1.0 - lam)
    cut_w, cut_h = int(SIDE * cut), int(SIDE * cut)
    cx, cy = (int(v) for v in torch.randint(0, SIDE, (2,), generator=g))
    x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, SIDE)
    y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, SIDE)
    return x1, x2, y1, y2


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10):
    """ECE: |accuracy - confidence| per confidence bin, weighted by the bin's share of samples."""
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == labels).float()
    ece = torch.zeros((), device=probs.device)
    for b in range(bins):
        in_bin = (confidence > b / bins) & (confidence <= (b + 1) / bins)
        if in_bin.any():
            gap = (confidence[in_bin].mean() - correct[in_bin].mean()).abs()
            ece = ece + in_bin.float().mean() * gap
    return ece.item()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    # ---- 1. mixup's lam ~ Beta(alpha, alpha): how much mixing does alpha give? -------------
    n_lam = 20_000
    beta_rows, beta_ok = [], True
    for alpha in (0.2, 1.0):
        dist = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha))
        lam = dist.sample((n_lam,))  # (n_lam,)
        middle = ((lam > 0.1) & (lam < 0.9)).float().mean().item()
        # the exact probability, by integrating the Beta density over [0.1, 0.9]
        grid = torch.linspace(0.1, 0.9, 20_001, dtype=torch.float64)
        dist64 = torch.distributions.Beta(
            torch.tensor(alpha, dtype=torch.float64), torch.tensor(alpha, dtype=torch.float64)
        )
        exact = torch.trapezoid(dist64.log_prob(grid).exp(), grid).item()
        se = math.sqrt(exact * (1 - exact) / n_lam)
        beta_ok = beta_ok and abs(middle - exact) < 4 * se
        beta_rows.append([alpha, round(middle, 4), round(exact, 4), round(lam.mean().item(), 3)])
    result.tables.append(
        Table(
            f"lam ~ Beta(alpha, alpha), {n_lam} draws",
            ["alpha", "P(0.1 < lam < 0.9) sampled", "exact", "mean lam"],
            beta_rows,
        )
    )
    result.claim(
        "alpha controls how hard mixup mixes: with alpha = 0.2 only a third of the draws have "
        "lam in (0.1, 0.9) (most pairs are barely mixed), with alpha = 1 lam is uniform (80%); "
        "the sampled fractions match the exact Beta probabilities.",
        beta_ok and beta_rows[0][1] < 0.4 and beta_rows[1][1] > 0.75,
        f"alpha 0.2: {beta_rows[0][1]:.3f} (exact {beta_rows[0][2]:.3f}); alpha 1: "
        f"{beta_rows[1][1]:.3f} (exact {beta_rows[1][2]:.3f})",
    )

    # ---- 2. the soft-label loss equals the mixed loss ---------------------------------------
    x_a, y_a = gratings(64, 1.0, g)
    model = small_cnn().to(device)
    perm = torch.randperm(64, generator=g)
    lam = 0.3
    x_mix = (lam * x_a + (1 - lam) * x_a[perm]).to(device)  # (64, 1, 16, 16)
    y_i, y_j = y_a.to(device), y_a[perm].to(device)
    ce = nn.functional.cross_entropy  # accepts class indices or probabilities as the target
    with torch.no_grad():
        out = model(x_mix)  # (64, 4)
        onehot_i = nn.functional.one_hot(y_i, N_CLASSES).float()  # (64, 4)
        onehot_j = nn.functional.one_hot(y_j, N_CLASSES).float()
        soft = lam * onehot_i + (1 - lam) * onehot_j  # (64, 4) soft labels, rows sum to 1
        loss_soft = ce(out, soft)
        loss_pair = lam * ce(out, y_i) + (1 - lam) * ce(out, y_j)
    result.claim(
        "Cross-entropy is linear in the target, so the soft mixed label gives exactly the same "
        "loss as lam * CE(y_i) + (1 - lam) * CE(y_j).",
        abs(loss_soft.item() - loss_pair.item()) < 1e-5,
        f"{loss_soft.item():.6f} vs {loss_pair.item():.6f}",
    )

    # ---- 3. CutMix: the label weight is the pasted pixel fraction --------------------------
    n_boxes = 2000
    ones, zeros = torch.ones(1, SIDE, SIDE), torch.zeros(1, SIDE, SIDE)
    err_adjusted, err_sampled = [], []
    uniform = torch.distributions.Beta(torch.tensor(1.0), torch.tensor(1.0))  # alpha = 1
    for _ in range(n_boxes):
        lam = float(uniform.sample())
        x1, x2, y1, y2 = cutmix_box(lam, g)
        mixed = zeros.clone()  # image A is all zeros ...
        mixed[:, y1:y2, x1:x2] = ones[:, y1:y2, x1:x2]  # ... B's box pasted in is all ones
        from_b = mixed.mean().item()  # the fraction of pixels that now come from B
        lam_adjusted = 1 - (x2 - x1) * (y2 - y1) / (SIDE * SIDE)
        err_adjusted.append(abs((1 - lam_adjusted) - from_b))
        err_sampled.append(abs((1 - lam) - from_b))
    mean_err_sampled = sum(err_sampled) / n_boxes
    result.tables.append(
        Table(
            f"CutMix on {SIDE}x{SIDE} images, {n_boxes} boxes: |label weight of B - fraction "
            "of pixels from B|",
            ["label weight", "mean error", "max error"],
            [
                ["1 - lam, lam as sampled", round(mean_err_sampled, 4), round(max(err_sampled), 3)],
                ["1 - lam recomputed from the clipped box", max(err_adjusted), max(err_adjusted)],
            ],
        )
    )
    result.claim(
        "With lam recomputed from the clipped box, CutMix's label weight equals the fraction "
        "of pasted pixels exactly; the sampled lam would mislabel by over 10 percentage points "
        "on average, because a box with a uniformly random centre is often clipped.",
        max(err_adjusted) < 1e-6 and mean_err_sampled > 0.1,
        f"max error recomputed {max(err_adjusted):.1e}; sampled lam: mean error "
        f"{mean_err_sampled:.3f}, max {max(err_sampled):.3f}",
    )

    # ---- 4. the experiment: plain vs mixup, clean and noisy images -------------------------
    n_train, steps, repeats = 200, ctx.pick(300, 600), ctx.pick(1, 4)
    regimes = {"clean (noise 1.0)": 1.0, "noisy (noise 2.0)": 2.0}
    summary = {}
    rows = []
    for regime, noise in regimes.items():
        for method in ("plain", "mixup"):
            stats = {"train_acc": [], "acc": [], "conf": [], "ece": [], "nll": []}
            for r in range(repeats):
                data_g = torch.Generator().manual_seed(1000 * ctx.seed + r)  # same data per method
                x_train, y_train = gratings(n_train, noise, data_g)
                x_test, y_test = gratings(2000, noise, data_g)
                x_train, y_train = x_train.to(device), y_train.to(device)
                x_test, y_test = x_test.to(device), y_test.to(device)
                torch.manual_seed(1000 * ctx.seed + r)  # same initial weights per method
                model = small_cnn().to(device)
                opt = torch.optim.Adam(model.parameters(), lr=2e-3)
                for _ in range(steps):
                    idx = torch.randint(0, n_train, (64,), generator=g).to(device)
                    xb, yb = x_train[idx], y_train[idx]  # (64, 1, 16, 16), (64,)
                    if method == "mixup":
                        lam = float(torch.distributions.Beta(1.0, 1.0).sample())
                        pair = torch.randperm(64, generator=g).to(device)
                        out = model(lam * xb + (1 - lam) * xb[pair])
                        loss = lam * ce(out, yb) + (1 - lam) * ce(out, yb[pair])
                    else:
                        loss = ce(model(xb), yb)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                with torch.no_grad():
                    probs = torch.softmax(model(x_test), dim=1)  # (2000, 4)
                    train_pred = model(x_train).argmax(dim=1)
                stats["train_acc"].append((train_pred == y_train).float().mean().item())
                stats["acc"].append((probs.argmax(dim=1) == y_test).float().mean().item())
                stats["conf"].append(probs.max(dim=1).values.mean().item())
                stats["ece"].append(expected_calibration_error(probs, y_test))
                stats["nll"].append(nn.functional.nll_loss(probs.log(), y_test).item())
            mean = {k: sum(v) / len(v) for k, v in stats.items()}
            summary[(regime, method)] = mean
            gap = mean["conf"] - mean["acc"]  # > 0: overconfident, < 0: underconfident
            numbers = [mean["train_acc"], mean["acc"], mean["conf"], gap, mean["ece"], mean["nll"]]
            rows.append([regime, method] + [round(v, 3) for v in numbers])
    result.tables.append(
        Table(
            f"Plain vs mixup (alpha = 1): {n_train} training images, {steps} steps, test on "
            f"2000, mean of {repeats} run(s)",
            [
                "images",
                "training",
                "train acc",
                "test acc",
                "confidence",
                "conf - acc",
                "ECE",
                "test NLL",
            ],
            rows,
        )
    )
    clean, noisy = regimes
    c_plain, c_mix = summary[(clean, "plain")], summary[(clean, "mixup")]
    n_plain, n_mix = summary[(noisy, "plain")], summary[(noisy, "mixup")]
    result.claim(
        "Mixup lowers the model's confidence on test images in both regimes (mean max-"
        "probability down by more than 0.05).",
        c_plain["conf"] - c_mix["conf"] > 0.05 and n_plain["conf"] - n_mix["conf"] > 0.05,
        f"clean {c_plain['conf']:.3f} -> {c_mix['conf']:.3f}; "
        f"noisy {n_plain['conf']:.3f} -> {n_mix['conf']:.3f}",
    )
    result.claim(
        "On noisy images plain training memorises its 200 examples and is overconfident "
        "(confidence > accuracy + 0.1); mixup shrinks that gap and lowers the ECE.",
        n_plain["conf"] - n_plain["acc"] > 0.1
        and abs(n_mix["conf"] - n_mix["acc"]) < n_plain["conf"] - n_plain["acc"]
        and n_mix["ece"] < n_plain["ece"],
        f"conf - acc {n_plain['conf'] - n_plain['acc']:+.3f} -> "
        f"{n_mix['conf'] - n_mix['acc']:+.3f}; ECE {n_plain['ece']:.3f} -> {n_mix['ece']:.3f}",
    )
    result.claim(
        "On clean images plain training is already calibrated, and mixup makes the model "
        "underconfident (confidence < accuracy - 0.05): its ECE gets worse, not better.",
        c_mix["acc"] - c_mix["conf"] > 0.05 and c_mix["ece"] > c_plain["ece"],
        f"mixup conf - acc {c_mix['conf'] - c_mix['acc']:+.3f}; ECE {c_plain['ece']:.3f} "
        f"(plain) -> {c_mix['ece']:.3f} (mixup)",
    )
    result.metrics = {
        "beta_middle_fraction_alpha_0.2": beta_rows[0][1],
        "beta_middle_fraction_alpha_1": beta_rows[1][1],
        "cutmix_mean_label_error_sampled_lam": mean_err_sampled,
        "cutmix_max_label_error_recomputed_lam": max(err_adjusted),
        **{
            f"{'clean' if reg == clean else 'noisy'}_{method}_{k}": v
            for (reg, method), stats in summary.items()
            for k, v in stats.items()
        },
    }
    result.notes.append(
        f"Test accuracy, plain -> mixup: clean {c_plain['acc']:.3f} -> {c_mix['acc']:.3f}, "
        f"noisy {n_plain['acc']:.3f} -> {n_mix['acc']:.3f}. Differences of a few points are "
        "within the seed-to-seed spread of one run here, so no accuracy claim is made."
    )
    return result
