"""Sparse mixture of experts: top-k routing, parameters vs compute, and load balancing.

What it shows, measured on a small MoE layer (8 expert MLPs, a linear router, top-2):

- Each token goes to the k experts with the largest router probabilities; the output is their
  outputs weighted by those probabilities (renormalised over the k). Parameters grow with the
  number of experts E, compute per token only with k: counted exactly with
  torch.utils.flop_counter.FlopCounterMode, the layer holds 8x the expert weights of one MLP
  but does the matmul work of 2 per token, plus a small router.
- Load balancing: trained on a task whose inputs come from 8 clusters (each with its own
  input-output map). With top-k routing an expert that is not chosen gets no gradient, and
  the router gets no signal that it would have done well, so an early lead tends to persist:
  the favoured experts receive more tokens, train more and stay favoured: the collapse Shazeer
  et al. (2017) and Fedus et al. (2021) report at scale. The demo gives two experts an early
  lead (a router bias) and trains with and without a balancing loss. What really happens on
  this small task with balanced clusters: the lead shrinks even without the loss (the load
  numbers are reported), so the toy does not reproduce the collapse. What the demo
  does claim is measured: with the balancing loss the favoured experts end with a smaller
  share of the tokens than without it (over seeds 0-9 in quick mode, by 0.01 to 0.17).
  The Switch Transformer's auxiliary loss is alpha * E sum_i f_i P_i (f_i = fraction of
  tokens whose top choice is expert i, P_i = mean router probability of expert i; Fedus et
  al. 2021, arXiv 2101.03961). E sum_i f_i P_i is 1 when both are uniform and E when
  everything goes to one expert (reported in a note), so minimising it favours an even load.
- What really happens to accuracy: at this scale the balanced and unbalanced layers reach
  similar loss (reported, no claim); balance matters at scale for using all the parameters and
  for expert parallelism, where an overloaded expert's device becomes the bottleneck and
  tokens beyond its capacity are dropped.

Run: dlprep demo mixture-of-experts
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

D, HIDDEN, EXPERTS, TOP_K = 16, 32, 8, 2


class MoE(nn.Module):
    def __init__(self):
        super().__init__()
        self.router = nn.Linear(D, EXPERTS)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(D, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, D))
            for _ in range(EXPERTS)
        )

    def forward(self, x: torch.Tensor):
        """x (T, D) -> output (T, D), router probabilities (T, E), top-k expert ids (T, k)."""
        probs = torch.softmax(self.router(x), dim=-1)  # (T, E)
        weight, chosen = probs.topk(TOP_K, dim=-1)  # (T, k) each
        weight = weight / weight.sum(-1, keepdim=True)  # renormalise over the k chosen
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            token, slot = (chosen == e).nonzero(as_tuple=True)  # tokens routed to expert e
            if token.numel():  # only these tokens pay for this expert
                out.index_add_(0, token, weight[token, slot, None] * expert(x[token]))
        return out, probs, chosen


def balance_loss(probs: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Switch Transformer auxiliary loss: E * sum_i f_i P_i (1 when perfectly uniform)."""
    f = F.one_hot(chosen[:, 0], EXPERTS).float().mean(0)  # share of tokens, top-1 choice
    p = probs.mean(0)  # mean router probability per expert
    return EXPERTS * (f * p).sum()


