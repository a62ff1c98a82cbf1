"""Stochastic depth: drop whole residual blocks in training; the identity path keeps the net whole.

What it shows, measured (Huang et al. 2016, "Deep Networks with Stochastic Depth",
arXiv 1603.09382):

- The mechanics, as torchvision.ops.stochastic_depth does it: in training, a residual block
  computes x + mask * f(x) / s, where mask ~ Bernoulli(s) per sample ("row" mode) or per
  batch ("batch" mode) and s = 1 - p is the block's survival probability; the division makes
  it *inverted*, like nn.Dropout, so eval mode is simply x + f(x). (The paper instead kept
  f(x) unscaled in training and multiplied it by s at test time: the same expectation.)
- The linear decay rule: survival s_l = 1 - (l / L) (1 - s_L) for block l of L, with
  s_L = 0.5, so early blocks are almost always kept and the last is dropped half the time. In
  expectation only (3L - 1) / 4 ~ 75% of the blocks run per step in batch mode: training is
  about 25% cheaper, and the network is an implicit ensemble of shallower networks.
- Why it only works with skip connections: dropping a block leaves the identity path, so the
  signal still reaches the output. A trained residual MLP loses little accuracy when any
  single block is deleted at test time (Veit et al. 2016, "Residual Networks Behave Like
  Ensembles of Relatively Shallow Networks", arXiv 1605.06431), and even less when it was
  trained with stochastic depth. A plain (non-residual) MLP of the same shape collapses when
  one of its layers is replaced by the identity.

What the demo does not claim: that stochastic depth improves accuracy. Its gains in the
paper (and as "drop path" in ViT/ConvNeXt recipes) come from very deep networks trained
long; at this scale the accuracy differences are within seed noise.

Run: dlprep demo stochastic-depth
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True


def drop_path(x: torch.Tensor, p: float, training: bool, g: torch.Generator | None = None):
    """Row-mode stochastic depth on a residual branch output x (batch first), inverted."""
    if not training or p == 0.0:
        return x
    keep = (torch.rand(x.shape[0], 1, generator=g) >= p).to(x.device, x.dtype)  # (B, 1)
    return x * keep / (1 - p)


class ResMLP(nn.Module):
    def __init__(self, d_in: int, width: int, depth: int, k: int, residual: bool, p_last: float):
        super().__init__()
        self.inp = nn.Linear(d_in, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU())
            for _ in range(depth)
        )
        self.out = nn.Linear(width, k)
        self.residual = residual
        # linear decay rule: drop probability l / L * p_last for block l = 1..L
        self.p = [(i + 1) / depth * p_last for i in range(depth)]
        self.skip: set[int] = set()  # blocks deleted at test time

    def forward(self, x):
        h = self.inp(x)
        for i, block in enumerate(self.blocks):
            if i in self.skip:
                continue  # deleting a block: the identity
            f = block(h)
            if self.residual:
                h = h + drop_path(f, self.p[i], self.training)
            else:
                h = f
        return self.out(h)


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    # ---- 1. mechanics ----------------------------------------------------------------------
    p = 0.3
    f = (torch.rand(20000, 16, generator=g) + 0.5).to(device)  # a branch output, all > 0
    out = drop_path(f, p, training=True, g=g)
    dropped = (out.abs().sum(1) == 0).float().mean().item()  # whole rows zeroed
    kept = out.abs().sum(1) > 0
    scale_err = (out[kept] - f[kept] / (1 - p)).abs().max().item()
    mean_ratio = out.mean().item() / f.mean().item()
    eval_same = torch.equal(drop_path(f, p, training=False), f)
    depth = 16
    surv = [1 - (i + 1) / depth * 0.5 for i in range(depth)]
    expected_blocks = sum(surv)
    # batch mode: count the blocks that run over many simulated steps
    steps = 4000
    ran = (torch.rand(steps, depth, generator=g) < torch.tensor(surv)).sum(1).float().mean().item()

    result.tables.append(
        Table(
            f"Stochastic depth mechanics (p = {p} for the table's branch; linear decay over "
            f"{depth} blocks to survival 0.5)",
            ["quantity", "measured", "expected"],
            [
                ["fraction of samples whose branch is dropped", f"{dropped:.4f}", p],
                ["max |kept - f / (1 - p)|", f"{scale_err:.1e}", 0],
                ["mean(out) / mean(f)", f"{mean_ratio:.4f}", 1],
                ["eval mode returns f unchanged", eval_same, True],
                [
                    "blocks run per step (batch mode)",
                    f"{ran:.2f}",
                    f"{expected_blocks:.2f} = (3L - 1) / 4",
                ],
            ],  # fmt: skip
        )
    )

    # ---- 2. delete one block at test time: residual (with/without SD) vs plain ----------------
    d, k, width, depth2 = 16, 4, 48, 6
    w_t = torch.randn(d, k, generator=g)
    x_tr = torch.randn(4096, d, generator=g)
    y_tr = (torch.tanh(x_tr * 1.5) @ w_t).argmax(1)
    x_te = torch.randn(4096, d, generator=g)
    y_te = (torch.tanh(x_te * 1.5) @ w_t).argmax(1)
    x_tr, y_tr, x_te, y_te = (t.to(device) for t in (x_tr, y_tr, x_te, y_te))
    variants = {"residual": (True, 0.0), "residual + stochastic depth": (True, 0.5),
                "plain (no skips)": (False, 0.0)}  # fmt: skip
    stats = {}
    for name, (residual, p_last) in variants.items():
        torch.manual_seed(ctx.seed)
        model = ResMLP(d, width, depth2, k, residual, p_last).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        for _ in range(ctx.pick(250, 1500)):
            idx = torch.randint(0, 4096, (128,), generator=g).to(device)
            loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            full = (model(x_te).argmax(1) == y_te).float().mean().item()
            drops = []
            for i in range(depth2):
                model.skip = {i}
                drops.append(full - (model(x_te).argmax(1) == y_te).float().mean().item())
            model.skip = set()
        stats[name] = {
            "acc": full,
            "mean_drop": sum(drops) / depth2,
            "max_drop": max(drops),
        }
    result.tables.append(
        Table(
            f"MLP with {depth2} blocks of width {width}: test accuracy, and its drop when one "
            "block is deleted at test time",
            ["model", "test accuracy", "mean drop (delete 1 block)", "worst drop"],
            [
                [n, f"{s['acc']:.3f}", f"{s['mean_drop']:.3f}", f"{s['max_drop']:.3f}"]
                for n, s in stats.items()
            ],  # fmt: skip
        )
    )
    res, sd, plain = stats.values()
    result.metrics = {
        "fraction_dropped": dropped,
        "mean_ratio": mean_ratio,
        "blocks_run_per_step": ran,
        "expected_blocks": expected_blocks,
        "delete_one_block": stats,
    }
    # The mechanics table checks this demo's own drop_path and a Bernoulli count against
    # their formulas: true by construction, so it is shown, not claimed.
    result.notes.append(
        f"Mechanics (shown, not claimed: they follow from the definitions): row mode dropped "
        f"{dropped:.4f} of the branches (p = {p}) and scaled survivors by 1/(1-p); with the "
        f"linear decay rule to survival 0.5, {ran:.2f} of {depth} blocks ran per step "
        f"((3L - 1) / 4 = {expected_blocks:.2f}, ~75%)."
    )
    result.claim(
        "Deleting one block at test time costs a residual net little (mean drop < 10 points), "
        "less still if trained with stochastic depth; replacing a layer of the plain net by "
        "the identity costs it far more (>= 3x the residual net's mean drop).",
        res["mean_drop"] < 0.10
        and sd["mean_drop"] <= res["mean_drop"]
        and plain["mean_drop"] >= 3 * max(res["mean_drop"], 0.01),
        f"mean accuracy drop: residual {res['mean_drop']:.3f}, with SD {sd['mean_drop']:.3f}, "
        f"plain {plain['mean_drop']:.3f}",
    )
    result.notes.append(
        f"Test accuracy: residual {res['acc']:.3f}, with stochastic depth {sd['acc']:.3f}, "
        f"plain {plain['acc']:.3f} (differences at this scale are within seed noise)."
    )
    return result
