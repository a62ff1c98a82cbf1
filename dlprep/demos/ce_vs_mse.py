"""Cross-entropy vs MSE for classification: the saturating gradient, and class weights.

What it shows, measured:

1. The gradient w.r.t. the logit z of a sigmoid output p = sigmoid(z). For binary
   cross-entropy it is (p - y): close to -1 when the model is confidently wrong. For MSE on
   the probability, (p - y)^2, it is 2 (p - y) p (1 - p): the extra factor p (1 - p), the
   sigmoid's slope, vanishes when the unit saturates, so the *more* wrong the model is, the
   *less* it learns. (The same holds for softmax: d CE / d logits = p - onehot(y).)
2. Logistic regression started confidently wrong and trained by full-batch gradient descent:
   with cross-entropy it recovers in a few steps; with MSE it sits on a plateau that grows
   fast with how saturated the start is: each example's gradient is scaled by
   p(1-p) ~ e^-|z|, though the plateau grows more slowly than e^(mean |z|), since the
   least saturated examples (near the boundary) escape first.
   What really happens with a tuned learning rate: a 30-100x larger LR shortens MSE's plateau
   a lot in this 3-parameter problem (one big step escapes), but it has to be tuned to the
   saturation; cross-entropy needs no such tuning, and it is the Bernoulli log-likelihood
   (convex in the weights for logistic regression; MSE through a sigmoid is not).
3. Class imbalance (5% positives): unweighted cross-entropy keeps overall accuracy near the
   majority-class rate with poor minority recall at the 0.5 threshold. Weighting the positive
   class by n_neg/n_pos (`pos_weight`) raises minority recall a lot, and overall accuracy
   drops (most examples are negatives: the honest trade-off). For a well-specified model,
   weighting is (almost exactly) the same as keeping the unweighted model and moving the
   threshold to the class prior: the weight shifts the optimal logit by log(pos_weight).
   Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection"), FL = -alpha_t
   (1 - p_t)^gamma log p_t, down-weights *easy* examples; it was made for dense detection
   (~1:1000 easy background anchors), and with the paper's alpha = 0.25 on the rare class it
   does NOT raise minority recall here: gamma alone barely moves it and alpha = 0.25 lowers it.
   Only an alpha close to the inverse class frequency acts like class weighting.

Run: dlprep demo ce-vs-mse
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True


def _logit_gradients(device: torch.device) -> list[tuple[float, float, float, float]]:
    """(z, p, dCE/dz, dMSE/dz) for a positive example (y = 1), by autograd in float64."""
    rows = []
    for z0 in (-8.0, -6.0, -4.0, -2.0, 0.0, 2.0, 4.0):
        z = torch.tensor(z0, dtype=torch.float64, device=device, requires_grad=True)
        y = torch.tensor(1.0, dtype=torch.float64, device=device)
        (g_ce,) = torch.autograd.grad(F.binary_cross_entropy_with_logits(z, y), z)
        (g_mse,) = torch.autograd.grad(F.mse_loss(torch.sigmoid(z), y), z)
        rows.append((z0, torch.sigmoid(z).item(), g_ce.item(), g_mse.item()))
    return rows


def _recover_from_bad_start(x, y, configs, max_steps):
    """Full-batch GD on logistic regression, all configs at once (independent parameters).

    configs: list of (loss name, start scale, lr). The start is w = -scale * mu: every logit
    points the wrong way, more confidently as the scale grows. Returns, per config, the first
    step at which training accuracy reaches 90% (None if never) and the loss curve.
    """
    k = len(configs)
    mu = (x[y > 0].mean(0) - x[y == 0].mean(0)) / 2  # (2,) each class's offset from the middle
    scale = torch.tensor([c[1] for c in configs], dtype=x.dtype, device=x.device)
    lr = torch.tensor([c[2] for c in configs], dtype=x.dtype, device=x.device)
    is_ce = torch.tensor([c[0] == "CE" for c in configs], device=x.device)
    w = (-scale[:, None] * mu).requires_grad_()  # (K, 2)
    b = torch.zeros(k, dtype=x.dtype, device=x.device, requires_grad=True)  # (K,)
    yk = y[:, None].expand(-1, k)  # (N, K)
    first_hit: list[int | None] = [None] * k
    curves: list[list[float]] = [[] for _ in range(k)]
    for step in range(max_steps + 1):
        z = x @ w.T + b  # (N, K): one column per config
        acc = ((z > 0).to(x.dtype) == yk).to(x.dtype).mean(0)  # (K,)
        ce = F.binary_cross_entropy_with_logits(z, yk, reduction="none").mean(0)  # (K,)
        mse = ((torch.sigmoid(z) - yk) ** 2).mean(0)  # (K,)
        loss = torch.where(is_ce, ce, mse)  # each config trains on its own loss
        for i, (a, c) in enumerate(zip(acc.tolist(), ce.tolist(), strict=True)):
            curves[i].append(c)
            if first_hit[i] is None and a >= 0.9:
                first_hit[i] = step
        if step == max_steps:
            break
        # summing independent losses gives each config exactly its own gradient
        gw, gb = torch.autograd.grad(loss.sum(), [w, b])
        with torch.no_grad():
            w -= lr[:, None] * gw
            b -= lr * gb
    return first_hit, curves


def _imbalanced(g: torch.Generator, n: int, device: torch.device):
    """5% positives; two unit-variance Gaussians 2.2 apart: overlapping, linear Bayes boundary."""
    y = (torch.rand(n, generator=g) < 0.05).to(torch.float64)  # (N,)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)  # (N, 2)
    x = x + y[:, None] * torch.tensor([2.0, 1.0], dtype=torch.float64)
    return x.to(device), y.to(device)


def _focal(z, y, alpha: float, gamma: float = 2.0):
    """Lin et al. 2017: -alpha_t (1 - p_t)^gamma log p_t, per example."""
    ce = F.binary_cross_entropy_with_logits(z, y, reduction="none")  # = -log p_t
    p = torch.sigmoid(z)
    p_t = torch.where(y > 0, p, 1 - p)
    alpha_t = torch.where(y > 0, torch.full_like(p, alpha), torch.full_like(p, 1 - alpha))
    return alpha_t * (1 - p_t) ** gamma * ce


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    # ---- 1. the gradient w.r.t. the logit at a confidently wrong prediction ------------------
    grads = _logit_gradients(device)
    ce_formula_err = max(abs(gce - (p - 1.0)) for _, p, gce, _ in grads)
    mse_formula_err = max(abs(gm - 2 * (p - 1.0) * p * (1 - p)) for _, p, _, gm in grads)
    z6 = next(r for r in grads if r[0] == -6.0)
    ratio6 = abs(z6[2]) / abs(z6[3])
    result.tables.append(
        Table(
            "Gradient w.r.t. the logit for a positive example (y = 1)",
            ["logit z", "p = sigmoid(z)", "dCE/dz", "dMSE/dz", "|CE| / |MSE|"],
            [
                [z, f"{p:.4f}", f"{gce:+.4f}", f"{gm:+.2e}", f"{abs(gce) / abs(gm):.1f}"]
                for z, p, gce, gm in grads
            ],
        )
    )

    # ---- 2. logistic regression from a confidently wrong start ------------------------------
    n = 400
    y = (torch.arange(n) % 2).to(torch.float64)  # balanced labels
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x = (x + (2 * y - 1)[:, None] * torch.tensor([1.5, 1.0], dtype=torch.float64)).to(device)
    y = y.to(device)
    scales = [1.0, 2.0, 3.0, 4.0]
    lr_grid = [1.0, 10.0, 30.0, 100.0]
    configs = [(loss, s, 1.0) for s in scales for loss in ("CE", "MSE")]
    configs += [(loss, 3.0, lr) for lr in lr_grid[1:] for loss in ("CE", "MSE")]
    max_steps = ctx.pick(1000, 2000)
    hits, ce_curves = _recover_from_bad_start(x, y, configs, max_steps)
    by = {c: h for c, h in zip(configs, hits, strict=True)}

    def show(h):
        return h if h is not None else f">{max_steps}"

    mu = (x[y > 0].mean(0) - x[y == 0].mean(0)) / 2
    mean_abs_logit = [(s * (x @ mu)).abs().mean().item() for s in scales]
    result.tables.append(
        Table(
            "Steps of full-batch GD (lr = 1) until 90% training accuracy, from w = -scale * mu",
            ["start scale", "mean |logit| at start", "CE steps", "MSE steps"],
            [
                [s, f"{m:.1f}", show(by[("CE", s, 1.0)]), show(by[("MSE", s, 1.0)])]
                for s, m in zip(scales, mean_abs_logit, strict=True)
            ],
        )
    )
    result.tables.append(
        Table(
            "The same from scale 3 with a larger learning rate",
            ["lr", "CE steps", "MSE steps"],
            [[lr, show(by[("CE", 3.0, lr)]), show(by[("MSE", 3.0, lr)])] for lr in lr_grid],
        )
    )
    i_ce, i_mse = configs.index(("CE", 3.0, 1.0)), configs.index(("MSE", 3.0, 1.0))
    horizon = min(300, max_steps + 1)
    result.curves.append(
        Curve(
            "Training cross-entropy from scale 3, lr = 1 (first 300 steps)",
            "step",
            {
                "trained on CE": ce_curves[i_ce][:horizon],
                "trained on MSE": ce_curves[i_mse][:horizon],
            },
            log_y=True,
        )
    )

    # ---- 3. class imbalance: unweighted CE, class weights, focal loss ----------------------
    x_tr, y_tr = _imbalanced(g, ctx.pick(2000, 5000), device)
    x_te, y_te = _imbalanced(g, ctx.pick(20000, 100000), device)
    n_pos = y_tr.sum()
    pos_weight = (len(y_tr) - n_pos) / n_pos  # n_neg / n_pos, ~19
    names = ["unweighted CE", "CE, pos_weight = n_neg/n_pos", "focal g=2, alpha=0.25",
             "focal g=2, alpha=0.5", "focal g=2, alpha=0.95"]  # fmt: skip
    k = len(names)
    w = torch.zeros(k, 2, dtype=torch.float64, device=device, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, device=device, requires_grad=True)

    def imbalance_loss():
        z = x_tr @ w.T + b  # (N, K): one logistic regression per training loss
        per_config = [
            F.binary_cross_entropy_with_logits(z[:, 0], y_tr),
            F.binary_cross_entropy_with_logits(z[:, 1], y_tr, pos_weight=pos_weight),
            _focal(z[:, 2], y_tr, 0.25).mean(),
            _focal(z[:, 3], y_tr, 0.5).mean(),
            _focal(z[:, 4], y_tr, 0.95).mean(),
        ]
        return torch.stack(per_config).sum()

    # convex problems: fit each to convergence so the comparison is about the loss, not the
    # optimiser (L-BFGS; the configs' parameters are independent)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = imbalance_loss()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        z_te = x_te @ w.T + b  # (N_test, K)
        preds = [z_te[:, i] > 0 for i in range(k)]
        # the unweighted model with its threshold moved to the training prior: p > n_pos / N
        prior = n_pos / len(y_tr)
        preds.append(z_te[:, 0] > torch.log(prior / (1 - prior)))
        names.append("unweighted CE, threshold = prior")
        recall = [p[y_te > 0].to(torch.float64).mean().item() for p in preds]
        acc = [(p.to(torch.float64) == y_te).to(torch.float64).mean().item() for p in preds]
        bal = [
            0.5 * (r + (~p[y_te == 0]).to(torch.float64).mean().item())
            for r, p in zip(recall, preds, strict=True)
        ]
    result.tables.append(
        Table(
            f"5% positives: test set of {len(y_te)}, threshold 0.5 unless stated",
            ["training loss", "minority recall", "accuracy", "balanced accuracy"],
            [
                [nm, f"{r:.3f}", f"{a:.3f}", f"{ba:.3f}"]
                for nm, r, a, ba in zip(names, recall, acc, bal, strict=True)
            ],
        )
    )
    majority_rate = (y_te == 0).to(torch.float64).mean().item()

    result.metrics = {
        "grad_ce_at_z-6": z6[2],
        "grad_mse_at_z-6": z6[3],
        "ce_over_mse_grad_at_z-6": ratio6,
        "steps_to_90pct_ce_lr1": [by[("CE", s, 1.0)] for s in scales],
        "steps_to_90pct_mse_lr1": [by[("MSE", s, 1.0)] for s in scales],
        "steps_to_90pct_mse_scale3_by_lr": [by[("MSE", 3.0, lr)] for lr in lr_grid],
        "pos_weight": pos_weight.item(),
        "recall": dict(zip(names, recall, strict=True)),
        "accuracy": dict(zip(names, acc, strict=True)),
    }

    # ---- claims ----------------------------------------------------------------------------
    result.claim(
        "For a sigmoid output, d(cross-entropy)/d(logit) = p - y: about -1 when confidently "
        "wrong; MSE's gradient carries an extra 2 p (1 - p) that vanishes at saturation.",
        ce_formula_err < 1e-12
        and mse_formula_err < 1e-12
        and abs(z6[2] + 1) < 0.01
        and ratio6 > 100,
        f"autograd vs formulas: max error {max(ce_formula_err, mse_formula_err):.1e}; at z = -6 "
        f"dCE/dz = {z6[2]:+.4f}, dMSE/dz = {z6[3]:+.2e} ({ratio6:.0f}x smaller)",
    )
    ce_steps = [by[("CE", s, 1.0)] for s in scales]
    mse_steps = [by[("MSE", s, 1.0)] for s in scales]
    ce_fast = all(h is not None and h <= 10 for h in ce_steps)
    mse_at3 = by[("MSE", 3.0, 1.0)]
    mse_grows = all(h is not None for h in mse_steps[:3]) and all(
        (b_ is None) or (a_ is not None and b_ >= 2 * a_)
        for a_, b_ in zip(mse_steps, mse_steps[1:], strict=False)
    )
    result.claim(
        "From a confidently wrong start, cross-entropy recovers within 10 GD steps; MSE sits "
        "on a plateau (>= 20x longer at scale 3) that at least doubles with each unit of scale.",
        ce_fast
        and mse_at3 is not None
        and mse_at3 >= 20 * max(1, by[("CE", 3.0, 1.0)])
        and mse_grows,
        f"steps to 90% accuracy for scales {scales}: CE {[show(h) for h in ce_steps]}, "
        f"MSE {[show(h) for h in mse_steps]}",
    )
    mse_lr = [by[("MSE", 3.0, lr)] for lr in lr_grid]
    best_mse = min(h for h in mse_lr if h is not None)
    result.claim(
        "A much larger learning rate shortens MSE's plateau (>= 5x here: in this 3-parameter "
        "problem a few big steps escape it).",
        mse_at3 is not None and best_mse * 5 <= mse_at3,
        f"MSE steps from scale 3 at lr {lr_grid}: {[show(h) for h in mse_lr]}; "
        f"CE at lr 1: {by[('CE', 3.0, 1.0)]}",
    )
    result.claim(
        "With 5% positives, unweighted CE gives high accuracy (about the majority rate) but "
        "poor minority recall (< 0.65).",
        recall[0] < 0.65 and acc[0] >= majority_rate - 0.01,
        f"recall {recall[0]:.3f}, accuracy {acc[0]:.3f} "
        f"(all-negative would score {majority_rate:.3f})",
    )
    result.claim(
        "Class weights (pos_weight = n_neg/n_pos) raise minority recall by >= 0.25 and cost "
        "overall accuracy (>= 0.04 lower).",
        recall[1] >= recall[0] + 0.25 and acc[1] <= acc[0] - 0.04,
        f"recall {recall[0]:.3f} -> {recall[1]:.3f}; accuracy {acc[0]:.3f} -> {acc[1]:.3f}",
    )
    result.claim(
        "Class weighting ~ moving the threshold: the weighted model and the unweighted model "
        "thresholded at the class prior agree on recall within 0.03.",
        abs(recall[1] - recall[5]) <= 0.03,
        f"weighted recall {recall[1]:.3f}; unweighted at threshold p > {prior.item():.3f}: "
        f"{recall[5]:.3f}; log(pos_weight) = {math.log(pos_weight.item()):.2f}",
    )
    result.claim(
        "Focal loss with the paper's alpha = 0.25 does not raise minority recall at threshold "
        "0.5 (it down-weights easy examples, it does not re-weight classes); alpha = 0.95 does.",
        recall[2] <= recall[0] and recall[4] >= recall[0] + 0.25,
        f"recall: unweighted {recall[0]:.3f}, focal alpha 0.25 {recall[2]:.3f}, "
        f"alpha 0.5 {recall[3]:.3f}, alpha 0.95 {recall[4]:.3f}",
    )
    result.notes.append(
        "Which threshold to use is a product decision: weighting, resampling and moving the "
        "threshold all trade precision for recall along the same ROC curve; report recall, "
        "precision or balanced accuracy, never plain accuracy, on imbalanced data."
    )
    return result
