"""Class imbalance: weighted loss, oversampling, focal loss, moving the threshold; calibration.

What it shows, on a binary task with 5% positives (two Gaussian classes in 8 dimensions,
equal covariance, so logistic regression is the right model: the true log-odds are linear):

- Plain cross-entropy gives calibrated probabilities (the predicted p matches the observed
  frequency; expected calibration error, ECE, near 0) and a high accuracy, but at the default
  0.5 threshold it finds few of the rare positives: low recall.
- Weighting the positives by n_neg / n_pos (`pos_weight` in BCEWithLogitsLoss, `weight` in
  CrossEntropyLoss) or oversampling them to balance the classes raises the rare class's
  recall a lot. Both train the model on a world where the classes are balanced, so the
  predicted probabilities are no longer the real ones: the model over-predicts the rare
  class several times over and its ECE is large.
- Bayes' rule undoes it: the weight multiplies the positive class's odds by w, i.e. adds
  log w to the logit, so subtracting log w gives back calibrated probabilities (and the
  unweighted model's decisions). Equivalently: keep the plain model and lower the decision
  threshold (to about the class prior here). Weighting changes the operating point,
  not what the model can separate: the ranking quality (ROC AUC) stays the same.
- Focal loss (Lin et al. 2017) with gamma = 2 and no alpha: it down-weights well-classified
  examples of both classes. Lin et al. designed it for the foreground-background imbalance of
  dense detectors, where the abundant class is mostly easy; it works through difficulty, not
  class frequency. What really happens here: it does not raise the rare class's recall at
  threshold 0.5 at all (see also `dlprep demo ce-vs-mse` for alpha), but it does distort the
  probabilities. It is no longer the log-likelihood: its pointwise minimiser is a monotone
  function of the true probability that keeps 0.5 at 0.5 and pulls everything else towards
  it (a true 0.01 becomes about 0.15 for gamma = 2). So its decisions at 0.5 match plain
  CE's (focal loss is classification-calibrated but not strictly proper: Charoenphakdee et
  al., CVPR 2021, arXiv 2011.09172), while its mean p is several times the positive rate.
- The Bayes correction gives back calibration (ECE < 0.01), and the plain model's decisions
  approximately (recall within a few points): in a finite sample the weighted fit is not
  exactly the plain fit shifted by log w, and recall at 0.5 sits in the tail, where small
  differences in the slope show.

What really happens: which fix is "best" depends on the cost of each kind of error; the
demo shows that weighting, oversampling and moving the threshold are (nearly) the same
decision rule for a well-specified model, and that only the unweighted model's
probabilities can be read as probabilities without a correction.

Run: dlprep demo class-imbalance
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True


def _ece(p: torch.Tensor, y: torch.Tensor, bins: int = 10) -> float:
    """Expected calibration error for p(y = 1): bin by p, average |mean p - frequency|."""
    idx = (p * bins).clamp(max=bins - 1).long()
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.float().mean().item() * abs(p[m].mean().item() - y[m].mean().item())
    return total


def _auc(score: torch.Tensor, y: torch.Tensor) -> float:
    """ROC AUC: probability that a random positive scores above a random negative."""
    order = score.argsort()
    ranks = torch.empty_like(score)
    ranks[order] = torch.arange(1, len(score) + 1, dtype=score.dtype, device=score.device)
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    return ((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


def _fit(x, y, loss_name: str, pos_weight: float = 1.0):
    """Logistic regression fitted to convergence with L-BFGS."""
    w = torch.zeros(x.shape[1] + 1, dtype=x.dtype, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1, max_iter=200, line_search_fn="strong_wolfe")
    pw = torch.tensor(pos_weight, dtype=x.dtype, device=x.device)

    def closure():
        opt.zero_grad()
        z = x @ w[:-1] + w[-1]
        if loss_name == "focal":  # FL = -(1 - p_t)^gamma log p_t, gamma = 2
            log_pt = -F.binary_cross_entropy_with_logits(z, y, reduction="none")
            loss = (-((1 - log_pt.exp()) ** 2) * log_pt).mean()
        else:
            loss = F.binary_cross_entropy_with_logits(z, y, pos_weight=pw)
        loss.backward()
        return loss

    opt.step(closure)
    w = w.detach()
    return lambda v: v @ w[:-1] + w[-1]  # the logit


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    f64 = torch.float64
    d, prior = 8, 0.05
    mu = torch.zeros(d, dtype=f64)
    mu[0] = 2.0  # class means 0 and (2, 0, ..., 0): the Bayes-optimal AUC is about 0.92

    def sample(n):
        y = (torch.rand(n, generator=g) < prior).to(f64)
        x = torch.randn(n, d, generator=g, dtype=f64) + y.unsqueeze(1) * mu
        return x.to(device), y.to(device)

    x_tr, y_tr = sample(ctx.pick(6000, 20000))
    x_te, y_te = sample(40000)
    n_pos = y_tr.sum().item()
    w_pos = (len(y_tr) - n_pos) / n_pos  # n_neg / n_pos

    # oversampling: draw positives with replacement until the classes are balanced
    pos_idx = (y_tr == 1).nonzero().squeeze(1)
    extra = pos_idx[torch.randint(0, len(pos_idx), (int(len(y_tr) - 2 * n_pos),),
                                  generator=g).to(device)]  # fmt: skip
    x_os, y_os = torch.cat([x_tr, x_tr[extra]]), torch.cat([y_tr, y_tr[extra]])

    models = {
        "plain CE": _fit(x_tr, y_tr, "ce"),
        "weighted CE (pos_weight = n_neg/n_pos)": _fit(x_tr, y_tr, "ce", w_pos),
        "oversampled to 50/50": _fit(x_os, y_os, "ce"),
        "focal loss (gamma = 2)": _fit(x_tr, y_tr, "focal"),
    }
    weighted = models["weighted CE (pos_weight = n_neg/n_pos)"]
    rows, stats = [], {}
    trained = list(models)  # the four fitted models (the two rows added below reuse two of them)

    def evaluate(name, logit, threshold=0.5):
        p = torch.sigmoid(logit)
        pred = (p >= threshold).to(f64)
        tp = (pred * y_te).sum().item()
        s = {
            "recall": tp / y_te.sum().item(),
            "precision": tp / max(pred.sum().item(), 1.0),
            "accuracy": (pred == y_te).to(f64).mean().item(),
            "mean_p": p.mean().item(),
            "ece": _ece(p, y_te),
            "auc": _auc(logit, y_te),
        }
        stats[name] = s
        rows.append([name, f"{s['recall']:.3f}", f"{s['precision']:.3f}", f"{s['accuracy']:.3f}",
                     f"{s['mean_p']:.3f}", f"{s['ece']:.3f}", f"{s['auc']:.3f}"])  # fmt: skip

    for name, model in models.items():
        evaluate(name, model(x_te))
    evaluate("weighted, logit - log(w) (Bayes correction)", weighted(x_te) - math.log(w_pos))
    evaluate(f"plain CE, threshold {prior}", models["plain CE"](x_te), threshold=prior)
    base_rate = y_te.mean().item()

    result = DemoResult(
        metrics={"pos_weight": w_pos, "test_positive_rate": base_rate, **stats},
        tables=[
            Table(
                f"Logistic regression, {100 * prior:.0f}% positives, {len(y_tr)} training and "
                f"{len(y_te)} test examples (threshold 0.5 unless stated)",
                ["training", "rare recall", "precision", "accuracy", "mean p(y=1)", "ECE", "AUC"],
                rows,
            )  # fmt: skip
        ],
    )
    plain = stats["plain CE"]
    wt = stats["weighted CE (pos_weight = n_neg/n_pos)"]
    os_ = stats["oversampled to 50/50"]
    fixed = stats["weighted, logit - log(w) (Bayes correction)"]
    moved = stats[f"plain CE, threshold {prior}"]
    focal = stats["focal loss (gamma = 2)"]
    result.claim(
        "Plain cross-entropy is calibrated (ECE < 0.01, mean p within 0.01 of the positive "
        "rate) but finds few rare positives at threshold 0.5 (recall < 0.4).",
        plain["ece"] < 0.01 and abs(plain["mean_p"] - base_rate) < 0.01
        and plain["recall"] < 0.4,
        f"ECE {plain['ece']:.4f}; mean p {plain['mean_p']:.4f} vs rate {base_rate:.4f}; recall "
        f"{plain['recall']:.3f}",
    )  # fmt: skip
    result.claim(
        "Class weighting and oversampling raise rare-class recall by more than 0.4 and cost "
        "overall accuracy and precision.",
        min(wt["recall"], os_["recall"]) > plain["recall"] + 0.4
        and max(wt["accuracy"], os_["accuracy"]) < plain["accuracy"]
        and max(wt["precision"], os_["precision"]) < plain["precision"],
        f"recall {plain['recall']:.3f} -> weighted {wt['recall']:.3f}, oversampled "
        f"{os_['recall']:.3f}; accuracy {plain['accuracy']:.3f} -> {wt['accuracy']:.3f}",
    )
    result.claim(
        "...but their probabilities are no longer real: they over-predict the rare class (mean "
        "p > 4x the positive rate) and their ECE is over 10x the plain model's.",
        min(wt["mean_p"], os_["mean_p"]) > 4 * base_rate
        and min(wt["ece"], os_["ece"]) > 10 * plain["ece"],
        f"mean p: weighted {wt['mean_p']:.3f}, oversampled {os_['mean_p']:.3f} (rate "
        f"{base_rate:.3f}); ECE {wt['ece']:.3f}, {os_['ece']:.3f} vs {plain['ece']:.4f}",
    )
    result.claim(
        "Bayes' rule undoes the weighting: subtracting log(pos_weight) from the logit gives back "
        "calibrated probabilities (ECE < 0.01) and about the plain model's recall (within 0.06).",
        fixed["ece"] < 0.01 and abs(fixed["recall"] - plain["recall"]) < 0.06,
        f"corrected ECE {fixed['ece']:.4f}; recall {fixed['recall']:.3f} vs plain "
        f"{plain['recall']:.3f}",
    )
    aucs = [stats[name]["auc"] for name in trained]
    result.claim(
        "Weighting = moving the threshold: the plain model thresholded at the prior has the "
        "weighted model's recall (within 0.03), and the four trained models rank equally well "
        "(AUC within 0.005).",
        abs(moved["recall"] - wt["recall"]) < 0.03 and max(aucs) - min(aucs) < 0.005,
        f"recall: threshold {prior} {moved['recall']:.3f}, weighted {wt['recall']:.3f}; AUC "
        + ", ".join(f"{a:.4f}" for a in aucs),
    )
    result.claim(
        "Focal loss (gamma = 2, no alpha) does not raise rare recall at 0.5 (within 0.03 of "
        "plain CE), yet it distorts the probabilities (mean p > 2x the rate, ECE > 10x plain's).",
        abs(focal["recall"] - plain["recall"]) < 0.03
        and focal["mean_p"] > 2 * base_rate
        and focal["ece"] > 10 * plain["ece"],
        f"recall: plain {plain['recall']:.3f}, focal {focal['recall']:.3f}, weighted "
        f"{wt['recall']:.3f}; ECE focal {focal['ece']:.4f} vs plain {plain['ece']:.4f}",
    )
    return result
