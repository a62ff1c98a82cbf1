"""Sharp vs flat minima: sharpness (top Hessian eigenvalue) is capped by 2/lr, and is not invariant.

What it shows, measured on a small MLP regression (full-batch gradient descent, MSE), with
sharpness = the largest eigenvalue of the loss Hessian, found by power iteration on
Hessian-vector products (double backward):

- The stability bound: gradient descent with learning rate lr cannot settle in a minimum
  whose sharpness exceeds 2 / lr (on a quadratic with curvature h, GD multiplies the error by
  1 - lr * h each step, which grows when h > 2 / lr). So a larger learning rate ends in a
  flatter minimum. Cohen et al. 2021 ("Gradient Descent on Neural Networks Typically Occurs
  at the Edge of Stability", arXiv 2103.00065) show full-batch GD's sharpness rises until it
  hovers near 2 / lr. This is one mechanistic link between large learning rates (or small
  batches: more noise) and flatter solutions. Measured here: at lr = 0.02 (limit 100) training
  settles where the problem takes it, at a sharpness of ~16-22; at lr = 0.1 and 0.2 the
  sharpness usually ends pinned at about 20 and 10, i.e. 2 / lr (on some seeds somewhat
  below: 6.4 at lr = 0.2 with seed 7), and training does not diverge: the final training
  loss is as low as at lr = 0.02 or lower.
- Sharpness is not a property of the function: for a ReLU network, multiplying the first
  layer by alpha and dividing the second by alpha leaves every output unchanged (ReLU is
  positively homogeneous), but changes the Hessian, so the same function sits at minima of
  very different sharpness (Dinh et al. 2017, "Sharp Minima Can Generalize For Deep Nets",
  arXiv 1703.04933). Flat-minima arguments therefore need scale-invariant measures of
  sharpness (e.g. adaptive sharpness, as in ASAM).

What it does not show: whether flatter minima generalise better. That link (Hochreiter &
Schmidhuber 1997; Keskar et al. 2017) is disputed; sharpness-aware minimisation (SAM,
Foret et al. 2021) often helps in practice, yet Andriushchenko et al. 2023 ("A Modern Look
at the Relationship between Sharpness and Generalization", arXiv 2302.07011) find that
sharpness correlates poorly with generalisation in modern settings.

Run: dlprep demo sharp-minima
"""

from __future__ import annotations

import torch
import torch.nn as nn

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((model(x) - y) ** 2).mean()


