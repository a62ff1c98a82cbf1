"""Data leakage: pure-noise data scores far above chance when the test folds leak into training.

What it shows, on data with NO signal at all (random features, coin-flip labels), so that any
accuracy above 50% is leakage:
- Selecting features on the whole data set before cross-validation: the 20 features most
  correlated with the labels are chosen using every sample, test folds included, then a
  classifier is cross-validated on them. With thousands of noise features, some correlate with
  the labels by chance, and the selection has already seen the test labels: cross-validated
  accuracy comes out far above chance. Doing the selection inside each fold, on the training
  part only, gives chance, the truth. (Hastie, Tibshirani & Friedman, "The Elements of
  Statistical Learning", 2nd ed., section 7.10.2, "The Wrong and Right Way to Do
  Cross-validation".) The same holds for any step fitted on data: normalisation statistics,
  imputation, PCA, oversampling, vocabularies, hyperparameter and early-stopping choices.
- Duplicates across the split: when some test samples are copies of training samples (the
  same patient, the same image augmented, near-identical scraped pages), a nearest-neighbour
  classifier "predicts" them by memory and test accuracy rises above chance. Split by group
  (patient, user, source, time) instead of by row.

Run: dlprep demo data-leakage
"""

from __future__ import annotations

import torch

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True


def top_features(x: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k features most correlated (in absolute value) with the labels."""
    xc = (x - x.mean(0)) / x.std(0)
    yc = (y.float() - y.float().mean()) / y.float().std()
    corr = (xc * yc[:, None]).mean(0)  # (p,)
    return corr.abs().topk(k).indices


def nearest_centroid_acc(x_tr, y_tr, x_te, y_te) -> float:
    c0, c1 = x_tr[y_tr == 0].mean(0), x_tr[y_tr == 1].mean(0)
    pred = ((x_te - c1).norm(dim=1) < (x_te - c0).norm(dim=1)).long()
    return (pred == y_te).float().mean().item()


def cross_validate(x, y, k_feat, folds, select_inside: bool) -> float:
    n = len(y)
    fold_id = torch.arange(n) % folds
    accs = []
    chosen_all = top_features(x, y, k_feat)  # the WRONG way: chosen with every label
    for f in range(folds):
        tr, te = fold_id != f, fold_id == f
        feats = top_features(x[tr], y[tr], k_feat) if select_inside else chosen_all
        accs.append(nearest_centroid_acc(x[tr][:, feats], y[tr], x[te][:, feats], y[te]))
    return sum(accs) / folds


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    n, p, k_feat, folds = 100, ctx.pick(2000, 5000), 20, 5
    repeats = ctx.pick(5, 20)
    wrong, right = [], []
    for _ in range(repeats):
        x = torch.randn(n, p, generator=g).to(device)  # (n, p) pure noise
        y = torch.randint(0, 2, (n,), generator=g).to(device)  # coin-flip labels
        y[: n // 2], y[n // 2 :] = 0, 1  # balanced...
        y = y[torch.randperm(n, generator=g).to(device)]  # ...in random order
        wrong.append(cross_validate(x, y, k_feat, folds, select_inside=False))
        right.append(cross_validate(x, y, k_feat, folds, select_inside=True))
    acc_wrong, acc_right = sum(wrong) / repeats, sum(right) / repeats

    # duplicates across a random split: 1-nearest-neighbour on noise
    n_tr, n_te, dup_frac = 400, 400, 0.3
    x = torch.randn(n_tr + n_te, 50, generator=g).to(device)
    y = torch.randint(0, 2, (n_tr + n_te,), generator=g).to(device)
    x_tr, y_tr, x_te, y_te = x[:n_tr], y[:n_tr], x[n_tr:].clone(), y[n_tr:].clone()

    def one_nn(x_test, y_test):
        nearest = torch.cdist(x_test, x_tr).argmin(1)
        return (y_tr[nearest] == y_test).float().mean().item()

    acc_clean = one_nn(x_te, y_te)
    n_dup = int(dup_frac * n_te)
    src = torch.randperm(n_tr, generator=g)[:n_dup].to(device)
    x_te[:n_dup] = x_tr[src] + 0.01 * torch.randn(n_dup, 50, generator=g).to(device)  # copies
    y_te[:n_dup] = y_tr[src]  # a duplicate carries its label with it
    acc_dup = one_nn(x_te, y_te)

    result = DemoResult(
        metrics={
            "cv_acc_select_then_cv": acc_wrong,
            "cv_acc_select_inside_folds": acc_right,
            "one_nn_acc_clean_split": acc_clean,
            "one_nn_acc_with_duplicates": acc_dup,
        },
        tables=[
            Table(
                f"Pure noise: {n} samples, {p} features, balanced random labels "
                f"(mean of {repeats} data sets)",
                ["protocol", "cross-validated accuracy"],
                [
                    [
                        f"select top {k_feat} features on ALL data, then {folds}-fold CV",
                        f"{acc_wrong:.3f}",
                    ],
                    ["select inside each fold (training part only)", f"{acc_right:.3f}"],
                ],
            ),
            Table(
                "1-nearest-neighbour on noise, random labels",
                ["test set", "accuracy"],
                [
                    ["no overlap with training", f"{acc_clean:.3f}"],
                    [f"{dup_frac:.0%} near-copies of training samples", f"{acc_dup:.3f}"],
                ],
            ),
        ],  # fmt: skip
    )
    result.claim(
        "Selecting features with all the labels before cross-validating makes pure noise look "
        "predictive: CV accuracy far above chance (over 70%).",
        acc_wrong > 0.7,
        f"CV accuracy {acc_wrong:.3f} (chance 0.5)",
    )
    result.claim(
        "Selecting inside each fold, on training data only, gives chance: the honest answer.",
        abs(acc_right - 0.5) < 0.1,
        f"CV accuracy {acc_right:.3f}",
    )
    result.claim(
        "Near-duplicates across the split leak too: with 30% of the test set copied from "
        "training, 1-NN accuracy on noise rises above the clean split's (8+ points; ~15 "
        "expected).",
        acc_dup > acc_clean + 0.08,
        f"clean {acc_clean:.3f}, with duplicates {acc_dup:.3f}",
    )
    return result
