"""Catastrophic forgetting: uniform fine-tuning vs discriminative LRs, gradual unfreezing, frozen.

Setup (all synthetic, made here): a small CNN is pretrained on a SOURCE task (8 grating
orientations). It is then fine-tuned on a TARGET task that needs different features (4 spatial
frequencies, orientation random) with a new head, in four ways:

- frozen backbone (feature extraction): only the new head learns;
- uniform: every layer at the head's learning rate;
- discriminative learning rates (ULMFiT, Howard & Ruder 2018, arXiv 1801.06146): each layer's
  rate is the one above it divided by 2.6 (the paper's factor), so early, general layers move
  least;
- gradual unfreezing (also ULMFiT): train the head alone first, then unfreeze one more layer
  from the top each stage, with the discriminative rates.

After fine-tuning, the ORIGINAL source head is put back on the fine-tuned backbone and the
source task is tested: how much of the old skill survived? That loss is catastrophic
forgetting (McCloskey & Cohen 1989; Kirkpatrick et al. 2017, EWC, arXiv 1612.00796).

What it measures (the target task is deliberately distant, so the features MUST change):
uniform fine-tuning reaches the best target accuracy and forgets the most (source accuracy
falls by roughly 15-80 points, depending on the seed); the frozen backbone forgets nothing but stays
near chance on the target; discriminative rates and gradual unfreezing keep most of the source
skill and learn part of the target, well behind uniform fine-tuning at the same number of
steps. ULMFiT's tricks are a bet that the early features are already right; when the target is
close to the source they cost little (see the transfer-learning demo), when it is far they slow
learning. The trade-off, not a free lunch, is what this demo shows. Forgetting matters when the
model must keep doing the old task (multi-task use, continual learning), or when the source
features carry robustness the small target set cannot teach (LP-FT, Kumar et al. 2022).

Run: dlprep demo discriminative-lr
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table
from dlprep.demos._data import grating_images

STATISTICAL = True

HEAD_LR = 3e-3
FACTOR = 2.6  # ULMFiT: lr of layer l-1 = lr of layer l / 2.6


def gratings(n: int, task: str, g: torch.Generator):
    if task == "source":  # 8 orientations, frequency random
        y = torch.randint(0, 8, (n,), generator=g)
        angle, freq = y.float() * math.pi / 8, 1.5 + 2.0 * torch.rand(n, generator=g)
    else:  # 4 spatial frequencies, orientation random
        y = torch.randint(0, 4, (n,), generator=g)
        angle, freq = math.pi * torch.rand(n, generator=g), 1.0 + y.float()
    return grating_images(angle, freq, 0.8, g, 16), y


def make_backbone() -> nn.ModuleList:
    """Three blocks, bottom to top; their outputs feed a head on (B, 32)."""
    return nn.ModuleList([
        nn.Sequential(nn.Conv2d(1, 8, 5, stride=2, padding=2), nn.ReLU()),  # (B, 8, 8, 8)
        nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()),  # (B, 16, 8, 8)
        nn.Sequential(nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.ReLU(),  # (B, 32, 4, 4)
                      nn.AdaptiveAvgPool2d(1), nn.Flatten()),  # (B, 32)
    ])  # fmt: skip


def features(blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for block in blocks:
        x = block(x)
    return x


def fit(blocks, head, x, y, groups, steps, g) -> None:
    opt = torch.optim.Adam(groups)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (32,), generator=g).to(x.device)
        loss = nn.functional.cross_entropy(head(features(blocks, x[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def accuracy(blocks, head, x, y) -> float:
    with torch.no_grad():
        return (head(features(blocks, x)).argmax(dim=1) == y).float().mean().item()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    # ---- pretraining on the source task ---------------------------------------------------
    x_src, y_src = (t.to(device) for t in gratings(3000, "source", g))
    x_src_test, y_src_test = (t.to(device) for t in gratings(1000, "source", g))
    blocks, source_head = make_backbone().to(device), nn.Linear(32, 8).to(device)
    params = list(blocks.parameters()) + list(source_head.parameters())
    fit(blocks, source_head, x_src, y_src, [{"params": params, "lr": HEAD_LR}],
        ctx.pick(250, 800), g)  # fmt: skip
    source_before = accuracy(blocks, source_head, x_src_test, y_src_test)
    pretrained = {k: v.clone() for k, v in blocks.state_dict().items()}

    # ---- fine-tuning on the target task, four ways --------------------------------------------
    x_tgt, y_tgt = (t.to(device) for t in gratings(ctx.pick(400, 1000), "target", g))
    x_tgt_test, y_tgt_test = (t.to(device) for t in gratings(1000, "target", g))
    steps = ctx.pick(200, 600)
    rates = [HEAD_LR / FACTOR**3, HEAD_LR / FACTOR**2, HEAD_LR / FACTOR]  # blocks 1, 2, 3
    methods = ["frozen backbone", "discriminative LRs", "gradual unfreezing", "uniform LR"]
    rows, acc = [], {}
    for method in methods:
        blocks.load_state_dict(pretrained)
        head = nn.Linear(32, 4).to(device)
        gm = torch.Generator().manual_seed(ctx.seed + 1)  # the same batches for every method
        head_group = {"params": head.parameters(), "lr": HEAD_LR}
        if method == "frozen backbone":
            fit(blocks, head, x_tgt, y_tgt, [head_group], steps, gm)
        elif method == "uniform LR":
            groups = [head_group, {"params": blocks.parameters(), "lr": HEAD_LR}]
            fit(blocks, head, x_tgt, y_tgt, groups, steps, gm)
        elif method == "discriminative LRs":
            groups = [
                {"params": b.parameters(), "lr": r} for b, r in zip(blocks, rates, strict=True)
            ]
            fit(blocks, head, x_tgt, y_tgt, [head_group] + groups, steps, gm)
        else:  # gradual unfreezing: head, then + block 3, + block 2, + block 1 (4 stages)
            head_params = list(head.parameters())
            for stage in range(4):
                unfrozen = list(range(3 - stage, 3))  # top `stage` blocks
                groups = [{"params": head_params, "lr": HEAD_LR}] + [
                    {"params": blocks[i].parameters(), "lr": rates[i]} for i in unfrozen
                ]
                fit(blocks, head, x_tgt, y_tgt, groups, steps // 4, gm)
        target = accuracy(blocks, head, x_tgt_test, y_tgt_test)
        source_after = accuracy(blocks, source_head, x_src_test, y_src_test)  # old head put back
        acc[method] = (target, source_after)
        rows.append([method, round(target, 3), round(source_after, 3)])
    result.tables.append(
        Table(
            f"After fine-tuning ({steps} steps): target accuracy (4 classes) and SOURCE accuracy "
            f"with the original head (8 classes; {source_before:.3f} before fine-tuning)",
            ["fine-tuning", "target", "source (forgetting)"],
            rows,
        )
    )
    forget = {m: source_before - acc[m][1] for m in methods}
    uniform_t = acc["uniform LR"][0]
    result.claim(
        "Fine-tuning every layer at the head's learning rate learns the new task best but "
        "forgets the old one: source accuracy with the original head drops by more than 15 "
        "points (catastrophic forgetting).",
        forget["uniform LR"] > 0.15 and uniform_t >= max(acc[m][0] for m in methods),
        f"source {source_before:.3f} -> {acc['uniform LR'][1]:.3f}; target {uniform_t:.3f}",
    )
    careful = ["discriminative LRs", "gradual unfreezing"]
    result.claim(
        "Discriminative learning rates and gradual unfreezing forget less than 2/3 as much as "
        "uniform fine-tuning.",
        all(forget[m] < forget["uniform LR"] * 2 / 3 for m in careful),
        "source accuracy lost: "
        + ", ".join(f"{m} {forget[m]:.3f}" for m in careful + ["uniform LR"]),
    )
    frozen_t = acc["frozen backbone"][0]
    result.claim(
        "They still learn features the frozen backbone lacks (target accuracy > frozen + 5 "
        "points), but on this distant task they pay for their caution: more than 15 points "
        "below uniform fine-tuning at the same number of steps.",
        all(frozen_t + 0.05 < acc[m][0] < uniform_t - 0.15 for m in careful),
        f"target: frozen {frozen_t:.3f}, "
        + ", ".join(f"{m} {acc[m][0]:.3f}" for m in careful)
        + f", uniform {uniform_t:.3f}",
    )
    result.metrics = {
        "source_before": source_before,
        **{f"{m.replace(' ', '_')}_target": acc[m][0] for m in methods},
        **{f"{m.replace(' ', '_')}_source_after": acc[m][1] for m in methods},
    }
    return result