def _sharpness(model, x, y, g: torch.Generator, iters: int) -> float:
    """Largest Hessian eigenvalue of the loss by power iteration on Hessian-vector products."""
    params = [p for p in model.parameters()]
    loss = _loss(model, x, y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    v = [torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device) for p in params]
    eig = 0.0
    for _ in range(iters):
        norm = torch.sqrt(sum((u * u).sum() for u in v))
        v = [u / norm for u in v]
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)  # H v
        eig = sum((a * b).sum() for a, b in zip(hv, v, strict=True)).item()  # v^T H v
        v = [h.detach() for h in hv]
    return eig


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    dt = torch.float64

    d, hidden, n = 5, 64, 64
    x = torch.randn(n, d, generator=g, dtype=dt)
    y = torch.sin(x @ torch.randn(d, 1, generator=g, dtype=dt))  # (n, 1)
    x, y = x.to(device), y.to(device)
    init = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 1)).to(device, dt)
    iters = ctx.pick(30, 100)

    # ---- 1. full-batch GD at several learning rates: final sharpness vs 2 / lr -----------------
    steps = ctx.pick(1500, 6000)
    lrs = [0.02, 0.1, 0.2]
    rows, finals, curves = [], {}, {}
    for lr in lrs:
        model = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 1)).to(device, dt)
        model.load_state_dict(init.state_dict())  # the same starting point for every lr
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        trace = []
        for step in range(1, steps + 1):
            loss = _loss(model, x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % (steps // 10) == 0:
                trace.append(_sharpness(model, x, y, g, 10))
        sharp = _sharpness(model, x, y, g, iters)
        final_loss = _loss(model, x, y).item()
        finals[lr] = (sharp, final_loss, model)
        curves[f"lr {lr}"] = trace
        rows.append([lr, f"{2 / lr:.1f}", f"{sharp:.2f}", f"{final_loss:.2e}"])
    result.tables.append(
        Table(
            f"MLP {d}-{hidden}-1, {n} points, {steps} full-batch GD steps from one init",
            [
                "lr",
                "2 / lr",
                "final sharpness (top Hessian eigenvalue)",
                "final train loss",
            ],
            rows,
        )
    )
    result.curves.append(Curve("Sharpness during training", "checkpoint (every 10%)", curves))

    # ---- 2. the same function at a different sharpness ----------------------------------------
    base = finals[lrs[1]][2]
    scaled_rows = []
    sharp_by_alpha = {}
    out0 = base(x)
    max_out_diff = 0.0
    for alpha in [0.25, 1.0, 4.0]:
        m = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 1)).to(device, dt)
        m.load_state_dict(base.state_dict())
        with torch.no_grad():  # W1, b1 times alpha; W2 divided by alpha: relu(a z) = a relu(z)
            m[0].weight.mul_(alpha)
            m[0].bias.mul_(alpha)
            m[2].weight.div_(alpha)
        max_out_diff = max(max_out_diff, (m(x) - out0).abs().max().item())
        s = _sharpness(m, x, y, g, iters)
        sharp_by_alpha[alpha] = s
        scaled_rows.append([alpha, f"{_loss(m, x, y).item():.3e}", f"{s:.2f}"])
    result.tables.append(
        Table(
            "The lr = 0.1 solution reparameterised: W1, b1 x alpha and W2 / alpha "
            "(the same function)",
            ["alpha", "train loss", "sharpness"],
            scaled_rows,
        )
    )

    result.metrics = {
        "final_sharpness": {str(lr): finals[lr][0] for lr in lrs},
        "final_loss": {str(lr): finals[lr][1] for lr in lrs},
        "sharpness_by_alpha": {str(a): s for a, s in sharp_by_alpha.items()},
        "max_output_change_under_rescaling": max_out_diff,
    }
    sharp = [finals[lr][0] for lr in lrs]
    result.claim(
        "Every run ends with sharpness at or below the stability limit 2/lr (within 10%).",
        all(finals[lr][0] <= 1.1 * 2 / lr for lr in lrs),
        ", ".join(f"lr {lr}: sharpness {finals[lr][0]:.2f} vs 2/lr {2 / lr:.1f}" for lr in lrs),
    )
    edge = [finals[lr][0] / (2 / lr) for lr in lrs[1:]]
    result.claim(
        "Where 2/lr is below the sharpness the small-lr run settles at, GD ends at the edge "
        "of stability (sharpness 0.6-1.1 x 2/lr), so the largest lr ends >= 1.5x flatter "
        "than the smallest.",
        sharp[0] > 2 / lrs[2] and all(0.6 <= e <= 1.1 for e in edge) and sharp[0] >= 1.5 * sharp[2],
        ", ".join(
            f"lr {lr}: {s_:.2f} (2/lr {2 / lr:.1f})" for lr, s_ in zip(lrs, sharp, strict=True)
        ),
    )
    s_lo, s_1, s_hi = sharp_by_alpha[0.25], sharp_by_alpha[1.0], sharp_by_alpha[4.0]
    result.claim(
        "Rescaling the layers (W1 x alpha, W2 / alpha) leaves the function and loss unchanged "
        "but makes the same solution >= 5x sharper (the sharper of alpha = 0.25 and "
        "alpha = 4): sharpness is not a property of the function.",
        max_out_diff < 1e-10 and max(s_lo, s_hi) >= 5 * s_1,
        f"max output change {max_out_diff:.1e}; sharpness alpha=0.25: {s_lo:.2f}, 1: "
        f"{s_1:.2f}, 4: {s_hi:.2f}",
    )
    return result
