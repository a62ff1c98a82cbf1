"""Deep ensembles: average independently trained nets for a lower NLL and better calibration.

What it shows, measured on a small noisy classification task (10 overlapping Gaussian
classes, a few hundred training points) with M MLPs that differ only in their random
initialisation and minibatch order (Lakshminarayanan et al. 2017, "Simple and Scalable
Predictive Uncertainty Estimation using Deep Ensembles", arXiv 1612.01474):

- Different random initialisations (and minibatch orders), with the same data, make the
  members disagree on 5-8% of the test points (pairwise, here): they land in different
  solutions (Fort et al. 2019, "Deep Ensembles: A Loss Landscape Perspective",
  arXiv 1912.02757), so their errors are partly independent.
- Averaging their predicted probabilities gives a lower test NLL than even the best single
  member and a lower calibration error: each overfit member is overconfident, and where
  they disagree the average is not. What really happens to accuracy at this scale: the
  ensemble's accuracy is only 0.1-0.5 points above the average member's (over seeds 0-9),
  because the members agree on most points; the accuracy gains of deep ensembles reported
  on real data come with bigger, more diverse models. The demo reports accuracy and does
  not claim it.
- For the average of probabilities, NLL(ensemble) <= mean NLL(members) always holds (Jensen:
  -log is convex); beating the *best* member, and the accuracy gain, are empirical and need
  diverse members.
- The cost: M times the training and inference compute and memory. MC dropout, snapshot
  ensembles and weight averaging (SWA) are cheaper approximations; distillation can compress
  an ensemble into one network.

Run: dlprep demo ensembling
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True


def _ece(probs: torch.Tensor, y: torch.Tensor, bins: int = 10) -> float:
    """Expected calibration error: |accuracy - confidence| averaged over confidence bins."""
    conf, pred = probs.max(1)
    correct = (pred == y).float()
    edges = torch.linspace(0, 1, bins + 1).tolist()
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.float().mean().item() * abs(correct[m].mean().item() - conf[m].mean().item())
    return ece


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    d, k, n_train = 20, 10, 200
    centres = 0.7 * torch.randn(k, d, generator=g)

    def sample(n):
        y = torch.randint(0, k, (n,), generator=g)
        return (centres[y] + torch.randn(n, d, generator=g)).to(device), y.to(device)

    x_tr, y_tr = sample(n_train)
    x_te, y_te = sample(4000)
    n_members = 5
    steps = ctx.pick(400, 1500)
    probs, rows = [], []
    for m in range(n_members):
        torch.manual_seed(ctx.seed * 100 + m)  # each member: its own init and batch order
        model = nn.Sequential(nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, k)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(steps):
            idx = torch.randint(0, n_train, (64,)).to(device)
            loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            p = model(x_te).softmax(1)  # (4000, K)
        probs.append(p)
    stats = []
    for m, p in enumerate(probs):
        acc = (p.argmax(1) == y_te).float().mean().item()
        nll = F.nll_loss(p.clamp_min(1e-12).log(), y_te).item()
        stats.append({"acc": acc, "nll": nll, "ece": _ece(p.cpu(), y_te.cpu())})
        rows.append([f"member {m + 1}", f"{acc:.3f}", f"{nll:.3f}", f"{stats[-1]['ece']:.3f}"])
    p_ens = torch.stack(probs).mean(0)  # average the probabilities
    ens = {
        "acc": (p_ens.argmax(1) == y_te).float().mean().item(),
        "nll": F.nll_loss(p_ens.log(), y_te).item(),
        "ece": _ece(p_ens.cpu(), y_te.cpu()),
    }
    rows.append(["ensemble (mean of probabilities)", f"{ens['acc']:.3f}", f"{ens['nll']:.3f}",
                 f"{ens['ece']:.3f}"])  # fmt: skip
    preds = torch.stack([p.argmax(1) for p in probs])  # (M, 4000)
    disagree = (preds != preds[0]).any(0).float().mean().item()  # any member differs
    pair = sum((preds[i] != preds[j]).float().mean().item()
               for i in range(n_members) for j in range(i + 1, n_members))  # fmt: skip
    pair /= n_members * (n_members - 1) / 2
    result.tables.append(
        Table(
            f"{n_members} MLPs ({d}-256-{k}), {n_train} noisy training points, {steps} "
            "Adam steps each; test set of 4000",
            ["model", "accuracy", "NLL", "ECE"],
            rows,
        )
    )
    mean = {key: sum(s[key] for s in stats) / n_members for key in ("acc", "nll", "ece")}
    best_nll = min(s["nll"] for s in stats)
    result.notes.append(
        f"Accuracy: ensemble {ens['acc']:.3f}, mean member {mean['acc']:.3f} (not claimed: "
        "the gain at this scale is within seed noise)."
    )
    result.metrics = {
        "members": stats,
        "ensemble": ens,
        "mean_member": mean,
        "pairwise_disagreement": pair,
        "any_disagreement": disagree,
    }
    result.claim(
        "Members trained on the same data from different random initialisations (and "
        "minibatch orders) disagree on >= 3% of test points (pairwise), and some member "
        "differs on >= 8%.",
        pair >= 0.03 and disagree >= 0.08,
        f"mean pairwise disagreement {pair:.3f}; some member differs on {disagree:.3f}",
    )
    result.claim(
        "The ensemble's test NLL is lower than the best single member's.",
        ens["nll"] < best_nll,
        f"ensemble NLL {ens['nll']:.3f}, best member {best_nll:.3f}, mean member {mean['nll']:.3f}",
    )
    result.claim(
        "Its calibration error (ECE) is lower than the average member's: the members are "
        "overconfident where they disagree, and the average is not.",
        ens["ece"] < mean["ece"],
        f"accuracy: ensemble {ens['acc']:.3f}, mean member {mean['acc']:.3f}; ECE: ensemble "
        f"{ens['ece']:.3f}, mean member {mean['ece']:.3f}",
    )
    return result
