"""Minibatch gradient noise: unbiased, variance ~ 1/B (with a finite-population correction).

What it shows, measured on a small MLP's per-example gradients (torch.func, float64):

- The minibatch gradient g_B = (1/B) sum_{i in batch} g_i is an unbiased estimate of the
  full-batch gradient g: averaged over many random batches it lands on g.
- Its mean squared deviation E||g_B - g||^2 falls as 1/B. Sampling *with* replacement it is
  exactly sigma^2 / B, where sigma^2 = (1/N) sum_i ||g_i - g||^2 is the per-example variance.
  Sampling *without* replacement (what a DataLoader does within an epoch) it is
  sigma^2 / B * (N - B) / (N - 1): the finite-population correction. At B = N the batch is
  the whole set and the noise is zero, so the raw log-log slope is steeper than -1 once B is a
  sizeable fraction of N; divided by the correction, the slope is -1.
- So the noise *standard deviation* falls only as 1/sqrt(B): 4x the batch halves the noise.

The linear scaling rule (Goyal et al. 2017, "Accurate, Large Minibatch SGD: Training ImageNet
in 1 Hour"): when the batch grows by k, multiply the learning rate by k. Why: k SGD steps of
batch B with lr eta move the weights by about -eta * sum of k gradients, and one step of
batch kB with lr k*eta moves them by the same amount, *provided the gradient barely changes
over those k steps*; the update noise per epoch (~ eta^2 / B per step) stays the same. Its
limits: (1) early in training the gradient changes fast, so a large LR breaks the
approximation: Goyal et al. needed a gradual warmup (5 epochs) and still lost accuracy beyond
a batch of ~8k on ImageNet; (2) beyond a "critical batch size", roughly the simple gradient
noise scale B_simple = tr(Sigma) / |g|^2 (McCandlish et al. 2018, "An Empirical Model of
Large-Batch Training": B_noise = tr(H Sigma) / (g^T H g) with H taken as a multiple of the
identity), a bigger batch no longer cuts the number of steps: the gradient is already
accurate and curvature, not noise, limits the step; (3) for Adam-type optimizers a square-root
rule (lr ~ sqrt(k)) is the better approximation (Malladi et al. 2022, "On the SDEs and Scaling
Rules for Adaptive Gradient Algorithms").

Run: dlprep demo batch-size-noise
"""

from __future__ import annotations

import math

import torch
from torch.func import functional_call, grad, vmap

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True