def make_task(g: torch.Generator):
    centers = 3 * torch.randn(EXPERTS, D, generator=g)
    maps = torch.randn(EXPERTS, D, D, generator=g) / math.sqrt(D)

    def sample(n: int):
        c = torch.randint(0, EXPERTS, (n,), generator=g)
        x = centers[c] + torch.randn(n, D, generator=g)
        y = torch.tanh(torch.einsum("nd,nde->ne", x, maps[c]))
        return x, y

    return sample


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    sample = make_task(g)
    steps, batch = ctx.pick(200, 1000), 256

    # ---- 1. parameters vs compute -----------------------------------------------------------
    moe = MoE().to(device)
    expert_params = sum(p.numel() for p in moe.experts[0].parameters())
    total_params = sum(p.numel() for p in moe.parameters())
    x, _ = sample(512)
    x = x.to(device)
    with FlopCounterMode(display=False) as counter:
        moe(x)
    flops = counter.get_total_flops()
    one_expert = 2 * x.shape[0] * (D * HIDDEN + HIDDEN * D)  # one MLP on every token
    router = 2 * x.shape[0] * D * EXPERTS

    # ---- 2. training with and without the load-balancing loss -------------------------------
    runs = {}
    for name, alpha in (("no balancing loss", 0.0), ("balancing loss 0.05", 0.05)):
        torch.manual_seed(ctx.seed)  # the same initial weights for both
        model = MoE().to(device)
        with torch.no_grad():  # an early lead: two experts start out preferred by the router
            model.router.bias.copy_(torch.tensor([2.0, 2.0] + [0.0] * (EXPERTS - 2)))
        start_share = None
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(steps):
            xb, yb = (t.to(device) for t in sample(batch))
            out, probs, chosen = model(xb)
            if start_share is None:  # share of the two favoured experts at step 0
                start_share = (chosen < 2).float().mean().item()
            loss = F.mse_loss(out, yb)
            total = loss + alpha * balance_loss(probs, chosen)
            opt.zero_grad()
            total.backward()
            opt.step()
        xt, yt = (t.to(device) for t in sample(4096))
        with torch.no_grad():
            out, probs, chosen = model(xt)
        load = F.one_hot(chosen, EXPERTS).float().sum(1).mean(0) / TOP_K  # (E,) share of slots
        entropy = -(load.clamp_min(1e-9) * load.clamp_min(1e-9).log()).sum().item()
        runs[name] = {
            "test_mse": F.mse_loss(out, yt).item(),
            "max_share": load.max().item(),
            "load_entropy_over_log_E": entropy / math.log(EXPERTS),
            "load": [round(v, 3) for v in load.tolist()],
            "favoured_share_start": start_share,
            "favoured_share_end": load[:2].sum().item(),
        }

    result.tables.append(
        Table(
            f"MoE layer, {EXPERTS} experts, top-{TOP_K}",
            ["quantity", "value"],
            [
                ["parameters in one expert", expert_params],
                ["parameters in the layer (experts + router)", total_params],
                ["FLOPs for 512 tokens (measured)", flops],
                [
                    f"top-{TOP_K} experts on every token + router (predicted)",
                    TOP_K * one_expert + router,
                ],
                ["all experts on every token (a dense layer this size)", EXPERTS * one_expert],
            ],
        )  # fmt: skip
    )
    result.tables.append(
        Table(
            f"Trained {steps} steps on 8-cluster data; expert load on 4096 test tokens",
            ["router", "test MSE", "busiest expert's share", "load entropy / log E", "load"],
            [
                [
                    k,
                    f"{v['test_mse']:.4f}",
                    f"{v['max_share']:.3f}",
                    f"{v['load_entropy_over_log_E']:.3f}",
                    str(v["load"]),
                ]
                for k, v in runs.items()
            ],
        )  # fmt: skip
    )
    result.metrics = {
        "expert_params": expert_params,
        "layer_params": total_params,
        "flops_512_tokens": flops,
        "runs": runs,
    }
    result.claim(
        f"The layer holds {EXPERTS}x the weights of one expert but each token pays for only "
        f"{TOP_K} experts: measured FLOPs = {TOP_K} expert passes per token + the router.",
        flops == TOP_K * one_expert + router
        and total_params == EXPERTS * expert_params + (D + 1) * EXPERTS,
        f"measured {flops} FLOPs vs predicted {TOP_K * one_expert + router}; dense equivalent "
        f"{EXPERTS * one_expert}",
    )
    free, bal = runs["no balancing loss"], runs["balancing loss 0.05"]
    # the balancing loss on hand-made routings: uniform vs everything on one expert
    t = 800
    uniform_probs = torch.full((t, EXPERTS), 1 / EXPERTS)
    uniform_top = torch.arange(t)[:, None] % EXPERTS  # (T, 1) round-robin top-1 choices
    skew_probs = F.one_hot(torch.zeros(t, dtype=torch.long), EXPERTS).float()
    skew_top = torch.zeros(t, 1, dtype=torch.long)
    aux_uniform = balance_loss(uniform_probs, uniform_top).item()
    aux_skew = balance_loss(skew_probs, skew_top).item()
    result.claim(
        "Training with the Switch balancing loss pulls the load towards even: the two experts "
        "given an early lead end with a smaller share of the routing slots than without it.",
        bal["favoured_share_end"] < free["favoured_share_end"],
        f"share of the two favoured experts (fair: 0.25): without the loss "
        f"{free['favoured_share_start']:.2f} -> {free['favoured_share_end']:.2f}, with it "
        f"{bal['favoured_share_start']:.2f} -> {bal['favoured_share_end']:.2f}",
    )
    result.notes.append(
        f"The balancing loss E * sum_i f_i P_i is {aux_uniform:.2f} for perfectly even routing "
        f"and {aux_skew:.2f} (= E) when every token goes to one expert: that is what its formula "
        "gives, so minimising it favours an even load."
    )
    result.notes.append(
        "Two experts were given an early lead (router bias +2). On this small, balanced task "
        "the lead shrinks even without the balancing loss (the loss only speeds that up), so "
        "no claim is made about collapse; at scale, without the loss, routers do collapse onto "
        "a few experts (Shazeer et al. 2017; Fedus et al. 2021)."
    )
    result.notes.append(
        f"Test MSE: without balancing {free['test_mse']:.4f}, with {bal['test_mse']:.4f}: at this "
        "scale balance is about using experts evenly, not a guaranteed accuracy gain."
    )
    return result
