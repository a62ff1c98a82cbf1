"""Smith's learning-rate range test: sweep the LR up exponentially, read a good LR off the loss.

What it shows, measured on a small MLP classifier (synthetic data, minibatch SGD with
momentum 0.9, as in Smith 2017, "Cyclical Learning Rates for Training Neural Networks",
arXiv 1506.01186, and the fastai "LR finder"):

- The test: start from a fresh model, raise the LR geometrically from 1e-5 to 10 over a
  few hundred minibatch steps, and record the (smoothed) training loss at each LR. At tiny
  LRs the loss barely moves; over a range of LRs it falls; past some LR it blows up.
- How to read it: not the LR at the minimum of the curve (by then the loss is about to
  diverge), but roughly 10x below that minimum, or where the loss falls fastest. Here both
  rules land within a factor of a few of each other.
- The check: short training runs from the same initial weights at that suggested LR, at
  1/30 of it and at 3x the LR where the sweep's loss was lowest. The suggested LR trains well;
  1/30 of it is far slower (same number of steps). What really happens at the large LR here:
  the loss does not run off to infinity. In quick mode it ends at chance level (ln 5 = 1.61
  for 5 classes, a constant prediction): the first big steps wreck the network and it never
  recovers. With the longer full-mode sweep the curve's minimum sits at a lower LR, and 3x
  of it still trains, but ends several times worse than the suggested LR. In the sweep
  itself the loss past the minimum sometimes overflows (inf) and sometimes only rises a
  few-fold; the demo claims only that it rises back above its starting value.

What it does not tell you: the sweep changes the weights while the LR changes, so the curve
is only an order-of-magnitude guide (its shape depends on the sweep length and the
smoothing), it says nothing about the best LR *schedule* or about generalisation, and an
adaptive optimizer (Adam) has a different scale: redo the sweep for it.

Run: dlprep demo lr-range-test
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True


def _data(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n points in 20-d, 5 classes from a random two-layer teacher (learnable, not linear)."""
    w1 = torch.randn(20, 32, generator=g)
    w2 = torch.randn(32, 5, generator=g)
    x = torch.randn(n, 20, generator=g)  # (n, 20)
    y = (torch.tanh(x @ w1 / 20**0.5) @ w2).argmax(1)  # (n,)
    return x, y


