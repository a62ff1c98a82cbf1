"""Softmax for exclusive classes, sigmoid for independent labels; stable log-softmax/logsumexp.

What it shows:
- softmax(z)_k = exp(z_k) / sum_j exp(z_j) turns K logits into ONE distribution: the
  probabilities sum to 1 and only logit differences matter (adding a constant to every logit
  changes nothing). It is the output for mutually exclusive classes, trained with
  cross-entropy. With K = 2 it is exactly a sigmoid of the logit difference.
- sigmoid(z_k) = 1 / (1 + exp(-z_k)) gives each label its OWN probability: they need not sum to
  anything, so several labels can be near 1 at once, or none. It is the output for multi-label
  problems, trained with binary cross-entropy per label.
- Numerical stability (float32): exp overflows above ~88.7, so a naive exp(z) / sum(exp(z)) is
  inf/inf = nan for large logits, and log(softmax(z)) is log(0) = -inf when a probability
  underflows. torch.softmax / log_softmax / logsumexp subtract the max first
  (log sum exp z = m + log sum exp(z - m)) and stay exact. Likewise -log(sigmoid(z)) is inf for
  z = -200, while BCE on logits, softplus(z) - y z, is exact.
- Training a linear model on multi-label data: sigmoid + BCE gives both labels of a 2-label
  example a high probability; softmax + cross-entropy (targets spread evenly over the true
  labels) must split its unit of mass between them, so at most one clears 0.5 (a linear
  softmax does not even split evenly: it ranks), and it cannot say "none of these" for an
  example without labels.

What really happens (a PyTorch gotcha): F.binary_cross_entropy on probabilities clamps log(p)
at -100 (documented in torch.nn.BCELoss). With p = sigmoid(-200) = 0 and target 1 it reports a
loss of 100 instead of 200 and a gradient of exactly 0: the most wrong prediction teaches
nothing. F.binary_cross_entropy_with_logits gives 200 and gradient -1.

Run: dlprep demo softmax-vs-sigmoid
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True


def bce_with_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-y log s(z) - (1 - y) log(1 - s(z)) = softplus(z) - y z: never takes log(0).
    (Same values as F.binary_cross_entropy_with_logits, checked below; written out because
    that kernel is slow on tiny CPU tensors when the cores are busy.)"""
    return F.softplus(logits) - targets * logits


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a target distribution, via the stable log_softmax."""
    return -(target_probs * torch.log_softmax(logits, dim=1)).sum(dim=1)


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)

    # ---- 1. what the two outputs are ---------------------------------------------------------
    z = (3 * torch.randn(1000, 5, generator=g)).to(device)  # (N, K) random logits
    p_soft, p_sig = torch.softmax(z, dim=1), torch.sigmoid(z)
    soft_sum_err = (p_soft.sum(1) - 1).abs().max().item()
    sig_sums = p_sig.sum(1)
    shift_soft = (torch.softmax(z + 100, dim=1) - p_soft).abs().max().item()
    shift_sig = (torch.sigmoid(z + 100) - p_sig).abs().max().item()
    two = z[:, :2]  # softmax over 2 classes = sigmoid of the logit difference
    k2_diff = (torch.softmax(two, 1)[:, 0] - torch.sigmoid(two[:, 0] - two[:, 1])).abs().max()

    # ---- 2. numerical stability in float32 ---------------------------------------------------
    big = torch.tensor([1000.0, 999.0, 0.0], device=device)
    naive_softmax = torch.exp(big) / torch.exp(big).sum()  # inf / inf
    torch_softmax = torch.softmax(big, dim=0)
    exact_softmax = [1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1)), 0.0]
    apart = torch.tensor([200.0, 0.0], device=device)
    naive_log_softmax = torch.log(torch.softmax(apart, dim=0))  # log(exp(-200)) = log(0)
    stable_log_softmax = torch.log_softmax(apart, dim=0)
    tie = torch.tensor([1000.0, 1000.0], device=device)
    naive_lse = torch.log(torch.exp(tie).sum()).item()
    stable_lse = torch.logsumexp(tie, dim=0).item()
    wrong = torch.tensor([-200.0], device=device, requires_grad=True)  # logit; target is 1
    one = torch.ones(1, device=device)
    naive_bce = -torch.log(torch.sigmoid(wrong)).item()
    clamped = F.binary_cross_entropy(torch.sigmoid(wrong), one)
    (clamped_grad,) = torch.autograd.grad(clamped, wrong)
    stable = F.binary_cross_entropy_with_logits(wrong, one)
    (stable_grad,) = torch.autograd.grad(stable, wrong)
    ours = bce_with_logits(wrong, one).item()

    # ---- 3. multi-label data: sigmoid + BCE vs softmax + CE ----------------------------------
    n, d, k = 4096, 8, 3
    x = torch.randn(n, d, generator=g)  # (N, d)
    y = (x[:, :k] + 0.3 * torch.randn(n, k, generator=g) > 0).float()  # (N, K) independent labels
    x, y = x.to(device), y.to(device)
    train, test = slice(0, n // 2), slice(n // 2, n)
    steps = ctx.pick(300, 1500)
    n_labels = y.sum(1)  # (N,)

    sig_model = torch.nn.Linear(d, k).to(device)
    soft_model = torch.nn.Linear(d, k).to(device)
    soft_model.load_state_dict(sig_model.state_dict())  # same start
    has_label = n_labels[train] > 0  # softmax cannot express "no label": train it on the rest
    soft_targets = y[train][has_label] / n_labels[train][has_label, None]  # (M, K), rows sum to 1
    opt_sig = torch.optim.Adam(sig_model.parameters(), lr=0.05)
    opt_soft = torch.optim.Adam(soft_model.parameters(), lr=0.05)
    losses = {"sigmoid + BCE": [], "softmax + CE": []}
    for _ in range(steps):
        loss_sig = bce_with_logits(sig_model(x[train]), y[train]).mean()
        loss_soft = soft_cross_entropy(soft_model(x[train][has_label]), soft_targets).mean()
        opt_sig.zero_grad()
        opt_soft.zero_grad()
        (loss_sig + loss_soft).backward()  # independent models: one backward serves both
        opt_sig.step()
        opt_soft.step()
        losses["sigmoid + BCE"].append(loss_sig.item())
        losses["softmax + CE"].append(loss_soft.item())

    with torch.no_grad():
        q_sig = torch.sigmoid(sig_model(x[test]))  # (N_test, K)
        q_soft = torch.softmax(soft_model(x[test]), dim=1)
    yt, lt = y[test], n_labels[test]

    def on_positives(q, mask):  # mean probability given to the true labels of those examples
        return (q[mask] * yt[mask]).sum().item() / yt[mask].sum().item()

    two_lab = lt == 2
    none_lab = lt == 0
    pos_sig2, pos_soft2 = on_positives(q_sig, two_lab), on_positives(q_soft, two_lab)
    both_sig = ((q_sig > 0.5) | (yt == 0)).all(1)[two_lab].float().mean().item()
    both_soft = ((q_soft > 0.5) | (yt == 0)).all(1)[two_lab].float().mean().item()
    exact_sig = ((q_sig > 0.5).float() == yt).all(1).float().mean().item()
    exact_soft = ((q_soft > 0.5).float() == yt).all(1).float().mean().item()
    none_sig = (q_sig[none_lab] < 0.5).all(1).float().mean().item()
    none_soft_max = q_soft[none_lab].max(1).values.mean().item()
    # one clear-cut 2-label example, chosen by its inputs (every label's feature far from 0)
    clarity = x[test][:, :k].abs().min(1).values.masked_fill(~two_lab, -1.0)  # (N_test,)
    example = int(clarity.argmax())

    result = DemoResult(
        metrics={
            "softmax: max |sum - 1|": soft_sum_err,
            "sigmoid: row sums min/max": [sig_sums.min().item(), sig_sums.max().item()],
            "softmax: max change when adding 100 to all logits": shift_soft,
            "sigmoid: max change when adding 100 to all logits": shift_sig,
            "K=2 softmax vs sigmoid(z1 - z2): max diff": k2_diff.item(),
            "naive softmax([1000, 999, 0])": naive_softmax.tolist(),
            "torch.softmax([1000, 999, 0])": torch_softmax.tolist(),
            "naive log(softmax([200, 0]))": naive_log_softmax.tolist(),
            "log_softmax([200, 0])": stable_log_softmax.tolist(),
            "naive logsumexp([1000, 1000])": naive_lse,
            "torch.logsumexp([1000, 1000])": stable_lse,
            "-log(sigmoid(-200))": naive_bce,
            "F.binary_cross_entropy(sigmoid(-200), 1): loss, grad": [
                clamped.item(),
                clamped_grad.item(),
            ],
            "F.binary_cross_entropy_with_logits(-200, 1): loss, grad": [
                stable.item(),
                stable_grad.item(),
            ],
            "2-label test examples: mean p(true label), sigmoid / softmax": [pos_sig2, pos_soft2],
            "2-label test examples: both labels > 0.5, sigmoid / softmax": [both_sig, both_soft],
            "test exact label-set accuracy at 0.5, sigmoid / softmax": [exact_sig, exact_soft],
            "0-label test examples: all p < 0.5 (sigmoid)": none_sig,
            "0-label test examples: mean max p (softmax)": none_soft_max,
        },
        tables=[
            Table(
                "float32: naive formulas vs PyTorch's stable ones",
                ["quantity", "naive", "stable", "exact"],
                [
                    [
                        "softmax([1000, 999, 0])",
                        _fmt_list(naive_softmax),
                        _fmt_list(torch_softmax),
                        _fmt_list(exact_softmax),
                    ],
                    [
                        "log softmax([200, 0])",
                        _fmt_list(naive_log_softmax),
                        _fmt_list(stable_log_softmax),
                        "[0, -200]",
                    ],
                    [
                        "logsumexp([1000, 1000])",
                        f"{naive_lse}",
                        f"{stable_lse:.4f}",
                        f"{1000 + math.log(2):.4f}",
                    ],
                    [
                        "BCE(logit -200, target 1)",
                        f"-log σ: {naive_bce}; BCELoss: {clamped.item():g} (grad "
                        f"{clamped_grad.item():g})",
                        f"{stable.item():g} (grad {stable_grad.item():g})",
                        "200 (grad -1)",
                    ],
                ],
            ),
            Table(
                f"Multi-label test set ({n // 2} examples, {k} independent labels)",
                ["", "sigmoid + BCE", "softmax + CE"],
                [
                    ["2-label examples: mean p(true label)", f"{pos_sig2:.2f}", f"{pos_soft2:.2f}"],
                    ["2-label examples: both > 0.5", f"{both_sig:.0%}", f"{both_soft:.0%}"],
                    ["exact label set at threshold 0.5", f"{exact_sig:.0%}", f"{exact_soft:.0%}"],
                    [
                        "0-label examples",
                        f"all p < 0.5 in {none_sig:.0%}",
                        f"mean max p {none_soft_max:.2f}",
                    ],
                    [
                        f"a clear-cut example, labels {yt[example].int().tolist()}",
                        _fmt_list(q_sig[example]),
                        _fmt_list(q_soft[example]),
                    ],
                ],
            ),
        ],
        curves=[Curve("Training loss", "step", losses, log_y=True)],
        notes=[
            "softmax + CE was trained only on examples with at least one label: a distribution "
            "that sums to 1 cannot say 'none of these'.",
            f"F.binary_cross_entropy clamps log(p) at -100: loss {clamped.item():g} and gradient "
            f"{clamped_grad.item():g} for a logit of -200 whose true label is 1. Use "
            "binary_cross_entropy_with_logits (BCEWithLogitsLoss) on raw logits.",
        ],
    )
    result.claim(
        "Softmax outputs sum to 1 and do not change when a constant is added to every logit; "
        "sigmoid outputs do neither.",
        soft_sum_err < 1e-5
        and shift_soft < 1e-5
        and shift_sig > 0.5
        and sig_sums.max().item() - sig_sums.min().item() > 1,
        f"softmax max |sum - 1| {soft_sum_err:.1e}, shift change {shift_soft:.1e}; sigmoid sums "
        f"{sig_sums.min().item():.2f}..{sig_sums.max().item():.2f}, shift change {shift_sig:.2f}",
    )
    result.claim(
        "A 2-class softmax is a sigmoid of the logit difference.",
        k2_diff.item() < 1e-5,
        f"max |softmax(z)_1 - sigmoid(z1 - z2)| = {k2_diff.item():.1e}",
    )
    result.claim(
        "Naive exp(z)/sum(exp(z)) gives nan for logits [1000, 999, 0] in float32; torch.softmax "
        "(max subtracted first) gives the exact answer.",
        torch.isnan(naive_softmax).any().item()
        and max(abs(a - b) for a, b in zip(torch_softmax.tolist(), exact_softmax, strict=True))
        < 1e-6,
        f"naive {_fmt_list(naive_softmax)}; torch {_fmt_list(torch_softmax)}",
    )
    result.claim(
        "log(softmax) underflows to -inf and log(sum(exp)) overflows to inf; log_softmax and "
        "logsumexp stay exact.",
        math.isinf(naive_log_softmax[1].item())
        and abs(stable_log_softmax[1].item() + 200) < 1e-4
        and math.isinf(naive_lse)
        and abs(stable_lse - (1000 + math.log(2))) < 1e-3,
        f"log softmax: {_fmt_list(naive_log_softmax)} vs {_fmt_list(stable_log_softmax)}; "
        f"logsumexp: {naive_lse} vs {stable_lse:.4f}",
    )
    result.claim(
        "BCE on probabilities fails for a confident wrong logit (-log sigmoid(-200) = inf; "
        "BCELoss clamps to 100 with zero gradient); BCE with logits gives 200 and gradient -1.",
        math.isinf(naive_bce)
        and clamped_grad.item() == 0
        and abs(stable.item() - 200) < 1e-3
        and abs(stable_grad.item() + 1) < 1e-6
        and abs(ours - stable.item()) < 1e-3,
        f"-log sigmoid = {naive_bce}; BCELoss {clamped.item():g} (grad {clamped_grad.item():g}); "
        f"with logits {stable.item():g} (grad {stable_grad.item():g})",
    )
    result.claim(
        "On 2-label examples sigmoid + BCE gives both true labels a high probability; softmax "
        "+ CE learns to split its unit of mass between them (0.5 each at best).",
        pos_sig2 > 0.8 and both_sig > 0.7 and 0.35 < pos_soft2 <= 0.5 + 1e-6,
        f"mean p(true label): sigmoid {pos_sig2:.2f}, softmax {pos_soft2:.2f}; both labels "
        f"> 0.5: sigmoid {both_sig:.0%}, softmax {both_soft:.0%}",
    )
    result.claim(
        "Sigmoid can say 'none of these': on examples without labels it keeps every "
        "probability below 0.5 most of the time.",
        none_sig > 0.6,
        f"all p < 0.5 on {none_sig:.0%} of 0-label examples; softmax's largest p averages "
        f"{none_soft_max:.2f} there",
    )
    return result


def _fmt_list(values) -> str:
    values = values.tolist() if isinstance(values, torch.Tensor) else values
    return "[" + ", ".join(f"{v:.3g}" for v in values) + "]"
