"""The perceptron rule: converges within (R/gamma)^2 mistakes if separable, never if not; vs LR/SVM.

What it shows, on 2-D synthetic data (inputs augmented with a constant 1 for the bias):

- Rosenblatt's rule (1958): for each example with label y in {-1, +1}, if sign(w.x) != y,
  update w <- w + y x; otherwise do nothing. Novikoff's theorem (1962): if some unit vector u
  separates the data with margin gamma (y u.x >= gamma for all examples) and every |x| <= R,
  the rule makes at most (R / gamma)^2 mistakes, whatever the order. Measured: it stops
  (an epoch without a mistake) after far fewer updates than the bound.
- Flip 10% of the labels (not separable) and it never stops: every epoch still has mistakes,
  and the final weights depend on which example came last, so the accuracy of the last
  iterate jumps from epoch to epoch. Averaging the weights over all steps (the averaged /
  voted perceptron, Freund & Schapire 1999) gives a stable classifier.
- Logistic regression (same linear model, sigmoid output, cross-entropy loss, gradient
  descent) converges on the noisy data: its loss is convex and smooth, and every example
  contributes sigma(-y w.x) y x to the gradient, not only the mistakes. It also outputs a
  probability, which the perceptron's hard threshold cannot.
- On separable data the perceptron stops at the FIRST separating line it finds, often close to
  some points (its margin is sometimes close to 0). A linear SVM (hinge loss
  max(0, 1 - y w.x) + a small L2 penalty, solved here by plain subgradient descent) finds
  the maximum-margin line: its margin is at least the gap the data were made with. (With a
  larger penalty, 1e-3 instead of 1e-4, the soft-margin SVM lets a few points inside the
  margin and its line's minimum margin is smaller: the penalty trades margin width against
  violations.) Logistic regression on separable data has no finite minimiser: its weights
  grow without bound (roughly like log t) while the direction drifts towards the max-margin
  one (Soudry et al. 2018, "The Implicit Bias of Gradient Descent on Separable Data"); here
  its line ends within ~20% of the SVM's margin after 3,000 steps (the direction converges
  only like 1/log t).

Run: dlprep demo perceptron-learning
"""

from __future__ import annotations

import torch

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True


