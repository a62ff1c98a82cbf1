"""A scaling law in miniature: test loss vs model size fits L(N) = a N^-alpha + c.

What it shows, measured. Neural scaling laws (Kaplan et al. 2020, arXiv 2001.08361; Hoffmann
et al. 2022, "Chinchilla", arXiv 2203.15556) are empirical fits: when nothing else limits
it, test loss falls as a power law in the number of parameters N towards an irreducible
floor, L(N) = a N^(-alpha) + c (Chinchilla's E + A / N^alpha + B / D^beta with the data term
held fixed; Kaplan's L(N) = (N_c / N)^alpha_N had no floor term). The demo trains student
MLPs of six widths (2 to 64 hidden units) on the same task: regress a fixed random "teacher"
network from noisy samples (noise variance 0.09, the irreducible loss: no model can predict
the noise). Every student gets the same data, the same number of steps and a cosine
learning-rate schedule matched to that length (the correction Chinchilla made to Kaplan's
fits). Measured:

- Test loss falls with size, and the three-parameter law fits the six points closely in log
  space.
- The irreducible term matters for extrapolation: a pure power law (c = 0) fitted to the
  same points, extrapolated to a 1000x bigger model, predicts a loss below the noise
  variance, which is impossible; the floor is the Bayes error of the task.

What really happens at this scale: the law is poorly determined by six small models. The
exponent alpha ranges over roughly 0.2-0.65 across seeds with the same recipe, the fitted
floor c is usually near the noise variance but not always, and a pure power law fits the
six points almost as well as the law with a floor: a, alpha and c trade off against each
other. In the full run (4x the steps) the widest students start to overfit the 4096 samples
and the curve flattens early: data, not size, becomes the limit (Chinchilla's B / D^beta
term), and the fit is looser. Published exponents come from dozens of
runs over many orders of magnitude, and even then Kaplan's and Chinchilla's differ
(non-embedding parameter counts, schedules and the range of scales fitted; Pearce & Song
2024). Nothing here says anything about LLM exponents; it shows the functional form and why
the irreducible term matters.

Run: dlprep demo scaling-laws
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True


def fit_law(sizes: list[int], losses: list[float], with_floor: bool = True):
    """Least squares in log space for L = a N^-alpha + c: a grid over c in [0, min L), and
    for each c a straight line log(L - c) = log a - alpha log N. Returns (rms log error,
    a, alpha, c)."""
    log_n = torch.tensor(sizes, dtype=torch.float64).log()
    loss = torch.tensor(losses, dtype=torch.float64)
    design = torch.stack([torch.ones_like(log_n), log_n], 1)  # (sizes, 2)
    floors = [min(losses) * i / 400 for i in range(400)] if with_floor else [0.0]
    best = None
    for c in floors:
        coef = torch.linalg.lstsq(design, (loss - c).log()[:, None]).solution[:, 0]
        pred = coef[0].exp() * torch.exp(coef[1] * log_n) + c
        rms = ((pred.log() - loss.log()) ** 2).mean().sqrt().item()
        if best is None or rms < best[0]:
            best = (rms, coef[0].exp().item(), -coef[1].item(), c)
    return best


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    d, noise, n_data = 8, 0.3, 4096
    # the teacher: a fixed random tanh network of width 512
    w1 = torch.randn(d, 512, generator=g) * 2 / math.sqrt(d)
    w2 = torch.randn(512, 1, generator=g) / math.sqrt(512)

    def teacher(x):
        return torch.tanh(x @ w1) @ w2

    x_tr = torch.randn(n_data, d, generator=g)
    y_tr = teacher(x_tr) + noise * torch.randn(n_data, 1, generator=g)
    x_te = torch.randn(n_data, d, generator=g)
    y_te = teacher(x_te) + noise * torch.randn(n_data, 1, generator=g)
    x_tr, y_tr, x_te, y_te = (t.to(device) for t in (x_tr, y_tr, x_te, y_te))

    widths = [2, 4, 8, 16, 32, 64]
    steps = ctx.pick(1000, 4000)
    sizes, losses = [], []
    for width in widths:
        torch.manual_seed(ctx.seed)
        model = nn.Sequential(nn.Linear(d, width), nn.Tanh(), nn.Linear(width, 1)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)  # matched to the run
        batch_g = torch.Generator().manual_seed(ctx.seed + 1)  # the same batches for all
        for _ in range(steps):
            idx = torch.randint(0, n_data, (256,), generator=batch_g).to(device)
            loss = ((model(x_tr[idx]) - y_tr[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            losses.append(((model(x_te) - y_te) ** 2).mean().item())
        sizes.append(sum(p.numel() for p in model.parameters()))

    rms, a, alpha, c = fit_law(sizes, losses)
    rms_pure, a_pure, alpha_pure, _ = fit_law(sizes, losses, with_floor=False)
    result.tables.append(
        Table(
            f"Students trained {steps} steps on {n_data} noisy samples (noise variance "
            f"{noise**2:.2f}); fit L = {a:.2f} N^-{alpha:.2f} + {c:.3f}",
            ["hidden units", "parameters N", "test MSE", "fit with floor", "pure power law"],
            [
                [w, n, f"{loss:.4f}", f"{a * n**-alpha + c:.4f}", f"{a_pure * n**-alpha_pure:.4f}"]
                for w, n, loss in zip(widths, sizes, losses, strict=True)
            ],
        )  # fmt: skip
    )
    result.curves.append(Curve("Test MSE vs model size", "width", {"test MSE": losses}))
    result.metrics = {
        "parameters": sizes,
        "test_mse": losses,
        "fit": {"a": a, "alpha": alpha, "c": c, "rms_log_error": rms},
        "pure_power_law_fit": {"a": a_pure, "alpha": alpha_pure, "rms_log_error": rms_pure},
        "noise_variance": noise**2,
    }
    result.claim(
        "Test loss falls with model size: the largest student's loss is <= 0.8x the smallest's.",
        losses[-1] <= 0.8 * losses[0],
        "test MSE by width: "
        + ", ".join(f"{w}: {v:.4f}" for w, v in zip(widths, losses, strict=True)),
    )
    result.claim(
        "L(N) = a N^-alpha + c fits the losses closely (rms error in log space <= 0.04).",
        rms <= 0.04,
        f"rms log error {rms:.4f}; alpha {alpha:.2f}, c {c:.4f}",
    )
    far = 1000 * sizes[-1]
    pure_far = a_pure * far**-alpha_pure
    result.claim(
        f"Without a floor the fit is self-contradictory: extrapolated to 1000x the largest "
        f"model (N = {far}) a pure power law predicts a loss below the label-noise variance, "
        "which no model can reach.",
        pure_far < noise**2,
        f"pure power law at N = {far}: {pure_far:.4f}; noise variance {noise**2:.4f}",
    )
    result.notes.append(
        "What really happens at this scale: six small models do not pin the law down. The "
        f"exponent (alpha = {alpha:.2f} for this seed) and the floor (c = {c:.4f}; the true "
        f"irreducible loss is {noise**2:.2f}) trade off against each other and vary a lot "
        "across seeds (try --seed), and a pure power law fits the six points almost as well "
        f"(rms log error {rms_pure:.4f} vs {rms:.4f}). Only its extrapolation gives it away."
    )
    return result