def _slope(bs: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) against log(B)."""
    lx = torch.tensor([math.log(b) for b in bs], dtype=torch.float64)
    ly = torch.tensor([math.log(v) for v in values], dtype=torch.float64)
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return float((lx * ly).sum() / (lx * lx).sum())


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    dt = torch.float64

    # ---- a dataset, a small MLP, and every example's own gradient ---------------------------
    n, d_in = 1024, 10
    x = torch.randn(n, d_in, generator=g, dtype=dt)  # (N, 10)
    y = torch.sin(x[:, :1] * 2) + 0.5 * x[:, 1:2] + 0.3 * torch.randn(n, 1, generator=g, dtype=dt)
    x, y = x.to(device), y.to(device)  # y: (N, 1)
    model = torch.nn.Sequential(
        torch.nn.Linear(d_in, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)
    ).to(device=device, dtype=dt)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p, xi, yi):  # the loss of a single example
        out = functional_call(model, p, (xi[None],))  # (1, 1)
        return ((out - yi[None]) ** 2).mean()

    per_example = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
    G = torch.cat([per_example[k].reshape(n, -1) for k in params], dim=1)  # (N, P)
    full = torch.autograd.grad(((model(x) - y) ** 2).mean(), list(model.parameters()))
    g_full = torch.cat([t.reshape(-1) for t in full])  # (P,)
    mean_matches = (G.mean(0) - g_full).abs().max().item()
    sigma2 = ((G - g_full) ** 2).sum(1).mean().item()  # per-example variance (1/N convention)

    # ---- many random minibatches per batch size ---------------------------------------------
    batch_sizes = [1, 4, 16, 64, 256]
    draws = ctx.pick(2000, 10000)
    rows, msd_wo, msd_w, theory_wo = [], [], [], []
    for b in batch_sizes:
        # without replacement: B distinct examples (a random permutation's first B)
        idx = torch.rand(draws, n, generator=g).argsort(dim=1)[:, :b].to(device)  # (R, B)
        select = torch.zeros(draws, n, dtype=dt, device=device).scatter_(1, idx, 1.0 / b)
        g_b = select @ G  # (R, P): each row is one minibatch gradient
        dev_wo = ((g_b - g_full) ** 2).sum(1)  # (R,)
        # unbiased: the average over draws approaches g; its error should be ~ sqrt(msd / R)
        bias2 = ((g_b.mean(0) - g_full) ** 2).sum().item()
        # with replacement: B independent draws (duplicates allowed)
        idx_w = torch.randint(0, n, (draws, b), generator=g).to(device)
        g_bw = G[idx_w.reshape(-1)].reshape(draws, b, -1).mean(1) if b <= 64 else None
        if g_bw is None:  # avoid a (R, 256, P) tensor: accumulate counts instead
            counts = torch.zeros(draws, n, dtype=dt, device=device)
            counts.scatter_add_(1, idx_w, torch.full_like(idx_w, 1.0 / b, dtype=dt))
            g_bw = counts @ G
        dev_w = ((g_bw - g_full) ** 2).sum(1)
        fpc = (n - b) / (n - 1)
        msd_wo.append(dev_wo.mean().item())
        msd_w.append(dev_w.mean().item())
        theory_wo.append(sigma2 / b * fpc)
        rows.append(
            [
                b,
                f"{msd_w[-1]:.4g}",
                f"{sigma2 / b:.4g}",
                f"{msd_wo[-1]:.4g}",
                f"{theory_wo[-1]:.4g}",
                f"{fpc:.3f}",
                f"{bias2 / (dev_wo.mean().item() / draws):.2f}",
            ]
        )

    slope_raw = _slope(batch_sizes, msd_wo)
    corrected = [m / ((n - b) / (n - 1)) for m, b in zip(msd_wo, batch_sizes, strict=True)]
    slope_corrected = _slope(batch_sizes, corrected)
    slope_with = _slope(batch_sizes, msd_w)
    rel_err = max(abs(m / t - 1) for m, t in zip(msd_wo, theory_wo, strict=True))
    rel_err_w = max(abs(m * b / sigma2 - 1) for m, b in zip(msd_w, batch_sizes, strict=True))

    result = DemoResult(
        metrics={
            "n_examples": n,
            "n_params": G.shape[1],
            "sigma2_per_example": sigma2,
            "grad_norm2_full": (g_full**2).sum().item(),
            "msd_without_replacement": msd_wo,
            "msd_with_replacement": msd_w,
            "slope_raw": slope_raw,
            "slope_fpc_corrected": slope_corrected,
            "slope_with_replacement": slope_with,
            "gradient_noise_scale_B_noise": sigma2 / (g_full**2).sum().item(),
        },
        tables=[
            Table(
                f"E||g_B - g||^2 over {draws} random minibatches (N = {n}, "
                f"{G.shape[1]} parameters, sigma^2 = {sigma2:.4g})",
                [
                    "B",
                    "with repl.",
                    "sigma^2/B",
                    "without repl.",
                    "x (N-B)/(N-1)",
                    "(N-B)/(N-1)",
                    "bias^2 / (msd/R)",
                ],
                rows,
            )
        ],
        curves=[
            Curve(
                "Mean squared deviation from the full gradient vs B = 1, 4, 16, 64, 256",
                "batch size (log spaced)",
                {"with replacement": msd_w, "without replacement": msd_wo},
                log_y=True,
            )
        ],
    )
    result.claim(
        "The per-example gradients average to the full-batch gradient (autograd, float64).",
        mean_matches < 1e-12,
        f"max |mean_i g_i - g| = {mean_matches:.1e}",
    )
    ratios = [float(r[-1]) for r in rows]
    result.claim(
        "The minibatch gradient is unbiased: averaged over R draws its squared error is the "
        "sampling error msd / R (ratio ~1; a bias would add R |bias|^2 / msd): mean over B <= 2.",
        sum(ratios) / len(ratios) <= 2.0,
        "bias^2 / (msd / R) per B: " + ", ".join(r[-1] for r in rows),
    )
    result.claim(
        "With replacement the noise is sigma^2 / B (every B within 12%) and the log-log slope "
        "is -1 (within 0.05).",
        rel_err_w <= 0.12 and abs(slope_with + 1) <= 0.05,
        f"max relative error {rel_err_w:.3f}; slope {slope_with:.3f}",
    )
    result.claim(
        "Without replacement it is sigma^2 / B x (N - B)/(N - 1) (every B within 12%): the raw "
        "slope is steeper than -1, and -1 (within 0.05) once the correction is divided out.",
        rel_err <= 0.12 and slope_raw < -1.02 and abs(slope_corrected + 1) <= 0.05,
        f"max relative error {rel_err:.3f}; slope raw {slope_raw:.3f}, "
        f"corrected {slope_corrected:.3f}",
    )
    result.notes.append(
        f"Simple gradient noise scale here B_simple = sigma^2 / |g|^2 = "
        f"{sigma2 / (g_full**2).sum().item():.3g}: batches much larger than this buy little "
        "per step (McCandlish et al. 2018); it grows as training converges and |g| shrinks."
    )
    return result