def _data(n: int, flip: float, g: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """n points in [-1, 1]^2, labelled by a random line, with a gap of 0.1 around it; a share
    `flip` of the labels is then flipped. Returns x augmented with a 1: (n, 3), y in {-1, 1}."""
    angle = torch.rand(1, generator=g) * 2 * torch.pi
    w_true = torch.cat([torch.cos(angle), torch.sin(angle)])  # (2,) unit normal
    b_true = 0.4 * (torch.rand(1, generator=g) - 0.5)
    x = torch.rand(4 * n, 2, generator=g) * 2 - 1
    score = x @ w_true + b_true
    keep = score.abs() > 0.1  # the gap that guarantees a margin
    x, score = x[keep][:n], score[keep][:n]
    y = torch.sign(score)
    flips = torch.rand(n, generator=g) < flip
    y[flips] = -y[flips]
    x_aug = torch.cat([x, torch.ones(n, 1)], dim=1)  # (n, 3): the bias is the third weight
    u = torch.cat([w_true, b_true]) / torch.cat([w_true, b_true]).norm()
    return x_aug.to(device), y.to(device), u.to(device)


def _perceptron(x, y, epochs: int, g: torch.Generator):
    """Online perceptron. Returns final w, averaged w, mistakes per epoch, last-iterate
    accuracy after each epoch, total updates, and whether an epoch had no mistake."""
    w = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
    w_sum = torch.zeros_like(w)
    steps, updates, per_epoch, acc_per_epoch = 0, 0, [], []
    converged = False
    for _ in range(epochs):
        mistakes = 0
        for i in torch.randperm(len(y), generator=g).tolist():
            if y[i] * (x[i] @ w) <= 0:  # a mistake (or on the line): move towards y_i x_i
                w = w + y[i] * x[i]
                mistakes += 1
            w_sum += w
            steps += 1
        updates += mistakes
        per_epoch.append(mistakes)
        acc_per_epoch.append(_acc(w, x, y))
        if mistakes == 0:
            converged = True
            break
    return w, w_sum / steps, per_epoch, acc_per_epoch, updates, converged


def _acc(w, x, y) -> float:
    return (torch.sign(x @ w) == y).float().mean().item()


def _margin(w, x, y) -> float:
    """Geometric margin of the line w[:2].x + w[2] = 0: min over points of y * distance."""
    return (y * (x @ w) / w[:2].norm()).min().item()


def _fit(x, y, loss_name: str, steps: int, lam: float = 0.0, lr: float = 0.5):
    w = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device, requires_grad=True)
    opt = torch.optim.SGD([w], lr=lr)
    norms = []
    for _ in range(steps):
        m = y * (x @ w)  # (n,) functional margins
        if loss_name == "logistic":
            loss = torch.nn.functional.softplus(-m).mean()  # log(1 + exp(-y w.x))
        else:
            loss = torch.relu(1 - m).mean() + lam / 2 * (w[:2] ** 2).sum()  # hinge + L2
        opt.zero_grad()
        loss.backward()
        opt.step()
        norms.append(w.detach().norm().item())
    return w.detach(), norms


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    n = 200
    result = DemoResult()

    # ---- 1. separable data: convergence within Novikoff's bound --------------------------
    x, y, u = _data(n, 0.0, g, device)
    gamma = (y * (x @ u)).min().item()  # margin of the true separator (unit vector u)
    true_gap = _margin(u, x, y)  # the same line's geometric margin in the 2-D plane (>= 0.1)
    radius = x.norm(dim=1).max().item()
    bound = (radius / gamma) ** 2
    w_p, _, per_epoch, _, updates, converged = _perceptron(x, y, 100, g)
    perceptron_margin = _margin(w_p, x, y)

    # the same separable data: hinge + small L2 (a linear SVM) and logistic regression
    steps = ctx.pick(3000, 10000)
    w_svm, _ = _fit(x, y, "hinge", steps, lam=1e-4, lr=2.0)
    svm_margin = _margin(w_svm, x, y)
    w_lr, norms = _fit(x, y, "logistic", steps, lr=2.0)
    lr_margin = _margin(w_lr, x, y)
    norm_quarter, norm_end = norms[steps // 4 - 1], norms[-1]

    # ---- 2. 10% flipped labels: no convergence; averaging; logistic regression --------------
    xn, yn, _ = _data(n, 0.1, g, device)
    epochs = ctx.pick(30, 100)
    w_last, w_avg, per_epoch_n, acc_n, _, converged_n = _perceptron(xn, yn, epochs, g)
    tail = acc_n[-10:]
    w_log, _ = _fit(xn, yn, "logistic", steps, lr=2.0)
    acc_log, acc_avg = _acc(w_log, xn, yn), _acc(w_avg, xn, yn)
    # logistic regression's outputs are probabilities: mean p(y=1|x) vs the label frequency
    p_log = torch.sigmoid(xn @ w_log)
    calib_gap = (p_log.mean() - (yn > 0).float().mean()).abs().item()

    result.tables.append(
        Table(
            f"Separable data ({n} points, margin gamma = {gamma:.3f}, R = {radius:.2f})",
            ["method", "result", "geometric margin of its line"],
            [
                [
                    "perceptron",
                    f"{updates} mistakes (bound (R/gamma)^2 = {bound:.0f}), "
                    f"{len(per_epoch)} epochs",
                    f"{perceptron_margin:.4f}",
                ],
                ["linear SVM (hinge + L2)", f"{steps} subgradient steps", f"{svm_margin:.4f}"],
                [
                    "logistic regression",
                    f"|w| {norm_quarter:.1f} after {steps // 4} steps, "
                    f"{norm_end:.1f} after {steps}",
                    f"{lr_margin:.4f}",
                ],
            ],
        )  # fmt: skip
    )
    result.tables.append(
        Table(
            f"10% flipped labels: perceptron for {epochs} epochs vs logistic regression",
            ["quantity", "value"],
            [
                ["mistakes in each of the last 5 epochs", per_epoch_n[-5:]],
                [
                    "last-iterate train accuracy, last 10 epochs",
                    ", ".join(f"{a:.3f}" for a in tail),
                ],
                ["averaged perceptron train accuracy", f"{acc_avg:.3f}"],
                ["logistic regression train accuracy", f"{acc_log:.3f}"],
                ["|mean p(y=1) - share of y=1| (logistic)", f"{calib_gap:.4f}"],
            ],
        )  # fmt: skip
    )
    result.metrics = {
        "margin_gamma": gamma,
        "true_line_geometric_margin": true_gap,
        "radius": radius,
        "novikoff_bound": bound,
        "perceptron_mistakes": updates,
        "perceptron_margin": perceptron_margin,
        "svm_margin": svm_margin,
        "logistic_margin": lr_margin,
        "logistic_norm_quarter_and_end": [norm_quarter, norm_end],
        "noisy_last_iterate_accuracy_tail": tail,
        "noisy_averaged_perceptron_accuracy": acc_avg,
        "noisy_logistic_accuracy": acc_log,
    }
    result.claim(
        "On linearly separable data the perceptron rule stops (an epoch without a mistake) "
        "after at most (R/gamma)^2 mistakes (Novikoff's bound).",
        converged and updates <= bound,
        f"{updates} mistakes in {len(per_epoch)} epochs; bound {bound:.0f}",
    )
    result.claim(
        "With 10% flipped labels it never converges: every one of the last 10 epochs still "
        "has mistakes, and the last iterate's accuracy jumps between epochs.",
        not converged_n and min(per_epoch_n[-10:]) > 0 and max(tail) - min(tail) > 0.02,
        f"mistakes in the last 10 epochs {per_epoch_n[-10:]}; accuracy range "
        f"{min(tail):.3f}-{max(tail):.3f}",
    )
    result.claim(
        "Averaging the perceptron's weights over all steps, or logistic regression (convex, "
        "every example in the gradient), gives at least the mean last-iterate accuracy.",
        acc_avg >= sum(tail) / len(tail) - 0.005 and acc_log >= sum(tail) / len(tail) - 0.005,
        f"averaged {acc_avg:.3f}, logistic {acc_log:.3f}, last-iterate mean "
        f"{sum(tail) / len(tail):.3f}",
    )
    result.claim(
        "Logistic regression's output is a probability: trained to its optimum (the bias's "
        "gradient is mean(p - y) = 0), its mean predicted p(y=1) equals the share of positives "
        "(within 0.02), which a step function cannot give.",
        calib_gap < 0.02,
        f"|mean p - share| = {calib_gap:.4f}",
    )
    result.claim(
        "The perceptron stops at the first separating line; the hinge-loss SVM finds the "
        "maximum margin (at least the data's built-in gap, and >= 1.5x the perceptron's).",
        svm_margin >= 0.95 * true_gap and svm_margin >= 1.5 * perceptron_margin,
        f"geometric margins: perceptron {perceptron_margin:.4f}, SVM {svm_margin:.4f}, "
        f"true line {true_gap:.4f}",
    )
    result.claim(
        "On separable data logistic regression has no finite minimiser: its weight norm keeps "
        "growing (here >= 1.2x from a quarter of the steps to the end).",
        norm_end >= 1.2 * norm_quarter,
        f"|w| {norm_quarter:.2f} -> {norm_end:.2f}",
    )
    return result
