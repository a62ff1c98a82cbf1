"""Reproducibility: the same seed gives bit-identical training; what quietly breaks it.

What it shows, on a small MLP with dropout trained on shuffled mini-batches (CPU, float32):
- Same seed, same code, same machine: two runs end with bit-identical weights. PyTorch's
  random number generators are deterministic given their seed (torch.manual_seed seeds the
  CPU and every CUDA device), and these CPU ops are deterministic.
- A different seed gives a different run: different initial weights, data order and dropout
  masks, and a final validation loss that differs by run-to-run noise. Report results over
  several seeds, not one.
- One extra call on the global RNG (a debug torch.randn, a new layer created before the
  others, an augmentation added) shifts every later random draw: the same seed now gives a
  different run. Giving each consumer its own torch.Generator (data order, init, dropout)
  makes each stream independent of code changes elsewhere.
- Floating-point addition is not associative: summing the same float32 numbers in another
  order gives a different result in the last bits. GPU kernels that use atomic adds
  (scatter_add, index_add, some convolution backward algorithms) or that pick algorithms by
  benchmarking (cudnn.benchmark) sum in a run-dependent order, so seeds alone do not make
  GPU training bit-reproducible: torch.use_deterministic_algorithms(True) (which raises on
  ops without a deterministic implementation), torch.backends.cudnn.benchmark = False and
  CUBLAS_WORKSPACE_CONFIG=:4096:8 do (PyTorch docs, "Reproducibility"). Results still differ
  across PyTorch versions, hardware, and CPU vs GPU.

Run: dlprep demo reproducibility
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = False


def train(seed: int, device, data, steps: int, extra_draw: bool = False):
    """A tiny training run whose every random choice comes from the global RNG."""
    x, y, x_va, y_va = data
    torch.manual_seed(seed)
    if extra_draw:
        torch.randn(1)  # an innocent-looking extra draw, e.g. a debug line
    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 3))
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        idx = torch.randint(0, len(y), (32,))  # shuffled mini-batches from the global RNG
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        val = F.cross_entropy(model(x_va), y_va).item()
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    return weights, val


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    w_true = torch.randn(10, 3, generator=g)
    x = torch.randn(512, 10, generator=g)
    y = (x @ w_true + 0.5 * torch.randn(512, 3, generator=g)).argmax(1)
    x_va = torch.randn(1024, 10, generator=g)
    y_va = (x_va @ w_true + 0.5 * torch.randn(1024, 3, generator=g)).argmax(1)
    data = tuple(t.to(device) for t in (x, y, x_va, y_va))
    steps = ctx.pick(120, 1000)

    w_a, val_a = train(ctx.seed, device, data, steps)
    w_b, val_b = train(ctx.seed, device, data, steps)
    others = [train(ctx.seed + k, device, data, steps) for k in (1, 2, 3)]
    w_extra, val_extra = train(ctx.seed, device, data, steps, extra_draw=True)

    same_seed_diff = (w_a - w_b).abs().max().item()
    other_diff = min((w - w_a).abs().max().item() for w, _ in others)
    extra_diff = (w_extra - w_a).abs().max().item()
    vals = [val_a] + [v for _, v in others]
    spread = max(vals) - min(vals)

    # floating-point addition is not associative: the same numbers, two orders
    v = torch.randn(100_000, generator=g)  # float32
    perm = torch.randperm(len(v), generator=g)
    # add partial sums of 100 values one after another in float32, in two orders (torch's own
    # kernels accumulate some reductions in higher precision, so the order is made explicit)
    forward_sum = torch.zeros(())
    for chunk in v.split(100):
        forward_sum = forward_sum + chunk.sum()
    shuffled_sum = torch.zeros(())
    for chunk in v[perm].split(100):  # the same values, added in another order
        shuffled_sum = shuffled_sum + chunk.sum()
    exact = v.double().sum().item()
    fp_diff = abs(forward_sum.item() - shuffled_sum.item())

    result = DemoResult(
        metrics={
            "same_seed_max_weight_diff": same_seed_diff,
            "other_seed_min_weight_diff": other_diff,
            "extra_rng_call_weight_diff": extra_diff,
            "val_loss_by_seed": vals,
            "val_loss_spread_over_seeds": spread,
            "float32_sum_order_diff": fp_diff,
        },
        tables=[
            Table(
                f"Final validation loss after {steps} steps",
                ["run", "val loss", "max |Δweight| vs run A"],
                [
                    ["A: seed s", f"{val_a:.5f}", "-"],
                    ["B: seed s again", f"{val_b:.5f}", f"{same_seed_diff:.1e}"],
                    ["seed s, one extra torch.randn(1)", f"{val_extra:.5f}", f"{extra_diff:.1e}"],
                    *[
                        [f"seed s+{k}", f"{val:.5f}", f"{(w - w_a).abs().max().item():.1e}"]
                        for k, (w, val) in zip((1, 2, 3), others, strict=True)
                    ],
                ],
            ),
            Table(
                "Summing the same 100,000 float32 values",
                ["order", "sum"],
                [
                    ["original", f"{forward_sum.item():.6f}"],
                    ["shuffled", f"{shuffled_sum.item():.6f}"],
                    ["exact (float64)", f"{exact:.6f}"],
                ],
            ),
        ],  # fmt: skip
    )
    result.claim(
        "Same seed, same code, same machine: two training runs end with bit-identical weights.",
        same_seed_diff == 0.0 and val_a == val_b,
        f"max |Δweight| = {same_seed_diff:.1e}",
    )
    result.claim(
        "A different seed gives a different run (init, data order, dropout), and the final "
        "validation loss varies from seed to seed: report several seeds.",
        other_diff > 1e-3 and spread > 0,
        f"min max|Δweight| = {other_diff:.2e}; val loss spread over 4 seeds = {spread:.4f}",
    )
    result.claim(
        "One extra draw from the global RNG before building the model changes the whole run, "
        "though the seed is the same.",
        extra_diff > 1e-3,
        f"max |Δweight| = {extra_diff:.2e}",
    )
    result.claim(
        "Floating-point addition is not associative: the same float32 values summed in another "
        "order give a (slightly) different total, which is why reduction order matters.",
        0 < fp_diff < 1e-2 * max(1.0, abs(exact)),
        f"|Δsum| = {fp_diff:.2e} (sum ≈ {exact:.3f})",
    )
    return result
