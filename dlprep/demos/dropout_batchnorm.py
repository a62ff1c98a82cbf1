"""Dropout before BatchNorm: the variance shift between training and eval mode.

What it shows, measured (Li et al. 2019, "Understanding the Disharmony between Dropout and
Batch Normalization by Variance Shift", arXiv 1801.05134):

- In training mode, inverted dropout keeps the mean of an activation but inflates its
  variance: a unit x becomes m * x / (1 - p) with m ~ Bernoulli(1 - p), so
  Var = (E[x^2] / (1 - p)) - E[x]^2, larger than Var(x). A BatchNorm layer placed after the
  dropout learns its running variance from these inflated training-mode activations.
- In eval mode dropout is the identity, so the BatchNorm layer sees activations with the
  smaller, un-inflated variance, but still divides by the running (training-mode) standard
  deviation: its outputs come out with variance well below 1. That mismatch ("variance
  shift") propagates through later layers, so the network at inference sees activation
  statistics it was never trained on.
- Placing dropout after the last BatchNorm (e.g. only before the classifier), or none at
  all in BN networks, avoids it; Li et al. also propose a variance-stable dropout.
- The demo measures the shift directly, then in a small BN MLP trained with
  Dropout -> BatchNorm blocks: the pre-classifier activations' scale in eval mode is smaller
  than in training mode, and recalibrating BN's running statistics in eval-like conditions
  (dropout off, a few passes over training data) restores it.

What really happens at this scale: the shift here is close to a uniform rescaling of the
features, so the argmax barely moves and test accuracy changes by well under a point after
recalibration. Li et al. measure real accuracy losses in deep CNNs, where many non-linear
layers follow the shifted ones.

Run: dlprep demo dropout-batchnorm
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    # ---- 1. one layer: Dropout(p) -> BatchNorm1d, running statistics from training mode -------
    p, n, c = 0.5, 4096, 64
    x = (torch.randn(n, c, generator=g) + 1.0).to(device)  # (n, c): mean 1, variance 1
    drop, bn = (
        nn.Dropout(p),
        nn.BatchNorm1d(c, momentum=None).to(device),
    )  # cumulative average
    drop.train()
    bn.train()
    with torch.no_grad():
        for _ in range(ctx.pick(20, 100)):  # many training-mode batches
            bn(drop(x[torch.randperm(n, generator=g)[:256].to(device)]))
    running_var = bn.running_var.mean().item()
    drop.eval()
    bn.eval()
    with torch.no_grad():
        out_eval = bn(drop(x))  # dropout now the identity
    eval_var = out_eval.var(0).mean().item()
    # theory: training-mode variance = E[x^2] / (1 - p) - E[x]^2 = 2 / 0.5 - 1 = 3
    theory_train_var = (1 + 1) / (1 - p) - 1
    result.tables.append(
        Table(
            f"Dropout(p={p}) -> BatchNorm1d on activations with mean 1, variance 1",
            ["quantity", "measured", "theory"],
            [
                [
                    "BN running variance (learned in train mode)",
                    f"{running_var:.3f}",
                    f"{theory_train_var:.3f}",
                ],
                [
                    "variance of BN output in eval mode",
                    f"{eval_var:.3f}",
                    f"{1 / theory_train_var:.3f}",
                ],
            ],  # fmt: skip
        )
    )

    # ---- 2. a small BN MLP with Dropout -> BN blocks, trained on a synthetic task -----------
    d, k, width = 20, 4, 128
    w_t = torch.randn(d, k, generator=g)
    x_tr = torch.randn(2048, d, generator=g)
    y_tr = (torch.tanh(x_tr) @ w_t).argmax(1)
    x_tr, y_tr = x_tr.to(device), y_tr.to(device)

    def block(i_in):
        return [nn.Linear(i_in, width), nn.ReLU(), nn.Dropout(p), nn.BatchNorm1d(width)]

    torch.manual_seed(ctx.seed)
    body = nn.Sequential(*block(d), *block(width), *block(width)).to(device)
    head = nn.Linear(width, k).to(device)
    opt = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=1e-3)
    for _ in range(ctx.pick(200, 1000)):
        idx = torch.randint(0, 2048, (128,), generator=g).to(device)
        loss = F.cross_entropy(head(body(x_tr[idx])), y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()

    with torch.no_grad():
        body.train()
        feat_train = body(x_tr)  # training mode: dropout on, BN uses batch statistics
        body.eval()
        feat_eval = body(x_tr)  # eval mode: dropout off, BN uses running statistics
        x_te = torch.randn(4096, d, generator=g)
        y_te = (torch.tanh(x_te) @ w_t).argmax(1).to(device)
        x_te = x_te.to(device)
        acc_eval = (head(body(x_te)).argmax(1) == y_te).float().mean().item()
        # recalibrate: recompute BN running statistics with dropout OFF (eval-mode inputs)
        for m in body:
            if isinstance(m, nn.BatchNorm1d):
                m.reset_running_stats()
                m.momentum = None
                m.train()
        for _ in range(5):
            body(x_tr[torch.randperm(2048, generator=g)[:512].to(device)])
        body.eval()
        feat_recal = body(x_tr)
        acc_recal = (head(body(x_te)).argmax(1) == y_te).float().mean().item()
    var_tr = feat_train.var(0).mean().item()
    var_ev = feat_eval.var(0).mean().item()
    var_rc = feat_recal.var(0).mean().item()
    result.tables.append(
        Table(
            "Trained MLP with 3 Linear-ReLU-Dropout-BatchNorm blocks: variance of the "
            "last BN's output",
            ["mode", "mean variance per feature"],
            [
                ["training mode", f"{var_tr:.3f}"],
                ["eval mode", f"{var_ev:.3f}"],
                ["eval mode, BN recalibrated without dropout", f"{var_rc:.3f}"],
            ],  # fmt: skip
        )
    )
    result.metrics = {
        "bn_running_var": running_var,
        "eval_output_var": eval_var,
        "mlp_feature_var": {"train": var_tr, "eval": var_ev, "recalibrated": var_rc},
        "test_accuracy": {"eval": acc_eval, "recalibrated": acc_recal},
    }
    result.notes.append(
        f"Test accuracy in eval mode {acc_eval:.3f}, after recalibrating BN {acc_recal:.3f}. "
        "Here the shift is close to a uniform rescaling, so accuracy barely moves; Li et al. "
        "measure real losses in deep CNNs, where many non-linear layers follow the shift."
    )
    result.claim(
        "BatchNorm after dropout learns the inflated training-mode variance "
        "(E[x^2]/(1-p) - E[x]^2, 3 here, not 1) ...",
        abs(running_var - theory_train_var) < 0.1 * theory_train_var,
        f"running variance {running_var:.3f}, theory {theory_train_var:.3f}",
    )
    result.claim(
        "... so in eval mode, with dropout off, its outputs have variance well below 1 "
        "(about 1/3): the variance shift.",
        abs(eval_var - 1 / theory_train_var) < 0.05,
        f"eval-mode output variance {eval_var:.3f} (training mode: ~1)",
    )
    result.claim(
        "In a trained Dropout->BN network the last features shrink in eval mode (variance "
        "< 0.7x training mode); recomputing BN statistics without dropout restores the "
        "scale (within 20% of 1).",
        var_ev < 0.7 * var_tr and abs(var_rc - 1) < 0.2,
        f"feature variance: train {var_tr:.3f}, eval {var_ev:.3f}, recalibrated {var_rc:.3f}",
    )
    return result