def _train(model, x, y, lrs, batch, g, device) -> list[float]:
    """Minibatch SGD (momentum 0.9), one LR per step; returns the loss at every step."""
    opt = torch.optim.SGD(model.parameters(), lr=lrs[0], momentum=0.9)
    losses = []
    for lr in lrs:
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, x.shape[0], (batch,), generator=g).to(device)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item() if math.isfinite(loss.item()) else float("inf"))
        if not math.isfinite(losses[-1]) or losses[-1] > 100:
            losses += [float("inf")] * (len(lrs) - len(losses))  # diverged: stop early
            break
    return losses


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    x, y = _data(4096, g)
    x, y = x.to(device), y.to(device)
    model0 = nn.Sequential(nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                           nn.Linear(128, 5)).to(device)  # fmt: skip
    batch = 64

    # ---- 1. the range test --------------------------------------------------------------------
    n_sweep = ctx.pick(200, 400)
    lo, hi = 1e-5, 10.0
    sweep_lrs = [lo * (hi / lo) ** (i / (n_sweep - 1)) for i in range(n_sweep)]
    raw = _train(copy.deepcopy(model0), x, y, sweep_lrs, batch, g, device)
    # exponential moving average with bias correction, as the fastai LR finder does
    smooth, avg, beta = [], 0.0, 0.9
    for i, loss in enumerate(raw):
        if not math.isfinite(loss):
            smooth.append(float("inf"))
            continue
        avg = beta * avg + (1 - beta) * loss
        smooth.append(avg / (1 - beta ** (i + 1)))
    finite = [i for i, s in enumerate(smooth) if math.isfinite(s)]
    i_min = min(finite, key=lambda i: smooth[i])
    lr_min = sweep_lrs[i_min]
    # steepest descent: most negative slope of smoothed loss vs log(lr), over the part
    # before the minimum (a window of 10 steps to tame the noise)
    k = 10
    slopes = [(smooth[i + k] - smooth[i]) / math.log(sweep_lrs[i + k] / sweep_lrs[i])
              for i in range(0, i_min - k)]  # fmt: skip
    i_steep = min(range(len(slopes)), key=lambda i: slopes[i]) + k // 2
    lr_steep = sweep_lrs[i_steep]
    lr_suggest = lr_min / 10
    init_loss = smooth[0]
    first_tenth = smooth[n_sweep // 10]  # LR still ~ 3e-5
    # where does it break down: the first LR after the minimum where the loss is back above
    # its initial (chance-level) value
    blow = next((i for i in range(i_min, n_sweep) if smooth[i] > init_loss), None)
    worst = max(smooth[i_min:])
    lr_blow = sweep_lrs[blow] if blow is not None else float("nan")

    every = max(1, n_sweep // 50)
    result.curves.append(
        Curve(
            f"Smoothed training loss as the LR rises from {lo:g} to {hi:g} (log scale in LR)",
            "sweep step",
            {"loss": [min(s, 10.0) for s in smooth[::every]]},
        )
    )

    # ---- 2. check: train with the suggested LR vs much smaller / larger ---------------------
    steps = ctx.pick(300, 1000)
    candidates = {"suggested (lr_min / 10)": lr_suggest, "suggested / 30": lr_suggest / 30,
                  "3 x lr_min": 3 * lr_min}  # fmt: skip
    finals = {}
    for name, lr in candidates.items():
        g_run = torch.Generator().manual_seed(ctx.seed + 1000)  # same batches for all
        losses = _train(copy.deepcopy(model0), x, y, [lr] * steps, batch, g_run, device)
        tail = losses[-20:]
        finals[name] = sum(tail) / len(tail)
    rows = [[name, f"{lr:.2e}", f"{finals[name]:.4f}"] for name, lr in candidates.items()]
    result.tables.append(
        Table(
            f"Range test: loss min at lr {lr_min:.2e}, steepest fall at {lr_steep:.2e}, back above "
            f"the initial loss at {lr_blow:.2e}. Then {steps} steps at a fixed LR "
            "(mean loss of the last 20)",
            ["run", "lr", "final train loss"],
            rows,
        )
    )

    result.metrics = {
        "lr_at_min_loss": lr_min,
        "lr_steepest": lr_steep,
        "lr_suggested": lr_suggest,
        "lr_blow_up": lr_blow,
        "initial_loss": init_loss,
        "worst_loss_after_min": worst,
        "final_loss": {k2: v for k2, v in finals.items()},
    }
    result.claim(
        "At tiny learning rates the loss barely moves (< 2% change over the first tenth of "
        "the sweep); it falls over a middle range, then rises back above its initial value.",
        abs(first_tenth - init_loss) < 0.02 * init_loss
        and smooth[i_min] < 0.7 * init_loss
        and blow is not None,
        f"loss {init_loss:.3f} at lr {lo:g}, {first_tenth:.3f} at lr "
        f"{sweep_lrs[n_sweep // 10]:.1e}, min {smooth[i_min]:.3f} at lr {lr_min:.2e}, "
        f"above the initial loss from lr {lr_blow:.2e} (worst {worst:.3g})",
    )
    result.claim(
        "The two reading rules agree to within a factor of 10: 'lr_min / 10' and 'steepest "
        "descent of the curve'.",
        0.1 <= lr_steep / lr_suggest <= 10,
        f"lr_min / 10 = {lr_suggest:.2e}, steepest = {lr_steep:.2e}",
    )
    f_s, f_small, f_big = finals.values()
    result.claim(
        "Trained at the suggested LR, the model reaches a much lower loss (by >= 2x) than at "
        "1/30 of it and than at 3x the sweep's minimum-loss LR.",
        2 * f_s <= f_small and 2 * f_s <= f_big,
        f"final loss: suggested {f_s:.4f}, /30 {f_small:.4f}, 3 x lr_min {f_big:.4f}",
    )
    return result
