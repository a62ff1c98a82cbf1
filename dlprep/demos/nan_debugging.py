"""NaN/inf debugging: where non-finite values come from, and how anomaly detection finds them.

What it shows, with three classic sources:
- An unstable formula: log(softmax(z)) computed in two steps underflows. For logits 200
  apart, softmax gives exactly 0 for the losing class in float32 (e^-200 is below the
  smallest subnormal, ~1.4e-45; at a gap of 100, e^-100 ≈ 4e-44 still survives as a
  subnormal), log(0) = -inf, and the loss is inf (times a 0 weight it becomes NaN).
  F.log_softmax / F.cross_entropy use the log-sum-exp trick and stay finite.
- A finite forward with a non-finite backward: sqrt(x) at x = 0 is fine (0) but its
  derivative 1/(2 sqrt(x)) is inf; multiplied by a zero upstream gradient it becomes NaN.
  The loss looks normal and only the gradients are poisoned, so the next optimizer step
  writes NaN into the weights. torch.autograd.detect_anomaly() raises at the first backward
  op that produces NaN and names it (here SqrtBackward0), with the forward traceback.
- Divergence: a learning rate above the stability limit makes the loss grow geometrically
  until it overflows to inf and then NaN; the same model trains with a smaller rate, and
  gradient clipping keeps each step bounded.

The usual checklist: assert torch.isfinite(loss) every step (and on the inputs), log
gradient norms, use stable fused ops (log_softmax, logsumexp, BCEWithLogits), add eps where
dividing or taking logs/sqrt of values that can reach 0, lower the learning rate or add
warmup/clipping, and on fp16 rely on GradScaler, which skips steps with inf/NaN gradients.
Anomaly detection slows training a lot: turn it on only to localise a failure.

Run: dlprep demo nan-debugging
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = False


def train_losses(lr: float, clip: float | None, device, g, steps: int) -> list[float]:
    x = torch.randn(256, 8, generator=g).to(device) * 3  # large-ish inputs
    y = (x @ torch.randn(8, 1, generator=g).to(device)).tanh()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 1)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = F.mse_loss(model(x), y)
        losses.append(loss.item())
        if not torch.isfinite(loss):  # the check every training loop should have
            break
        opt.zero_grad()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
    return losses


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    # ---- 1. an unstable formula ------------------------------------------------------------
    z = torch.tensor([[200.0, 0.0, -5.0]], device=device)  # confident logits
    target = torch.tensor([1], device=device)
    naive = -torch.log(torch.softmax(z, dim=1))[0, 1]  # two steps: softmax then log
    stable = F.cross_entropy(z, target)  # log-sum-exp inside
    naive_inf = not torch.isfinite(naive).item()
    stable_ok = torch.isfinite(stable).item()

    # ---- 2. finite forward, NaN backward ----------------------------------------------------
    w = torch.tensor([0.0, 1.0, 4.0], device=device, requires_grad=True)
    mask = torch.tensor([0.0, 1.0, 1.0], device=device)  # the 0 entry is masked out...
    loss = (torch.sqrt(w) * mask).sum()  # ...but sqrt'(0) = inf, and inf * 0 = NaN
    loss.backward()
    loss_finite = torch.isfinite(loss).item()
    grad_nan = torch.isnan(w.grad).any().item()
    caught = ""
    w2 = w.detach().clone().requires_grad_()
    with warnings.catch_warnings():  # anomaly mode also prints the forward traceback
        warnings.simplefilter("ignore")
        try:
            with torch.autograd.detect_anomaly(check_nan=True):
                (torch.sqrt(w2) * mask).sum().backward()
        except RuntimeError as err:  # it names the backward function that made the NaN
            caught = str(err).splitlines()[0]
    names_op = "SqrtBackward0" in caught

    # ---- 3. divergence from too high a learning rate ------------------------------------------
    steps = ctx.pick(60, 200)
    g_state = g.get_state()
    high = train_losses(2.0, None, device, g, steps)
    g.set_state(g_state)
    low = train_losses(0.05, None, device, g, steps)
    g.set_state(g_state)
    clipped = train_losses(2.0, 0.1, device, g, steps)
    diverged = not all(map(lambda v: v == v and abs(v) != float("inf"), high))
    blew_up_at = next((i for i, v in enumerate(high) if not (v == v and abs(v) < float("inf"))),
                      None)  # fmt: skip

    result.tables.append(
        Table(
            "Where the non-finite values came from",
            ["case", "observed"],
            [
                ["-log(softmax(z)) in two steps", f"{naive.item()}"],
                ["F.cross_entropy(z)", f"{stable.item():.2f}"],
                ["sqrt(w) * mask: loss", f"{loss.item():.3f}"],
                ["sqrt(w) * mask: w.grad", str([round(v, 3) for v in w.grad.tolist()])],
                ["detect_anomaly says", caught[:90] or "(nothing raised)"],
                [f"SGD lr=2.0, {steps} steps", f"non-finite at step {blew_up_at}"],
                ["SGD lr=0.05", f"final loss {low[-1]:.4f}"],
                ["SGD lr=2.0 + clip_grad_norm_(0.1)", f"final loss {clipped[-1]:.4f}"],
            ],
        )
    )
    result.metrics = {
        "naive_log_softmax": str(naive.item()),
        "stable_cross_entropy": stable.item(),
        "sqrt_grad": [str(v) for v in w.grad.tolist()],
        "anomaly_message": caught,
        "high_lr_nonfinite_step": blew_up_at,
        "low_lr_final_loss": low[-1],
        "clipped_final_loss": clipped[-1],
    }
    result.claim(
        "log(softmax(z)) in two steps underflows to log(0) = -inf for confident logits; "
        "F.cross_entropy (log-sum-exp inside) stays finite.",
        naive_inf and stable_ok,
        f"two-step: {naive.item()}, cross_entropy: {stable.item():.2f}",
    )
    result.claim(
        "sqrt at 0 gives a finite loss but an inf local derivative; times a zero gradient it "
        "is NaN: only the gradients are poisoned.",
        loss_finite and grad_nan,
        f"loss {loss.item():.3f}, w.grad {w.grad.tolist()}",
    )
    result.claim(
        "torch.autograd.detect_anomaly() raises at the backward op that produced the NaN and "
        "names it (SqrtBackward0).",
        names_op,
        caught[:120],
    )
    result.claim(
        "Too high a learning rate makes the loss blow up to inf/NaN; a smaller rate trains, and "
        "gradient clipping keeps the same high rate finite.",
        diverged
        and low[-1] < low[0]
        and all(v == v and abs(v) < float("inf") for v in clipped)
        and clipped[-1] < clipped[0],
        f"lr 2.0 non-finite at step {blew_up_at}; lr 0.05: {low[0]:.3f} -> {low[-1]:.3f}; "
        f"clipped: {clipped[0]:.3f} -> {clipped[-1]:.3f}",
    )
    return result
